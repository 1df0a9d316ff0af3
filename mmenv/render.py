"""Rendering of a :class:`mmenv.DUSEnv` episode: a text summary or an RGB picture.

:class:`RenderMixin` gives the environment ``render()`` for ``render_mode="ansi"`` (step,
epoch, batch sizes, discrepancy, reward so far) and ``"rgb_array"`` (batch sizes and
discrepancy per step, drawn with Matplotlib's Agg backend). It is part of ``DUSEnv``
(written apart so that ``mmenv/env.py`` holds the core job) and reads the episode history
the environment records while ``render_mode`` is set.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["RenderMixin", "RENDER_MODES"]

RENDER_MODES = ("ansi", "rgb_array")


class RenderMixin:
    """The rendering half of :class:`mmenv.DUSEnv` (see the module docstring)."""

    # Set by DUSEnv.__init__ / reset / step (declared here for the type checker).
    render_mode: str | None
    modalities: tuple[str, ...]
    batch_budget: int
    epochs: int
    iteration: int
    iters_per_epoch: int
    total_iters: int
    episode_step: int
    episode_seed: int | None
    _obs: np.ndarray
    _history: list[tuple[list[int], list[float], float]]   # (batch sizes, discrepancy, reward) per step

    def render(self) -> Any:
        """The episode so far, as ``render_mode`` asks (``None``: nothing)."""
        if self.render_mode is None:
            return None
        if self.render_mode == "ansi":
            return self._render_text()
        return self._render_rgb()

    def _render_text(self) -> str:
        mods = self.modalities
        if self.episode_seed is None:
            return "DUSEnv: not reset yet"
        head = (f"step {self.episode_step} | epoch {self.iteration // self.iters_per_epoch}/{self.epochs} | iteration {self.iteration}/"
                f"{self.total_iters} | N_B {self.batch_budget}")
        if not self._history:
            disc = ", ".join(f"{m}={v:.4f}" for m, v in zip(mods, self._obs))
            return f"{head}\n  discrepancy (probe): {disc}"
        sizes, disc_now, reward = self._history[-1]
        total = sum(r for _, _, r in self._history)
        return (f"{head}\n  batch sizes: " + ", ".join(f"{m}={a}" for m, a in zip(mods, sizes))
                + "\n  discrepancy: " + ", ".join(f"{m}={v:.4f}" for m, v in zip(mods, disc_now))
                + f"\n  reward: {reward:.4f} (episode sum {total:.4f})")

    def _render_rgb(self) -> np.ndarray:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6.4, 2.8), dpi=100)
        canvas = FigureCanvasAgg(fig)
        ax_b, ax_d = fig.subplots(1, 2)
        steps = np.arange(1, len(self._history) + 1)
        for j, mod in enumerate(self.modalities):
            if self._history:
                ax_b.plot(steps, [h[0][j] for h in self._history], marker="o", label=mod)
                ax_d.plot(steps, [h[1][j] for h in self._history], marker="o", label=mod)
        ax_b.axhline(self.batch_budget / len(self.modalities), color="black", ls="--", lw=1)
        ax_b.set(title="batch size", xlabel="step", ylim=(0, self.batch_budget))
        ax_d.set(title="cumulative discrepancy", xlabel="step")
        if self._history:  # no labelled lines before the first step: a legend would warn
            ax_b.legend(fontsize=7)
        from matplotlib.ticker import MaxNLocator

        for ax in (ax_b, ax_d):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        fig.tight_layout()
        canvas.draw()
        return np.asarray(canvas.buffer_rgba())[..., :3].copy()

