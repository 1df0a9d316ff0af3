"""TensorBoard logging of environment steps (``torch.utils.tensorboard``)."""

from __future__ import annotations

from typing import Mapping, Sequence


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
