"""The run grid: one :class:`RunSpec` per (dataset, learner, policy, seed), and running one.

A policy entry is either a policy name or saved agent path (``"reinforce"``,
``"runs/ppo/agent.zip"``) or a strategy combination ``"<sample_order>+<policy>"``
(``"bss-curriculum+reinforce"``, ``"remix+uniform"``): the part before ``+`` becomes the
environment's ``sample_order``, the part after it the policy.

:func:`execute_run` plays one run and returns a plain JSON-able dict; it never raises
for a failing run (status ``"failed"`` with the error), so a sweep goes on. A run whose
episode ends truncated with ``info["diverged"]`` gets status ``"diverged"``.
Each run has a stable :attr:`RunSpec.key` (readable slug + a hash of everything that
changes its numbers), used for the resumable result files.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mmenv.errors import InvalidArgumentError

__all__ = ["RunSpec", "build_grid", "split_policy", "slugify", "execute_run", "new_result", "RESULT_VERSION",
           "log_hparams", "run_hparams", "run_metrics"]

# Bump when the result-file layout changes, so older files are not silently reused.
RESULT_VERSION = 1


def split_policy(entry: str) -> tuple[str | None, str]:
    """``"bss-curriculum+reinforce"`` -> ``("bss-curriculum", "reinforce")``; ``"dus-h"`` -> ``(None, "dus-h")``.

    Only the first ``+`` splits, and only when the text before it is not a path (so a
    saved agent's path that contains ``+`` still works when it exists on disk).
    """
    if "+" in entry and not Path(entry).exists():
        order, policy = entry.split("+", 1)
        if not order or not policy:
            raise InvalidArgumentError(f"malformed policy entry {entry!r}: expected '<sample_order>+<policy>', "
                             "e.g. 'bss-curriculum+reinforce'")
        return order, policy
    return None, entry


def slugify(text: str) -> str:
    """A file-system-safe label: ``runs/ppo/agent.zip`` -> ``runs-ppo-agent.zip``."""
    slug = re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-.")
    return slug or "x"


@dataclass(frozen=True)
class RunSpec:
    """Everything one run needs; plain data so it crosses process and Ray boundaries."""

    dataset: str
    learner: str
    policy: str                                # the grid entry as written, e.g. "remix+uniform"
    seed: int
    env: dict[str, Any] = field(default_factory=dict)
    dataset_kwargs: dict[str, Any] = field(default_factory=dict)
    learner_kwargs: dict[str, Any] = field(default_factory=dict)
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    sample_order_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def sample_order(self) -> str | None:
        return split_policy(self.policy)[0]

    @property
    def policy_name(self) -> str:
        return split_policy(self.policy)[1]

    def fingerprint(self) -> str:
        """Hash of everything that changes this run's numbers (not where it logs)."""
        payload = {k: v for k, v in asdict(self).items()}
        payload["version"] = RESULT_VERSION
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    @property
    def key(self) -> str:
        """``<dataset>__<learner>__<policy>__seed<k>__<hash>``: the result file's stem."""
        return "__".join([slugify(self.dataset), slugify(self.learner), slugify(self.policy),
                          f"seed{self.seed}", self.fingerprint()])

    def tb_dir(self, out: str | Path) -> Path:
        return Path(out) / "tb" / slugify(self.dataset) / slugify(self.learner) / slugify(self.policy) / f"seed{self.seed}"


def build_grid(config) -> list[RunSpec]:
    """All runs of a :class:`~mmenv.experiments.config.CompareConfig`, datasets outermost, seeds innermost."""
    specs = []
    for dataset in config.datasets:
        for learner in config.learners:
            for policy in config.policies:
                order, policy_name = split_policy(policy)
                for seed in config.seeds:
                    specs.append(RunSpec(
                        dataset=dataset, learner=learner, policy=policy, seed=int(seed),
                        env=dict(config.env),
                        dataset_kwargs=dict(config.dataset_kwargs.get(dataset, {})),
                        learner_kwargs=dict(config.learner_kwargs.get(learner, {})),
                        # kwargs under the full entry ("remix+reinforce") win over the policy's name
                        policy_kwargs=dict(config.policy_kwargs.get(policy,
                                                                    config.policy_kwargs.get(policy_name, {}))),
                        sample_order_kwargs=dict(getattr(config, "sample_order_kwargs", {}).get(order, {})
                                                 if order else {}),
                    ))
    return specs


def execute_run(spec: RunSpec | dict, out: str | None = None, tensorboard: bool = True) -> dict[str, Any]:
    """Play one run; return its result dict (status ``ok``, ``diverged`` or ``failed``).

    ``out`` is the sweep directory (TensorBoard logs go to ``<out>/tb/...``); the caller
    writes the result file. Exceptions become ``status="failed"`` with the message and
    traceback, so one bad run does not stop a sweep.
    """
    if isinstance(spec, dict):
        spec = RunSpec(**spec)
    result = new_result(spec)
    start = time.perf_counter()
    env = None
    try:
        from mmenv.agents import run_policy
        from mmenv.agents.assembly import build_policy, close_policy, make_run_env, record_fields

        log_dir = str(spec.tb_dir(out)) if (tensorboard and out is not None) else None
        if log_dir is not None and Path(log_dir).exists():
            # A run is executed again only when it did not finish (or with --force): a fresh
            # folder, so TensorBoard never shows an earlier attempt's steps beside this one's.
            shutil.rmtree(log_dir)
        env = make_run_env(dict(spec.env, dataset=spec.dataset, learner=spec.learner,
                                dataset_kwargs=spec.dataset_kwargs or None,
                                learner_kwargs=spec.learner_kwargs or None, log_dir=log_dir),
                           spec.sample_order, spec.sample_order_kwargs)
        # What the data held: a re-run refuses to reuse this result once the data changed.
        result["data_fingerprint"] = getattr(env, "unwrapped", env).data_fingerprint
        policy, learn = build_policy(spec.policy_name, seed=spec.seed, policy_kwargs=spec.policy_kwargs)
        record = run_policy(env, policy, episodes=1, seeds=[spec.seed], learn=learn)[0]
        result.update(record_fields(record), status="diverged" if record.diverged else "ok")
        if record.diverged:
            result["error"] = "training loss became NaN/inf (episode truncated with info['diverged'])"
        close_policy(policy)
        if log_dir is not None:
            log_hparams(env.tensorboard_writer, spec, result)
    except Exception as exc:  # noqa: BLE001 - a failing run is data, not a crash
        result.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    finally:
        if env is not None:
            try:
                env.close()
            except Exception:  # noqa: BLE001
                pass
    result["wall_time_s"] = time.perf_counter() - start
    return result


def run_hparams(spec: RunSpec) -> dict[str, Any]:
    """The run's settings as TensorBoard hparams: the grid coordinates, the environment's
    settings and the learner's / policy's keyword arguments (``learner.<k>``, ``policy.<k>``).
    Values other than numbers, strings and booleans are written as their JSON text."""
    def plain(value: Any) -> Any:
        if isinstance(value, (bool, int, float, str)):
            return value
        return json.dumps(value, sort_keys=True, default=str)

    hp: dict[str, Any] = {"dataset": spec.dataset, "learner": spec.learner, "policy": spec.policy_name,
                          "sample_order": spec.sample_order or spec.env.get("sample_order", "shuffle"),
                          "seed": spec.seed}
    hp.update({f"env.{k}": plain(v) for k, v in sorted(spec.env.items()) if k not in hp})
    hp.update({f"learner.{k}": plain(v) for k, v in sorted(spec.learner_kwargs.items())})
    hp.update({f"policy.{k}": plain(v) for k, v in sorted(spec.policy_kwargs.items())})
    return hp


def run_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The run's outcome as hparams metrics (``hparam/...``): test accuracy, MAP and macro-F1
    (fused and per modality), the reward sum and the mean share of each modality."""
    metrics: dict[str, float] = {}
    for who, values in (result.get("test") or {}).items():
        for metric, value in values.items():
            metrics[f"hparam/test/{who}/{metric}"] = float(value)
    if result.get("reward_sum") is not None:
        metrics["hparam/reward_sum"] = float(result["reward_sum"])
    proportions = result.get("proportions") or []
    for j, m in enumerate(result.get("modalities") or []):
        if proportions:
            metrics[f"hparam/mean_proportion/{m}"] = float(sum(p[j] for p in proportions) / len(proportions))
    return metrics


def log_hparams(writer, spec: RunSpec, result: dict[str, Any]) -> None:
    """Write the run's hparams and metrics with ``writer``, the run's own TensorBoard writer
    (the HPARAMS tab).

    The summaries go into the run's folder itself, not a sub-folder as
    ``SummaryWriter.add_hparams`` would make, so TensorBoard's hparams table links each row
    to the run's curves; the metrics are scalars at the run's last step.
    """
    from torch.utils.tensorboard.summary import hparams

    metrics = run_metrics(result)
    experiment, start, end = hparams(run_hparams(spec), metrics)
    file_writer = writer._get_file_writer()
    for summary in (experiment, start, end):
        file_writer.add_summary(summary)
    step = int(result.get("steps") or 0)
    for tag, value in metrics.items():
        writer.add_scalar(tag, value, step)
    writer.flush()


def new_result(spec: RunSpec, status: str = "failed", error: str = "") -> dict[str, Any]:
    """A run's result before (or without) its episode: the spec, the status, empty record fields.

    :func:`execute_run` fills the record fields in; a backend whose worker died reports
    this with the crash as ``error``.
    """
    from mmenv.agents.assembly import RECORD_FIELDS

    result: dict[str, Any] = {
        "version": RESULT_VERSION, "key": spec.key, "spec": asdict(spec),
        "dataset": spec.dataset, "learner": spec.learner, "policy": spec.policy, "seed": spec.seed,
        "sample_order": spec.sample_order or spec.env.get("sample_order", "shuffle"),
        "status": status, "error": error, "traceback": "", "wall_time_s": 0.0, "data_fingerprint": None,
    }
    result.update({k: (list(v) if isinstance(v, list) else v) for k, v in RECORD_FIELDS.items()})
    return result
