"""Public seams between the environment and its parts: no reach-ins.

* sample orders get a ScoringContext at each epoch start, never the environment;
* one prediction loop (``predict_split``) serves ``DUSEnv.evaluate`` and the scoring of
  sample orders, with autocast and with train mode restored even when a batch fails;
* the discrepancy tracker folds block statistics itself;
* the batched vector environment touches no other object's private attributes.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

import mmenv.vector_env
from mmenv import DUSEnv
from mmenv.datasets import make_synthetic
from mmenv.discrepancy import DiscrepancyTracker
from mmenv.sampling import SampleOrder, ScoringContext


class RecordingOrder(SampleOrder):
    """Shuffle, recording what it is handed at each epoch start."""

    name = "recording"

    def __init__(self) -> None:
        self.seen: list = []

    def on_epoch_start(self, ctx) -> None:
        fused, per = ctx.predict("train")
        self.seen.append((ctx, ctx.discrepancy.clone(), fused, per))


def _env(**kw) -> DUSEnv:
    return DUSEnv(dataset=make_synthetic(n_train=200, n_val=50, n_test=100), epochs=3, batch_budget=16, **kw)


def test_sample_order_gets_a_scoring_context_not_the_env():
    order = RecordingOrder()
    env = _env(sample_order=order)
    env.reset(seed=0)
    observations = []
    for _ in range(3):
        observations.append(env.step(env.uniform_action())[0])
    assert [ctx.epoch for ctx, *_ in order.seen] == [0, 1, 2]
    for ctx, _, fused, per in order.seen:
        assert type(ctx) is ScoringContext and ctx.epochs == 3
        assert ctx.labels is env.dataset.train.labels
        assert fused.shape == (200, env.dataset.num_classes) and set(per) == set(env.modalities)
    # The tracker's scores at an epoch start are the observation the previous step ended with.
    assert torch.count_nonzero(order.seen[0][1]) == 0
    for i in (1, 2):
        np.testing.assert_allclose(order.seen[i][1].numpy(), observations[i - 1], rtol=1e-6)
    # ctx.predict is the env's own prediction of the current model.
    fused, per = env.predict("train")
    ctx_fused, _ = order.seen[-1][0].predict("train")
    assert torch.equal(fused, ctx_fused)


def test_prediction_loop_restores_train_mode_when_a_batch_fails():
    env = _env(eval_batch_size=32)
    env.reset(seed=0)
    calls = {"n": 0}
    real = env.learner.predict

    def flaky(inputs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("boom")
        return real(inputs)

    env.learner.predict = flaky  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="boom"):
        env.evaluate("test")
    assert env.learner.model.training  # back in train mode although the loop failed


def test_evaluate_and_scoring_run_under_the_same_autocast():
    env = _env(autocast_dtype="bfloat16")
    env.reset(seed=0)
    flags = []
    real = env.learner.predict

    def spy(inputs):
        flags.append(torch.is_autocast_enabled("cpu"))
        return real(inputs)

    env.learner.predict = spy  # type: ignore[method-assign]
    env.evaluate("val")
    env.scoring_context(0).predict("train")
    assert flags and all(flags)


def test_tracker_folds_blocks_itself():
    gen = torch.Generator().manual_seed(0)
    s = torch.rand(10, 2, generator=gen) * 8
    stepwise, folded = DiscrepancyTracker(("a", "b"), "sum", 8), DiscrepancyTracker(("a", "b"), "sum", 8)
    for row in s:
        stepwise.update(row)
    folded.fold(s[:4])
    folded.fold_sum(s[4:].sum(0), 6, s[-1])
    assert folded.t == 10
    torch.testing.assert_close(folded.value, stepwise.value)
    torch.testing.assert_close(folded.last, s[-1])


def test_public_step_seams_match_step():
    a, b = _env(step_every=5), _env(step_every=5)
    a.reset(seed=1)
    b.reset(seed=1)
    assert a.iterations_next_step() == 5
    action = np.array([0.3, 0.7], dtype=np.float32)
    proportions, sizes = a.batch_sizes_for(action)
    assert sum(sizes) == 16 and proportions.sum() == pytest.approx(1.0)
    a.step(action)
    for _ in range(5):  # what the batched vector env does instead of training inside step()
        b.draw_iteration(sizes)
    assert a.iteration == b.iteration == 5
    for key, (perm, cursor, epoch) in a.sampler.state_dict().items():
        perm_b, cursor_b, epoch_b = b.sampler.state_dict()[key]
        same_perm = perm is perm_b is None or torch.equal(perm, perm_b)  # a stream may be unused
        assert same_perm and cursor == cursor_b and epoch == epoch_b, key


def test_vector_env_uses_no_other_objects_private_attributes():
    source = Path(mmenv.vector_env.__file__).read_text()
    reach_ins = [m.group(0) for m in re.finditer(r"(\w+)\._[a-z]\w*", source) if m.group(1) != "self"]
    assert reach_ins == []
