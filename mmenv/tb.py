"""TensorBoard logging of environment steps (``torch.utils.tensorboard``) and the log's lifecycle (:class:`EnvTensorBoard`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def make_writer(log_dir: str, purge_step: int | None = None):
    """A SummaryWriter on ``log_dir``. With ``purge_step`` TensorBoard drops every event at or
    after that step from the files written before (what an interrupted run wrote past the
    point a resumed run continues from), so no step shows twice."""
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=log_dir, purge_step=purge_step)


def log_reset(writer, step: int, modalities: Sequence[str], discrepancy: Sequence[float]) -> None:
    """The observation the first action of an episode sees (the probe's discrepancy), at ``step``."""
    for j, m in enumerate(modalities):
        writer.add_scalar(f"discrepancy_initial/{m}", discrepancy[j], step)
    writer.flush()


def step_scalars(modalities: Sequence[str], info: dict, reward: float) -> dict[str, float]:
    """Tag -> value of one environment step: per-modality discrepancy, batch sizes, proportions,
    training accuracies and losses, the reward, the fused validation accuracy when the step
    computed it, and the final test metrics on the episode's last step."""
    out: dict[str, float] = {"reward": float(reward)}
    for j, m in enumerate(modalities):
        out[f"discrepancy/{m}"] = float(info["discrepancy"][j])
        out[f"batch_size/{m}"] = float(info["batch_sizes"][j])
        out[f"proportion/{m}"] = float(info["proportions"][j])
        out[f"train_accuracy/{m}"] = float(info["train_accuracy"][m])
    if info.get("val_accuracy") is not None:
        out["val_accuracy/fused"] = float(info["val_accuracy"])
    for name, value in info["train_loss"].items():
        out[f"train_loss/{name}"] = float(value)
    for who, metrics in (info.get("test") or {}).items():
        for metric, value in metrics.items():
            out[f"test/{who}/{metric}"] = float(value)
    return out


def write_scalars(writer, scalars: Mapping[str, float], step: int) -> None:
    for tag, value in scalars.items():
        writer.add_scalar(tag, value, step)
    writer.flush()


def log_step(writer, step: int, modalities: Sequence[str], info: dict, reward: float) -> dict[str, float]:
    """Write :func:`step_scalars` at ``step``; returns them (a resumed log rewrites the last step)."""
    scalars = step_scalars(modalities, info, reward)
    write_scalars(writer, scalars, step)
    return scalars


class EnvTensorBoard:
    """The TensorBoard log of one environment: its writer's lifecycle and its global step.

    The writer on ``log_dir`` is made at the first write. Logging never stops training: a
    failure (disk full, read-only folder...) warns once and turns logging off for the rest
    of the run. ``global_step`` counts the steps of all episodes (logged or not: it is part
    of the environment's checkpoint).
    """

    def __init__(self, log_dir: str | None) -> None:
        self.log_dir = log_dir
        self.global_step = 0
        self.last_scalars: dict[str, float] = {}
        self._writer: Any = None
        self._failed = False

    @property
    def writer(self) -> Any:
        """The ``SummaryWriter`` on ``log_dir`` (made now if needed); ``None`` without a log
        folder or after a failure."""
        if self.log_dir is None or self._failed:
            return None
        if self._writer is None:
            try:
                self._writer = make_writer(self.log_dir)
            except Exception as exc:  # noqa: BLE001 - logging must never stop training
                self._fail(exc)
        return self._writer

    def log_reset(self, modalities: Sequence[str], discrepancy: Sequence[float]) -> None:
        """The observation an episode's first action sees, at the current global step."""
        writer = self.writer
        if writer is None:
            return
        try:
            log_reset(writer, self.global_step, modalities, discrepancy)
        except Exception as exc:  # noqa: BLE001 - logging must never stop training
            self._fail(exc)

    def log_step(self, modalities: Sequence[str], info: dict, reward: float) -> None:
        """Count one environment step and write its scalars."""
        writer = self.writer
        self.global_step += 1
        if writer is None:
            return
        try:
            self.last_scalars = log_step(writer, self.global_step, modalities, info, reward)
        except Exception as exc:  # noqa: BLE001 - logging must never stop training
            self._fail(exc)

    def state(self) -> dict[str, Any]:
        """The global step and the last step's scalars (what :meth:`resume` continues from)."""
        return {"global_step": int(self.global_step), "last_step": dict(self.last_scalars)}

    def resume(self, state: Mapping[str, Any] | None = None) -> None:
        """Continue after an interruption: purge what was written at or after the saved global
        step, write the saved last step again, go on from there (``DUSEnv.resume_tensorboard``)."""
        state = dict(state or {})
        self.global_step = int(state.get("global_step", 0))
        if self.log_dir is None:
            return
        self.last_scalars = dict(state.get("last_step") or {})
        try:
            if self._writer is not None:
                self._writer.close()
            self._writer = make_writer(self.log_dir, purge_step=self.global_step)
            if self.last_scalars:
                write_scalars(self._writer, self.last_scalars, self.global_step)
        except Exception as exc:  # noqa: BLE001 - logging must never stop training
            self._fail(exc)

    def close(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception as exc:  # noqa: BLE001 - a full disk at close loses only logs
                self._fail(exc)
            self._writer = None

    def _fail(self, exc: BaseException) -> None:
        """Warn once, stop logging, keep training (the run's results do not depend on its logs)."""
        import warnings

        self._failed = True
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        warnings.warn(f"TensorBoard logging to {self.log_dir} stopped, training goes on: "
                      f"{type(exc).__name__}: {first}", RuntimeWarning, stacklevel=4)
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - closing a broken writer may fail too
                pass
