"""Redraw pacing for live views, with no Streamlit import: the Attack Lab's run record keeps its throttles,
and the record is engine-side (experiments/lab/record.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Throttle:
    """When to redraw: at most every `min_interval` seconds, and rarely enough that drawing costs at most `budget`
    of the run's wall time (after a draw that took c seconds the next waits c * (1 - budget) / budget).

    `backoff` stretches the interval to backoff * elapsed, and `cap` bounds the count: Streamlit keeps every image
    replaced during a script run until the run ends, so a long run must not send images at a constant rate.
    """

    min_interval: float = 0.25
    budget: float = 0.08
    backoff: float = 0.0
    cap: int | None = None
    next_at: float = 0.0
    count: int = 0
    seconds: float = 0.0

    def due(self, now: float) -> bool:
        return now >= self.next_at and (self.cap is None or self.count < self.cap)

    def spent(self, start: float, end: float, elapsed: float) -> None:
        cost = end - start
        self.count += 1
        self.seconds += cost
        self.next_at = end + max(self.min_interval, cost * (1 - self.budget) / self.budget, self.backoff * elapsed)
