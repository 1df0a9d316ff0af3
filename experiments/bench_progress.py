"""Progress bars for the benchmark's phases: runs done, runs/s and an ETA, on stderr.

:func:`stage_bar` opens a tqdm bar that is also redrawn by a small heartbeat thread every
:data:`HEARTBEAT_S` seconds, so the elapsed time (and the ETA) on the terminal moves even
while one long run or one agent update is in progress: a benchmark never looks hung for
more than :data:`HEARTBEAT_S` seconds. With ``enabled=False`` the bar is a silent counter.

:class:`TrainingProgress` counts an across-run trainer's finished training runs through
its ``curve_fn`` seam (:func:`mmenv.agents.across_runs.train_across_runs` calls
``curve_fn`` every ``curve_every`` runs): the bench asks for a call after every update
(``curve_every=1``), advances the bar, and scores the policy only where the preset's own
``curve_every`` would have; the trained agent is the same (a call only deep-copies the
policy). The points that were only progress are dropped from the agent's curve afterwards.
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["stage_bar", "Bar", "TrainingProgress", "HEARTBEAT_S"]

#: Seconds between two redraws of a bar that made no progress.
HEARTBEAT_S = 5.0


class Bar:
    """A tqdm bar (or a silent counter) with :meth:`update` and :attr:`n`."""

    def __init__(self, tqdm_bar: Any | None, initial: int = 0) -> None:
        self._bar = tqdm_bar
        self.n = initial

    def update(self, k: int = 1) -> None:
        self.n += k
        if self._bar is not None:
            self._bar.update(k)

    def set_postfix_str(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)

    def refresh(self) -> None:
        if self._bar is not None:
            self._bar.refresh()


@contextmanager
def stage_bar(desc: str, total: int, unit: str = "run", enabled: bool = True, initial: int = 0) -> Iterator[Bar]:
    """A progress bar for one phase (``desc``) of ``total`` ``unit``\\ s, ``initial`` of them
    done already (reused from an earlier run), closed on exit."""
    if not enabled:
        yield Bar(None, initial)
        return
    from tqdm.auto import tqdm

    bar = Bar(tqdm(total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr, mininterval=1.0,
                   dynamic_ncols=True), initial)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_S):
            try:
                bar.refresh()
            except Exception:  # noqa: BLE001 - a redraw must never break the benchmark
                return

    thread = threading.Thread(target=beat, daemon=True, name=f"mmenv-progress-{desc}")
    thread.start()
    try:
        yield bar
    finally:
        stop.set()
        thread.join()
        assert bar._bar is not None  # invariant: an enabled bar has a tqdm bar
        bar._bar.close()


class TrainingProgress:
    """Counts training runs through an across-run trainer's ``curve_fn`` seam (module docstring).

    Args:
        bar: the bar to advance (its total is ``runs``).
        runs: training runs the trainer consumes.
        runs_per_call: training runs between two calls (REINFORCE: ``episodes_per_update``;
            an SB3 algorithm with one worker: 1).
        curve_every: the preset's learning-curve interval (``None``: no curve).
        curve_fn: the held-out score of a policy snapshot, or ``None``.
    """

    def __init__(self, bar: Bar, runs: int, runs_per_call: int, curve_every: int | None,
                 curve_fn: Callable[[Any], float] | None) -> None:
        self.bar, self.runs, self.per_call = bar, runs, runs_per_call
        self.curve_every, self.curve_fn = curve_every, curve_fn
        self.calls = 0
        self.scored: list[int] = []          # indices of the calls that computed a curve point
        self.next_point = 0

    def __call__(self, policy: Any) -> float:
        done = min(self.calls * self.per_call, self.runs)
        index = self.calls
        self.calls += 1
        if done > self.bar.n:
            self.bar.update(done - self.bar.n)
        if self.curve_fn is None or not self.curve_every:
            return math.nan
        if done >= self.next_point or done >= self.runs:
            if done >= self.next_point:
                self.next_point = (done // self.curve_every + 1) * self.curve_every
            self.scored.append(index)
            return float(self.curve_fn(policy))
        return math.nan

    def curve(self, recorded: list[tuple[int, float]]) -> list[tuple[int, float]]:
        """The trainer's recorded ``(runs, value)`` pairs at the calls that were curve points."""
        keep = set(self.scored)
        return [point for i, point in enumerate(recorded) if i in keep]
