"""The live view of an attack: fixed placeholders redrawn in place on time budgets, the run's history in
st.session_state, Stop, the replay scrubber, the verdict on the 8-bit image and the downloads.

How a run works. Run's callback stamps the click time; the script builds the attack's Step generator and keeps it,
with every recorded number, in a RunRecord in st.session_state. `drive` pulls Steps, records each one (small
numbers every step; images only at image redraws, in a bounded set of snapshots), and redraws placeholders when
their Throttle says so. Stop's callback sets a flag; the click makes Streamlit rerun the script, which raises
inside `drive` at its next Streamlit call (a session-state lookup after every step is one), so the loop ends
within one attack step. The new run sees the flag, verifies what was reached and shows it. Any other rerun
during a run (the amplification slider, a page switch) resumes the same generator where it was.
"""

from __future__ import annotations

import itertools
import json
import random
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from time import perf_counter
from typing import Any

import numpy as np
import streamlit as st
import torch
from streamlit.runtime.scriptrunner import StopException

from attacks import AttackError, Goal, Step
from attacks.metrics import amplified_difference
from attacks.runner import Verdict, verify
from models import IMAGENET_CATEGORIES, pil_to_tensor, tensor_to_pil
from ui import figures, loaders
from ui import state as S
from ui.pickers import AttackChoice, ImageChoice, ModelInput

RECORD = "lab.record"
_START = "lab.start"
_STOP = "lab.stop"
TOP_K = 20  # classes recorded per step: enough for every bar the chart can show
_run_ids = itertools.count(1)


@dataclass
class Throttle:
    """When to redraw one part of the view: at most every `min_interval` seconds, and rarely enough that drawing
    costs at most `budget` of the run's wall time (the next draw waits cost * (1 - budget) / budget).

    `backoff` stretches the interval to backoff * elapsed, and `cap` bounds the count: Streamlit keeps every image
    replaced during a script run until the run ends, so a long run must not send images at a constant rate.
    """

    min_interval: float
    budget: float
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


@dataclass
class Timings:
    """perf_counter accounting of a run, for the status line and benchmarks/bench_ui.py."""

    clicked: float  # perf_counter() in Run's callback, i.e. when the click reached the server
    first_update: float | None = None  # seconds from the click to the first bars on the page
    attack: float = 0.0  # seconds inside the attack's generator
    render: float = 0.0  # seconds drawing the live view
    active: float = 0.0  # wall seconds of the loop (attack + recording + drawing)
    charts: Throttle = field(default_factory=lambda: Throttle(min_interval=0.25, budget=0.08))
    images: Throttle = field(default_factory=lambda: Throttle(min_interval=0.75, budget=0.05, backoff=0.03, cap=200))
    cams: Throttle = field(default_factory=lambda: Throttle(min_interval=3.0, budget=0.06, backoff=0.05, cap=100))

    @property
    def render_fraction(self) -> float:
        return self.render / self.active if self.active else 0.0


@dataclass
class Snapshots:
    """Adversarial images kept for the replay: at most `capacity`, thinned evenly as a long run grows."""

    capacity: int = 48
    frames: dict[int, np.ndarray] = field(default_factory=dict)  # step -> (H, W, 3) uint8

    def add(self, step: int, image: np.ndarray) -> None:
        self.frames[step] = image
        if len(self.frames) > self.capacity:
            keys = sorted(self.frames)
            keep = set(keys[::2]) | {keys[-1]}
            self.frames = {k: self.frames[k] for k in keys if k in keep}

    def at(self, step: int) -> tuple[int, np.ndarray] | None:
        """The latest snapshot at or before `step`."""
        best = max((k for k in self.frames if k <= step), default=None)
        return None if best is None else (best, self.frames[best])


