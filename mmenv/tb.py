"""TensorBoard logging of environment steps (``torch.utils.tensorboard``)."""

from __future__ import annotations

from typing import Sequence


def make_writer(log_dir: str):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=log_dir)


def log_reset(writer, step: int, modalities: Sequence[str], discrepancy: Sequence[float]) -> None:
    """The observation the first action of an episode sees (the probe's discrepancy), at ``step``."""
    for j, m in enumerate(modalities):
        writer.add_scalar(f"discrepancy_initial/{m}", discrepancy[j], step)
    writer.flush()


def log_step(writer, step: int, modalities: Sequence[str], info: dict, reward: float) -> None:
    """Per-modality discrepancy, batch sizes, proportions, losses, accuracies, the reward and,
    when the step computed it, the fused validation accuracy."""
    writer.add_scalar("reward", reward, step)
    for j, m in enumerate(modalities):
        writer.add_scalar(f"discrepancy/{m}", info["discrepancy"][j], step)
        writer.add_scalar(f"batch_size/{m}", info["batch_sizes"][j], step)
        writer.add_scalar(f"proportion/{m}", info["proportions"][j], step)
        writer.add_scalar(f"train_accuracy/{m}", info["train_accuracy"][m], step)
    if info.get("val_accuracy") is not None:
        writer.add_scalar("val_accuracy/fused", info["val_accuracy"], step)
    for name, value in info["train_loss"].items():
        writer.add_scalar(f"train_loss/{name}", value, step)
    test = info.get("test")
    if test:
        for who, metrics in test.items():
            for metric, value in metrics.items():
                writer.add_scalar(f"test/{who}/{metric}", value, step)
    writer.flush()
