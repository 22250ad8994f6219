"""The Attack Lab's run record: every number of a run, for drawing it live, stopping it, replaying it and the JSON.

The record lives in st.session_state[RECORD]; the run itself is a ui.run Job (key JOB) whose work is `steps(record)`.
Small numbers are recorded every step; images only as the latest one and, at image redraws, in a bounded set of
snapshots for the replay. `finish` verifies the last image on its 8-bit PNG, whatever ended the run.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from attacks import Step
from attacks.runner import Verdict
from experiments.lab.steps import step_numbers
from models import IMAGENET_CATEGORIES
from ui.figures import BarRows
from ui.pacing import Throttle

RECORD = "lab.record"
JOB = "lab.job"
TOP_K = 20  # classes recorded per step: enough for every bar the chart can show
run_ids = itertools.count(1)  # one id per run in this process (widget keys of its replay)


@dataclass
class Snapshots:
    """Adversarial images kept for the replay: at most `capacity`, evenly spaced as a long run grows (the steps that
    are multiples of `stride`, which doubles when they would not fit), plus always the latest one."""

    capacity: int = 48
    frames: dict[int, np.ndarray] = field(default_factory=dict)  # step -> (H, W, 3) uint8
    stride: int = 1
    latest: int | None = None

    def add(self, step: int, image: np.ndarray) -> None:
        if self.latest is not None and self.latest % self.stride:  # the previous latest was kept only as latest
            self.frames.pop(self.latest, None)
        self.frames[step] = image
        self.latest = step
        while len(self.frames) > self.capacity:
            self.stride *= 2
            self.frames = {k: v for k, v in self.frames.items() if k % self.stride == 0 or k == step}

    def at(self, step: int) -> tuple[int, np.ndarray] | None:
        """The latest snapshot at or before `step`."""
        best = max((k for k in self.frames if k <= step), default=None)
        return None if best is None else (best, self.frames[best])


@dataclass
class Throttles:
    """How often each part of the live view is redrawn (ui.pacing.Throttle); kept with the record for the benchmark."""

    charts: Throttle = field(default_factory=lambda: Throttle(min_interval=0.25, budget=0.08))
    images: Throttle = field(default_factory=lambda: Throttle(min_interval=0.75, budget=0.05, backoff=0.03, cap=200))
    cams: Throttle = field(default_factory=lambda: Throttle(min_interval=3.0, budget=0.06, backoff=0.05, cap=100))

    def crowded(self, live_views: int, cores: int = 2) -> None:
        """Stretch the intervals when more live views are drawn at once than the server has cores: thirty
        sessions redrawing four times a second each took the cores from the attacks they were showing."""
        factor = max(1.0, live_views / cores)
        base = Throttles()
        for name in ("charts", "images", "cams"):
            getattr(self, name).min_interval = getattr(base, name).min_interval * factor


@dataclass
class RunRecord:
    """Everything one run needs to be drawn, stopped, resumed and replayed."""

    run_id: int
    model_name: str
    image_name: str
    attack_name: str
    params: dict[str, float]
    query: dict[str, str]
    target_choice: str
    seed: int
    source: int
    target: int | None
    confidence: float
    original_png: bytes
    original: np.ndarray  # (H, W, 3) uint8
    probs0: np.ndarray  # (K,) of the original
    planned_steps: int
    rms_cap: float | None
    rows: BarRows
    throttles: Throttles = field(default_factory=Throttles)
    steps: list[int] = field(default_factory=list)
    p_source: list[float] = field(default_factory=list)
    p_target: list[float] = field(default_factory=list)
    rms: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    queries: list[int] = field(default_factory=list)  # per step, black-box attacks only (else empty)
    top_ids: list[np.ndarray] = field(default_factory=list)  # per step (TOP_K,) int16
    top_probs: list[np.ndarray] = field(default_factory=list)  # per step (TOP_K,) float32
    flip_step: int | None = None
    last_image: np.ndarray | None = None  # (H, W, 3) uint8 of the latest step
    snapshots: Snapshots = field(default_factory=Snapshots)
    status: str = "running"  # running | finished | stopped | failed
    error: str | None = None
    seconds: float = 0.0
    verdict: Verdict | None = None
    adversarial_png: bytes | None = None
    steps_iter: Iterator[Any] | None = field(default=None, repr=False)  # Steps, and serving.Waiting while queued
    shared: bool = False  # another session asked for the identical run first: its steps are shared
    replayed: bool = False  # that identical run had finished when asked: its steps are replayed, not computed
    waiting: str | None = None  # while queued: where the run is in the server's queue
    queued_s: float = 0.0  # seconds spent in the server's queue before the first step (not the run's own time)

    @property
    def labels(self) -> tuple[str, str | None]:
        return IMAGENET_CATEGORIES[self.source], None if self.target is None else IMAGENET_CATEGORIES[self.target]

    def record(self, step: Step) -> None:
        """Small numbers every step, and the image as the latest one and a replay snapshot (Snapshots thins them
        evenly to its capacity: a short run keeps every step, so the replay's image is the bars' step)."""
        numbers = step_numbers(step, TOP_K)
        self.steps.append(numbers.index)
        self.p_source.append(float(numbers.probs[self.source]))
        self.p_target.append(float(numbers.probs[self.target]) if self.target is not None else float("nan"))
        self.rms.append(numbers.rms)
        self.loss.append(numbers.loss)
        if numbers.queries is not None:
            self.queries.append(numbers.queries)
        self.top_ids.append(numbers.top_ids)
        self.top_probs.append(numbers.top_probs)
        top = int(numbers.top_ids[0])
        flipped = top == self.target if self.target is not None else top != self.source
        if flipped and self.flip_step is None:
            self.flip_step = numbers.index
        self.rows.update(numbers.probs)
        self.last_image = numbers.image
        self.snapshots.add(numbers.index, numbers.image)

    def bar_values(self, i: int) -> tuple[list[int], list[float]]:
        """Rows and their probabilities at recorded step i (a class outside that step's top-K shows as 0)."""
        rows = self.rows.rows
        found = dict(zip(self.top_ids[i].tolist(), self.top_probs[i].tolist(), strict=True))
        values = [found.get(c, 0.0) for c in rows]
        values[0] = self.p_source[i]
        if self.target is not None:
            values[1] = self.p_target[i]
        return rows, values

    def report(self) -> dict[str, Any]:
        """The JSON download: settings (as in the shareable URL), what was reached and the per-step numbers."""
        source_label, target_label = self.labels
        return {
            "settings": self.query,
            "model": self.model_name,
            "image": self.image_name,
            "attack": self.attack_name,
            "parameters": self.params,
            "target_choice": self.target_choice,
            "confidence": self.confidence,
            "seed": self.seed,
            "source": {"index": self.source, "label": source_label, "probability": float(self.probs0[self.source])},
            "target": None if self.target is None else {"index": self.target, "label": target_label},
            "status": self.status,
            "steps_run": len(self.steps),
            "queries": self.queries[-1] if self.queries else None,
            "flip_step": self.flip_step,
            "seconds": self.seconds,
            "verdict": None if self.verdict is None else asdict(self.verdict),
            "history": {
                "step": self.steps,
                "p_source": self.p_source,
                "p_target": None if self.target is None else self.p_target,
                "rms": self.rms,
            },
        }