@dataclass
class RunRecord:
    """Everything one run needs to be drawn, stopped, resumed and replayed; lives in st.session_state[RECORD]."""

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
    timings: Timings
    rows: figures.BarRows
    steps: list[int] = field(default_factory=list)
    p_source: list[float] = field(default_factory=list)
    p_target: list[float] = field(default_factory=list)
    rms: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    top_ids: list[np.ndarray] = field(default_factory=list)  # per step (TOP_K,) int16
    top_probs: list[np.ndarray] = field(default_factory=list)  # per step (TOP_K,) float32
    flip_step: int | None = None
    last_image: np.ndarray | None = None  # (H, W, 3) uint8 of the latest step
    snapshots: Snapshots = field(default_factory=Snapshots)
    status: str = "running"  # running | finished | stopped | failed
    error: str | None = None
    verdict: Verdict | None = None
    adversarial_png: bytes | None = None
    steps_iter: Iterator[Step] | None = field(default=None, repr=False)

    @property
    def labels(self) -> tuple[str, str | None]:
        return IMAGENET_CATEGORIES[self.source], None if self.target is None else IMAGENET_CATEGORIES[self.target]

    def record(self, step: Step) -> None:
        """Small numbers every step; the image only as the latest one (snapshots are taken at image redraws)."""
        probs = step.probs[0]  # (K,)
        values, ids = probs.topk(TOP_K)
        self.steps.append(step.index)
        self.p_source.append(float(probs[self.source]))
        self.p_target.append(float(probs[self.target]) if self.target is not None else float("nan"))
        self.rms.append(float(step.distortion[0]))
        self.loss.append(float(step.loss[0]))
        self.top_ids.append(ids.to(torch.int16).cpu().numpy())
        self.top_probs.append(values.float().cpu().numpy())
        top = int(ids[0])
        flipped = top == self.target if self.target is not None else top != self.source
        if flipped and self.flip_step is None:
            self.flip_step = step.index
        self.rows.update(probs.cpu().numpy())
        self.last_image = (step.x_adv[0] * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()

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
            "flip_step": self.flip_step,
            "seconds": self.timings.active,
            "verdict": None if self.verdict is None else asdict(self.verdict),
            "history": {
                "step": self.steps,
                "p_source": self.p_source,
                "p_target": None if self.target is None else self.p_target,
                "rms": self.rms,
            },
        }


# ---------------------------------------------------------------- starting, stopping, resuming


def _request_start() -> None:
    S.pin_values(S.setting_keys())
    st.session_state[_START] = perf_counter()
    st.session_state[S.SETUP_OPEN] = False  # fold the setup: on a projector the live view needs the screen


def _request_stop() -> None:
    st.session_state[_STOP] = True


def busy() -> bool:
    """A run is starting or going on (the setting widgets are disabled meanwhile)."""
    if st.session_state.get(_STOP):
        return False
    record = st.session_state.get(RECORD)
    return _START in st.session_state or (record is not None and record.status == "running")


def run_bar(*, ready: bool, running: bool) -> Any:
    """Run, Stop and the container for the status line. Stop is outside any fragment and any folded panel, so it
    is always in sight and its click reruns the script that holds the loop."""
    run_col, stop_col, status = st.columns([1, 1, 6], gap="small", vertical_alignment="center")
    run_col.button(
        "Run",
        key="run",
        type="primary",
        icon=":material/play_arrow:",
        width="stretch",
        disabled=running or not ready,
        on_click=_request_start,
    )
    stop_col.button(
        "Stop", key="stop", icon=":material/stop:", width="stretch", disabled=not running, on_click=_request_stop
    )
    return status


def _resolve_target(choice: S.TargetChoice, seen: ModelInput, seed: int) -> int | None:
    if choice == S.UNTARGETED:
        return None
    if choice == S.LEAST_LIKELY:
        return int(seen.probs.argmin())
    if choice == S.RANDOM:
        return random.Random(seed).choice([c for c in range(len(seen.probs)) if c != seen.source])
    return int(choice)


def new_record(
    seen: ModelInput,
    image: ImageChoice,
    target: S.TargetChoice,
    choice: AttackChoice,
    query: dict[str, str],
    clicked: float,
) -> RunRecord:
    """Build the attack's Step generator for the picked image, model and target; nothing runs yet."""
    assert choice.attack is not None
    model = seen.model
    seed = secrets.randbelow(2**31)
    source = seen.source
    target_idx = _resolve_target(target, seen, seed)
    original = loaders.from_png(seen.png)
    x0 = pil_to_tensor(original).to(model.device)  # (1, 3, H, W)
    goal = Goal(
        torch.tensor([source], device=model.device),
        None if target_idx is None else torch.tensor([target_idx], device=model.device),
        choice.confidence if target_idx is not None else 0.0,
    )
    now = perf_counter()
    timings = Timings(clicked=clicked)
    timings.cams.next_at = now + timings.cams.min_interval  # the first heatmaps wait: the first bars come first
    return RunRecord(
        run_id=next(_run_ids),
        model_name=seen.model_name,
        image_name=image.name,
        attack_name=choice.name,
        params=dict(choice.params),
        query=dict(query),
        target_choice=S.target_text(target),
        seed=seed,
        source=source,
        target=target_idx,
        confidence=choice.confidence if target_idx is not None else 0.0,
        original_png=seen.png,
        original=np.array(original, dtype=np.uint8),  # a writable copy (torch.from_numpy warns otherwise)
        probs0=seen.probs,
        planned_steps=int(choice.attack.hparams.get("steps", 1)),
        rms_cap=choice.params.get("max_rms"),
        timings=timings,
        rows=figures.BarRows(source, target_idx),
        steps_iter=choice.attack.run(model, x0, goal, seed=seed),
    )


