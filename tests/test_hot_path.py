"""The training hot path does not synchronise with the host per iteration.

Every way a tensor's value reaches Python (``.item()``, ``.cpu()``, ``.tolist()``,
``.numpy()``, ``bool``/``float``/``int`` of a tensor, ``np.asarray(tensor)``) is wrapped
with a counter; one environment step of N iterations and one of 2N iterations must
cost the same number of such calls.
"""

from __future__ import annotations

from contextlib import ExitStack
from unittest import mock

import numpy as np
import torch

from mmenv import DUSEnv
from mmenv.discrepancy import DiscrepancyTracker
from mmenv.step_stats import StepStats, fold_discrepancy
from mmenv.vector_env import DUSVectorEnv

SYNC_METHODS = ("item", "cpu", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__", "__array__")
TINY = dict(dataset_kwargs=dict(n_train=120, n_val=30, n_test=60, dims=8), batch_budget=16)


class SyncCounter:
    """Context manager counting calls of the tensor-to-host methods."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def __enter__(self) -> SyncCounter:
        self._stack = ExitStack()
        for name in SYNC_METHODS:
            original = getattr(torch.Tensor, name)

            def wrapper(tensor, *args, __name=name, __orig=original, **kwargs):
                self.calls[__name] = self.calls.get(__name, 0) + 1
                return __orig(tensor, *args, **kwargs)

            self._stack.enter_context(mock.patch.object(torch.Tensor, name, wrapper))
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    @property
    def total(self) -> int:
        return sum(self.calls.values())


def syncs_in_one_step(iters: int) -> tuple[int, dict]:
    # Many epochs so that the measured step never ends the episode (no test evaluation).
    env = DUSEnv(epochs=50, step_every=iters, **TINY)
    env.reset(seed=0)
    env.step(np.array([0.3, 0.7], dtype=np.float32))  # warm-up: first pass of every stream
    with SyncCounter() as counter:
        _, _, terminated, _, _ = env.step(np.array([0.6, 0.4], dtype=np.float32))
    assert not terminated
    return counter.total, counter.calls


def test_counter_sees_syncs():
    with SyncCounter() as counter:
        t = torch.ones(3)
        t.sum().item()
        float(t[0])
        t.cpu()
    assert counter.total == 3


def test_env_step_syncs_do_not_grow_with_iterations():
    few, calls_few = syncs_in_one_step(5)
    many, calls_many = syncs_in_one_step(40)
    assert few == many, (calls_few, calls_many)
    assert few <= 3, calls_few  # the packed read-back of the step (cpu + numpy)


def test_vector_env_step_syncs_do_not_grow_with_iterations():
    totals = []
    for iters in (5, 40):
        envs = DUSVectorEnv(num_envs=2, epochs=50, step_every=iters, **TINY)
        envs.reset(seed=0)
        envs.step(np.full((2, 2), 0.5, dtype=np.float32))
        with SyncCounter() as counter:
            envs.step(np.array([[0.2, 0.8], [0.7, 0.3]], dtype=np.float32))
        totals.append(counter.total)
    assert totals[0] == totals[1]


def test_block_fold_equals_per_iteration_recurrence():
    gen = torch.Generator().manual_seed(0)
    s = torch.rand(23, 3, generator=gen) * 10
    step_by_step = DiscrepancyTracker(("a", "b", "c"), "sum", 16)
    for row in s:
        step_by_step.update(row)
    folded = DiscrepancyTracker(("a", "b", "c"), "sum", 16)
    fold_discrepancy(folded, s[:7])
    fold_discrepancy(folded, s[7:])
    assert folded.t == step_by_step.t == 23
    torch.testing.assert_close(folded.value, step_by_step.value)
    torch.testing.assert_close(folded.last, s[-1])


def test_step_stats_blocks_match_direct_sums():
    gen = torch.Generator().manual_seed(1)
    mods = ("x", "y")
    tracker = DiscrepancyTracker(mods, "sum", 8)
    stats = StepStats(mods, tracker, torch.device("cpu"), block=4)  # 10 iterations: 3 blocks
    expect_s = torch.zeros(2)
    expect_correct = torch.zeros(2)
    expect_loss = torch.tensor(0.0)
    for _ in range(10):
        logits = {"x": torch.randn(3, 4, generator=gen), "y": torch.randn(5, 4, generator=gen)}
        labels = {"x": torch.randint(0, 4, (3,), generator=gen), "y": torch.randint(0, 4, (5,), generator=gen)}
        loss = torch.rand((), generator=gen)
        stats.add(logits, labels, {"total": loss})
        for j, m in enumerate(mods):
            expect_s[j] += torch.softmax(logits[m], 1)[torch.arange(len(labels[m])), labels[m]].sum()
            expect_correct[j] += (logits[m].argmax(1) == labels[m]).sum()
        expect_loss += loss
    stats.flush()
    torch.testing.assert_close(tracker.value, expect_s / 10)
    torch.testing.assert_close(stats.correct, expect_correct)
    torch.testing.assert_close(stats.loss_sums["total"], expect_loss)


def test_bf16_autocast_trains_close_to_full_precision():
    action = np.array([0.4, 0.6], dtype=np.float32)
    results = []
    for dtype in (None, "bfloat16"):
        env = DUSEnv(epochs=2, autocast_dtype=dtype, **TINY)
        obs, _ = env.reset(seed=0)
        for _ in range(2):
            obs, reward, terminated, _, info = env.step(action)
        assert terminated and np.isfinite(obs).all()
        results.append((obs, info["train_loss"]["total"], info["test"]["fused"]["accuracy"]))
    (obs32, loss32, acc32), (obs16, loss16, acc16) = results
    np.testing.assert_allclose(obs16, obs32, atol=0.02)
    assert abs(loss16 - loss32) < 0.05 * abs(loss32)
    assert abs(acc16 - acc32) <= 0.1


def test_unknown_autocast_dtype_is_refused():
    import pytest

    with pytest.raises(ValueError, match="autocast_dtype"):
        DUSEnv(autocast_dtype="bfloat17", **TINY)


def _count_val_passes(env: DUSEnv) -> list[str]:
    splits: list[str] = []
    original = env.evaluate

    def counting(split: str = "test"):
        splits.append(split)
        return original(split)

    env.evaluate = counting  # type: ignore[method-assign]
    return splits


def test_validation_reward_evaluates_once_per_step():
    """With a validation reward, a step's "after" pass serves the next step's "before": one
    validation pass per step plus the first one (not two per step), and the same rewards."""
    kwargs = dict(TINY, reward="val-acc-gain", epochs=4, step_every=4)
    env = DUSEnv(**kwargs)
    splits = _count_val_passes(env)
    env.reset(seed=3)
    rewards, done = [], False
    while not done:
        _, r, term, trunc, _ = env.step(env.uniform_action())
        rewards.append(r)
        done = term or trunc
    steps = len(rewards)
    assert steps >= 3
    assert splits.count("val") == steps + 1
    # The memo is the fresh value: recompute every reward from explicit passes.
    ref = DUSEnv(**kwargs)
    ref.reset(seed=3)
    before = ref.evaluate("val")["fused"]["accuracy"]
    for r in rewards:
        ref.step(ref.uniform_action())
        after = ref.evaluate("val")["fused"]["accuracy"]
        assert r == after - before
        before = after


def test_validation_memo_is_forgotten_when_the_model_is_replaced():
    env = DUSEnv(**TINY, reward="val-acc-gain", epochs=2)
    env.reset(seed=0)
    env.step(env.uniform_action())
    state = env.state_dict()
    trained = env.validation_metrics()
    env.reset(seed=1)   # a fresh model at iteration 0
    assert env.validation_metrics() == env.evaluate("val")
    env.load_state_dict(state)
    assert env.validation_metrics() == trained == env.evaluate("val")
    with torch.no_grad():   # the same model object, changed in place by hand: evaluate() sees it
        for p in env.learner.model.parameters():
            p.zero_()
    assert env.evaluate("val") != trained