def finish(record: RunRecord, status: str) -> None:
    """Verify the last image on its 8-bit PNG, keep it for download and the replay, and drop the generator."""
    record.steps_iter = None
    record.status = status
    if record.last_image is None:
        record.last_image = record.original
    model = loaders.get_model(record.model_name)
    adversarial_png = loaders.to_png(record.last_image)
    record.verdict = verify(
        model,
        loaders.from_png(record.original_png),
        loaders.from_png(adversarial_png),
        source=record.source,
        target=record.target,
        confidence=record.confidence,
    )
    record.adversarial_png = adversarial_png
    record.snapshots.add(record.steps[-1] if record.steps else 0, record.last_image)


def start_or_resume(
    view: LiveView,
    *,
    seen: ModelInput | None,
    image: ImageChoice | None,
    target: S.TargetChoice,
    choice: AttackChoice,
    ready: bool,
    query: dict[str, str],
) -> RunRecord | None:
    """Start a run on Run, finish it on Stop, continue it after any other rerun; returns the session's record."""
    clicked = st.session_state.pop(_START, None)
    stop = st.session_state.pop(_STOP, False)
    record: RunRecord | None = st.session_state.get(RECORD)
    if clicked is not None and ready and seen is not None and image is not None:
        record = new_record(seen, image, target, choice, query, clicked)
        st.session_state[RECORD] = record
    if record is None or record.status != "running":
        return record
    if stop:
        finish(record, "stopped")
        return record
    try:
        drive(record, view)
    except AttackError as err:
        record.error = str(err)
        finish(record, "failed")
    except StopException:  # Streamlit's own Stop (top right) or the browser tab closing: keep what was reached
        finish(record, "stopped")
        raise
    else:
        finish(record, "finished")
    st.rerun()  # draw the page again with the settings enabled and the replay in place
    return record


def drive(record: RunRecord, view: LiveView) -> None:
    """Pull Steps until the attack is done: record every one, redraw each part of the view on its throttle."""
    t = record.timings
    gen = record.steps_iter
    assert gen is not None
    start = perf_counter()
    view.draw_status(record)
    view.draw_charts(record)
    view.draw_images(record, record.last_image if record.last_image is not None else record.original)
    drawn = perf_counter()
    t.render += drawn - start
    t.active += drawn - start
    if t.first_update is None:
        t.first_update = drawn - t.clicked
    while True:
        t0 = perf_counter()
        step = next(gen, None)
        t1 = perf_counter()
        t.attack += t1 - t0
        if step is None:
            t.active += t1 - t0
            return
        record.record(step)
        t2 = perf_counter()
        t.active += t2 - t0
        _ = RECORD in st.session_state  # a Streamlit yield point: a Stop click takes effect here, every step
        if t.charts.due(t2):
            view.draw_status(record)
            view.draw_charts(record)
            t.charts.spent(t2, perf_counter(), t.active)
        t3 = perf_counter()
        if t.images.due(t3):
            record.snapshots.add(step.index, record.last_image)
            view.draw_images(record, record.last_image)
            t.images.spent(t3, perf_counter(), t.active)
        t4 = perf_counter()
        if t.cams.due(t4):
            view.draw_cams(record, loaders.to_png(record.last_image))
            t.cams.spent(t4, perf_counter(), t.active)
        t5 = perf_counter()
        t.render += t5 - t2
        t.active += t5 - t2


# ---------------------------------------------------------------- drawing


def _finite(value: Any) -> Any:
    """JSON has no NaN or Infinity (PSNR of an unchanged image is +inf): those become null."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _verdict_sentence(v: Verdict) -> str:
    return (
        f"classified as **{v.label}** with {v.probability:.0%} — RMS distortion {v.rms_distortion:.4f}, "
        f"max change {v.max_change_255}/255"
    )


class LiveView:
    """The placeholders of the run's view, created once per script run and updated in place."""

    def __init__(self, status: Any) -> None:
        self.status = status.empty()
        self.results = st.container()
        left, right = st.columns(2, gap="medium")
        self.bars = left.empty()
        self.lines = right.empty()
        images, cams = st.columns([3, 1.1], gap="medium")
        with images:
            st.markdown("##### Original · adversarial · amplified difference")
            cols = st.columns(3, gap="small")
            self.original, self.adversarial, self.difference = (c.empty() for c in cols)
            _, slider = st.columns([2, 1])
            self.gain = int(
                slider.slider(
                    "Amplification of the difference",
                    1,
                    50,
                    key=S.GAIN,
                    format="×%d",
                    help="The difference image shows (adversarial - original) × this, around mid-grey.",
                )
            )
        with cams:
            st.markdown("##### Where the model looks (Grad-CAM)")
            top, bottom = st.columns(2, gap="small"), st.columns(2, gap="small")
            # Order of draw_cams: source on original, source on adversarial, target on original, on adversarial.
            self.cams = [top[0].empty(), top[1].empty(), bottom[0].empty(), bottom[1].empty()]
        self._keys = itertools.count()

    def _chart(self, slot: Any, figure: dict[str, Any]) -> None:
        # A unique key per draw: Streamlit refuses two identical charts in one script run (same element id).
        slot.plotly_chart(figure, key=f"chart-{next(self._keys)}", config={"displayModeBar": False})

    def draw_status(self, record: RunRecord, note: str = "") -> None:
        t = record.timings
        done = len(record.steps)
        rate = done / t.active if t.active else 0.0
        state = {"running": "running", "finished": "finished", "stopped": "stopped", "failed": "failed"}[record.status]
        flip = f" · label flipped at step {record.flip_step}" if record.flip_step is not None else ""
        self.status.markdown(
            f"**Step {max(done - 1, 0)} / {record.planned_steps}** · {t.active:.1f} s · {rate:.1f} steps/s · "
            f"{state}{flip}{note}"
        )

    def draw_charts(self, record: RunRecord, index: int | None = None, marker: int | None = None) -> None:
        """Bars at recorded step `index` (default: the latest; before any step: the original) and the history."""
        source_label, target_label = record.labels
        if record.steps:
            i = len(record.steps) - 1 if index is None else index
            rows, values = record.bar_values(i)
            title = f"Class probabilities at step {record.steps[i]}"
        else:
            rows = record.rows.update(record.probs0)
            values = [float(record.probs0[c]) for c in rows]
            title = "Class probabilities of the original"
        labels = figures.row_labels(rows, IMAGENET_CATEGORIES, record.source, record.target)
        self._chart(
            self.bars,
            figures.probability_bars(rows, values, labels, source=record.source, target=record.target, title=title),
        )
        self._chart(
            self.lines,
            figures.history_lines(
                record.steps,
                record.p_source,
                record.p_target if record.target is not None else None,
                record.rms,
                source_label=source_label,
                target_label=target_label,
                flip_step=record.flip_step,
                rms_cap=record.rms_cap,
                marker=marker,
            ),
        )

    def draw_images(self, record: RunRecord, image: np.ndarray, step: int | None = None) -> None:
        """Original | adversarial | amplified difference, as exact PNGs."""
        step = (record.steps[-1] if record.steps else 0) if step is None else step
        x0 = torch.from_numpy(record.original).permute(2, 0, 1)[None].float() / 255  # (1, 3, H, W)
        xa = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255  # (1, 3, H, W)
        diff = loaders.to_png(tensor_to_pil(amplified_difference(xa, x0, self.gain)))
        source_label, _ = record.labels
        self.original.image(
            record.original_png,
            output_format="PNG",
            width="stretch",
            caption=f"Original: {source_label} {record.probs0[record.source]:.0%}",
        )
        self.adversarial.image(
            loaders.to_png(image), output_format="PNG", width="stretch", caption=f"Adversarial at step {step}"
        )
        self.difference.image(
            diff, output_format="PNG", width="stretch", caption=f"Difference ×{self.gain} around mid-grey"
        )

    def draw_cams(self, record: RunRecord, adversarial_png: bytes) -> None:
        """Grad-CAM of the source and the target class (untargeted: the new top class) on both images."""
        source_label, target_label = record.labels
        other = record.target
        if other is None:
            probs = loaders.probabilities(record.model_name, adversarial_png)
            other = int(probs.argmax())
            target_label = IMAGENET_CATEGORIES[other]
        classes = (record.source, other)
        on_original = loaders.cam_overlays(record.model_name, record.original_png, classes)
        on_adversarial = loaders.cam_overlays(record.model_name, adversarial_png, classes)
        captions = [
            f"{source_label} · original",
            f"{source_label} · adversarial",
            f"{target_label} · original",
            f"{target_label} · adversarial",
        ]
        images = [on_original[0], on_adversarial[0], on_original[1], on_adversarial[1]]
        for slot, png, caption in zip(self.cams, images, captions, strict=True):
            slot.image(png, output_format="PNG", width="stretch", caption=caption)

    def draw_idle(self, seen: ModelInput | None, target: S.TargetChoice, *, ready: bool = True) -> None:
        """Before the first run: the original's bars with the target marked, and a hint (or what blocks Run)."""
        if ready:
            self.status.info("Press **Run** to watch the model being fooled, step by step.")
        else:
            self.status.warning("Run needs a usable image, model and target: see the message in the setup above.")
        if seen is None:
            return
        target_idx = (
            target if isinstance(target, int) else (int(seen.probs.argmin()) if target == S.LEAST_LIKELY else None)
        )
        if target_idx == seen.source:
            target_idx = None
        rows = figures.BarRows(seen.source, target_idx).update(seen.probs)
        labels = figures.row_labels(rows, IMAGENET_CATEGORIES, seen.source, target_idx)
        self._chart(
            self.bars,
            figures.probability_bars(
                rows,
                [float(seen.probs[c]) for c in rows],
                labels,
                source=seen.source,
                target=target_idx,
                title="Class probabilities of the original",
            ),
        )
        self.original.image(seen.png, output_format="PNG", width="stretch", caption="Original")

    def show_result(self, record: RunRecord) -> None:
        """After a run: verdict, downloads and the replay scrubber, which redraws the view at the chosen step."""
        with self.results:
            v = record.verdict
            if record.status == "failed":
                st.error(f"The attack failed: {record.error}.")
            if v is not None:
                last = record.steps[-1] if record.steps else 0
                when = f"Stopped at step {last}: " if record.status == "stopped" else ""
                text = f"{when}{'the' if when else 'The'} saved 8-bit image is {_verdict_sentence(v)}."
                if v.success:
                    st.success(f"Fooled! {text}", icon=":material/check_circle:")
                else:
                    st.warning(f"Not fooled. {text}", icon=":material/info:")
            cols = st.columns([1, 1, 3], vertical_alignment="bottom")
            _, target_label = record.labels
            stem = f"{record.image_name.rsplit('.', 1)[0]}_to_{(target_label or 'untargeted').replace(' ', '_')}"
            if record.adversarial_png is not None:
                cols[0].download_button(
                    "Adversarial PNG",
                    record.adversarial_png,
                    file_name=f"{stem}.png",
                    mime="image/png",
                    icon=":material/download:",
                    on_click="ignore",
                    key="download-png",
                    width="stretch",
                )
            cols[1].download_button(
                "Settings & result (JSON)",
                lambda: json.dumps(_finite(record.report()), indent=2),
                file_name=f"{stem}.json",
                mime="application/json",
                on_click="ignore",
                icon=":material/download:",
                key="download-json",
                width="stretch",
            )
            index = len(record.steps) - 1
            if len(record.steps) > 1:
                index = cols[2].slider(
                    "Replay: step",
                    0,
                    len(record.steps) - 1,
                    value=len(record.steps) - 1,
                    key=f"replay-{record.run_id}",
                    help="Scrub through the recorded steps; images are from the nearest "
                    "snapshot at or before the step.",
                )
        self.draw_status(record)
        if not record.steps:
            return
        step = record.steps[index]
        self.draw_charts(record, index=index, marker=step)
        snap = record.snapshots.at(step)
        shown_step, image = snap if snap is not None else (0, record.original)
        self.draw_images(record, image, step=shown_step)
        self.draw_cams(record, loaders.to_png(image))
