"""The Attack Lab's live view: fixed placeholders redrawn in place while a run goes on, then the verdict on the
8-bit image, the downloads and the replay scrubber. `live` is the page's whole run: start, resume, finish, draw.

Drawing only: the numbers come from experiments.lab.record, the run's control from ui.run, the figures from ui.figures.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
from collections.abc import Callable, Iterator
from functools import partial
from time import perf_counter
from typing import Any

import numpy as np
import streamlit as st

import serving
from attacks import ATTACKS, AttackError, Step
from attacks.runner import Verdict, verify
from experiments.lab import figures as lab_figures
from experiments.lab import record as lab_record
from experiments.lab.record import RECORD, RunRecord
from experiments.lab.steps import RUN_SEED, difference_image, resolve_target, run_request, scheduled_steps
from models import IMAGENET_CATEGORIES
from serving.scheduler import FINISHED, Waiting
from ui import figures, loaders, presenter, run, state
from ui.pickers import PARAM_LABELS, AttackChoice, Blocker, ImageChoice, ModelInput

BARS_HEIGHT = 310  # beside the images, inside the first 768-px screen at 1366x768
#: In the status line, not under the verdict: a caption there pushed the bars below a 720-px screen (issue 20).
SHARED_NOTE = " · computed once for everyone who asked for this same run"


def live(
    job: run.Job,
    view: LiveView,
    *,
    seen: ModelInput | None,
    image: ImageChoice | None,
    target: state.TargetChoice,
    choice: AttackChoice,
    query: dict[str, str],
    on_finish: Callable[[RunRecord], None] | None = None,
    blocker: Blocker | None = None,
) -> None:
    """Start a run on Run, continue it after any other rerun, finish it however it ended, and draw the page.
    `on_finish`: called once with the verified record when a run ends (a classroom challenge submits it);
    `blocker`: why Run is off now, said beside it."""
    record: RunRecord | None = st.session_state.get(RECORD)
    if job.status == "requested" and seen is not None and image is not None and choice.attack is not None:
        record = new_record(seen, image, target, choice, query)
        record.throttles.cams.next_at = perf_counter() + record.throttles.cams.min_interval  # bars come first
        st.session_state[RECORD] = record
    if record is not None and record.status == "running" and job.busy:
        view.draw_status(record, job.timing)
        view.draw_charts(record)
        view.draw_images(record, record.last_image if record.last_image is not None else record.original)
        throttles = record.throttles
        throttles.crowded(run.running_count() + 1, os.cpu_count() or 1)  # the live views a class draws at once

        def images(step: Any) -> None:
            if isinstance(step, Waiting):
                return
            view.draw_images(record, record.last_image)

        def charts(item: Any) -> None:
            view.draw_status(record, job.timing)
            if not isinstance(item, Waiting):  # queued: only the line saying where the run is
                view.draw_charts(record)

        def cams(step: Any) -> None:
            if not isinstance(step, Waiting):
                view.draw_cams(record, loaders.to_png(record.last_image))

        run.drive(
            job,
            lambda: steps(record),
            run.Draw(charts, throttles.charts),
            run.Draw(images, throttles.images),
            run.Draw(cams, throttles.cams),
        )
    elif job.status == "requested":
        run.drive(job, _not_ready)
    if record is not None and record.status == "running" and job.ended:
        record.seconds = max(0.0, job.timing.active - record.queued_s)  # the run's own time, without the queue
        errors = [text for level, text in job.notes if level == "error"]
        finish(record, job.status, errors[-1] if errors else None)
        if on_finish is not None:
            on_finish(record)
    if blocker is not None and not job.busy:
        view.draw_blocker(blocker)
    if record is None:
        view.draw_idle(seen, target, ready=job.status != "failed" and seen is not None, hint=blocker is None)
    else:
        view.show_result(record, job.timing, status=blocker is None, current=query)


def _not_ready() -> Any:
    raise AttackError("Run needs a usable image, model and target: see the message in the setup above")


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


def stale_note(record: RunRecord) -> str:
    """Said beside Run (in the status line's place) when the result shown is no longer the widgets' settings': which
    run it is, and how to get the new one."""
    title = ATTACKS[record.attack_name].title.split(" (")[0]
    source, target = record.labels
    aim = f"{source} → {target}" if target is not None else f"{source} → any other class"
    return f"This is your last run ({title}, {aim}); the settings have changed since: press Run to try them."


def not_fooled_hint(record: RunRecord) -> str | None:
    """One line saying why a finished run did not fool the model and what to change (issue 20: a default that
    fails with no hint reads as a broken tool). None for a stopped or failed run, or a fooled one."""
    v = record.verdict
    if record.status != "finished" or v is None or v.success:
        return None
    params = record.params
    if record.attack_name == "fgsm":
        if record.target is None:
            return "FGSM takes a single step of ε and this one was too small: raise ε, or choose BIM or PGD."
        return (
            "FGSM takes a single step of ε; one step rarely lands on one class in a thousand. Choose BIM or PGD "
            "(the same step, repeated), or make it untargeted."
        )
    if record.rms_cap is not None and v.rms_distortion >= 0.9 * record.rms_cap:
        return f"It reached its RMS limit ({record.rms_cap:g}) first: raise Max change (RMS)."
    on_top = v.index != record.source if record.target is None else v.index == record.target
    if record.confidence > 0 and on_top:
        return (
            f"The class wanted is on top, but below the stop threshold p ≥ {record.confidence:.0%}: lower it, or "
            "give the attack more room."
        )
    knobs = [PARAM_LABELS.get(n, n) for n in ("steps", "queries", "eps", "max_rms") if n in params]
    more = " or ".join(k.split(" (")[0] for k in knobs) if knobs else "the attack's budget"
    return f"It ran out of room before the model changed its mind: raise {more}."


class LiveView:
    """The placeholders of the run's view, created once per script run and updated in place."""

    def __init__(self, status: Any) -> None:
        # The story first, in one 768-px screen at 1366x768 (issue 20): the verdict, then the three images (the
        # point: "you can't see the change") beside the bars (the model sees the target); the history, the tools
        # and Grad-CAM below.
        self.status = status.empty()
        # an st.empty, not a container: a new run's first script run replaces the last run's verdict at once (a
        # container's old children stayed on screen, faded, for the whole of the next run)
        self.results = st.empty()
        images, bars = st.columns([2.1, 1.2], gap="medium")
        with images:
            cols = st.columns(3, gap="small")
            self.original, self.adversarial, self.difference = (c.empty() for c in cols)
            replay, gain = st.columns([1.7, 1], gap="medium", vertical_alignment="bottom")
            self.replay = replay.empty()
            # Drawn with the first difference image (`gain`): before a run a slider that changes nothing, on a
            # projector, reads as a broken page (issue 20).
            self._gain_slot, self._gain = gain.empty(), None
        self.bars = bars.empty()
        self.downloads = st.columns([1, 1, 3], gap="small")
        lines, cams = st.columns([1.5, 1], gap="medium")
        self.lines = lines.empty()
        with cams:
            self._cam_heading = st.empty()  # written with the first heatmaps: no empty heading before a run
            top, bottom = st.columns(2, gap="small"), st.columns(2, gap="small")
            # Order of draw_cams: source on original, source on adversarial, target on original, on adversarial.
            self.cams = [top[0].empty(), top[1].empty(), bottom[0].empty(), bottom[1].empty()]
        self._keys = itertools.count()

    @property
    def gain(self) -> int:
        """The difference image's amplification; the slider that sets it is drawn the first time it is asked for
        (once per script run: a widget key may appear only once)."""
        if self._gain is None:
            self._gain = int(
                self._gain_slot.slider(
                    "Amplify the difference",
                    1,
                    50,
                    key=state.GAIN,
                    format="×%d",
                    help="The difference image shows (adversarial - original) × this, around mid-grey.",
                )
            )
        return self._gain

    def _chart(self, slot: Any, figure: dict[str, Any]) -> None:
        # A unique key per draw: Streamlit refuses two identical charts in one script run (same element id).
        if presenter.on():  # the story readable from the back row (the same test as widgets.chart's)
            figure = figures.presented(figure)
        slot.plotly_chart(figure, key=f"chart-{next(self._keys)}", config={"displayModeBar": False})

    def draw_status(self, record: RunRecord, t: run.Timing, note: str = "") -> None:
        done = len(record.steps)
        own = max(0.0, t.active - record.queued_s)  # the run's time; the queue's is said apart
        rate = done / own if own and not record.shared else 0.0
        flip = f" · label flipped at step {record.flip_step}" if record.flip_step is not None else ""
        if record.waiting is not None:
            self.status.markdown(f":material/hourglass_top: {record.waiting}{note}")
            return
        if done == 0 and record.status == "running":  # asked, before the scheduler's first word: not "Step 0 · running"
            self.status.markdown(f":material/hourglass_top: Starting: asking the server for a place…{note}")
            return
        shared = SHARED_NOTE if record.shared else ""
        queries = f"{record.queries[-1]:,} model queries · " if record.queries else ""
        # a replay takes a blink: its own time would read as the attack's (a walk saw "0.1 s")
        took = "replayed from an identical finished run" if record.replayed else f"{own:.1f} s"
        # a replay is "running" only while its recorded steps are sent: the word read as a contradiction
        word = "" if record.replayed and record.status in ("running", "finished") else f" · {record.status}"
        self.status.markdown(
            f"**Step {max(done - 1, 0)} / {record.planned_steps}** · {queries}{took}"
            + (f" · after {record.queued_s:.0f} s in the queue" if record.queued_s >= 0.5 else "")
            + (f" · {rate:.1f} steps/s" if rate else "")
            + f"{word}{flip}{shared}{note}"
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
            figures.probability_bars(
                rows, values, labels, source=record.source, target=record.target, title=title, height=BARS_HEIGHT
            ),
        )
        self._chart(
            self.lines,
            lab_figures.history_lines(
                record.steps,
                record.p_source,
                record.p_target if record.target is not None else None,
                record.rms,
                source_label=source_label,
                target_label=target_label,
                flip_step=record.flip_step,
                rms_cap=record.rms_cap,
                marker=marker,
                queries=record.queries or None,
            ),
        )

    def draw_images(
        self, record: RunRecord, image: np.ndarray, step: int | None = None, *, shown_for: int | None = None
    ) -> None:
        """Original | adversarial | amplified difference, as exact PNGs. `image` is the snapshot of `step`;
        `shown_for`: the step the replay stands at, when the nearest snapshot is older (the caption says so)."""
        step = (record.steps[-1] if record.steps else 0) if step is None else step
        diff = loaders.to_png(difference_image(record.original, image, self.gain))
        source_label, _ = record.labels
        self.original.image(
            record.original_png,
            output_format="PNG",
            width="stretch",
            caption=f"Original: {source_label} {record.probs0[record.source]:.0%}",
        )
        caption = f"Adversarial at step {step}"
        if shown_for is not None and shown_for != step:
            caption = f"Replay at step {shown_for}: image of step {step}, the nearest snapshot"
        self.adversarial.image(loaders.to_png(image), output_format="PNG", width="stretch", caption=caption)
        self.difference.image(diff, output_format="PNG", width="stretch", caption=f"Difference ×{self.gain}")

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
        with self._cam_heading.container():
            st.markdown("##### Where the model looks (Grad-CAM)")
            st.space(12)  # room for the images' full-screen button, which otherwise sits on the heading
        for slot, png, caption in zip(self.cams, images, captions, strict=True):
            slot.image(png, output_format="PNG", width="stretch", caption=caption)

    def draw_blocker(self, blocker: Blocker) -> None:
        """Beside the greyed Run: why it is off, and the button that fixes it where there is one."""
        with self.status.container():
            text, fix = st.columns([3, 1], vertical_alignment="center") if blocker.fix else (st.container(), None)
            text.warning(blocker.sentence, icon=":material/block:")
            if fix is not None and blocker.fix is not None:
                fix.button(blocker.fix_label or "Fix", key="lab-fix", on_click=blocker.fix, width="stretch")

    def draw_idle(
        self, seen: ModelInput | None, target: state.TargetChoice, *, ready: bool = True, hint: bool = True
    ) -> None:
        """Before the first run: the original's bars with the target marked, and a hint (or what blocks Run;
        `hint` False: the blocker is already said beside Run)."""
        if hint and ready:
            self.status.info("Press **Run** to watch the model being fooled, step by step.")
        elif hint:
            self.status.warning("Run needs a usable image, model and target: see the message in the setup above.")
        if seen is None:
            return
        target_idx = (
            target if isinstance(target, int) else (int(seen.probs.argmin()) if target == state.LEAST_LIKELY else None)
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
                height=BARS_HEIGHT,
            ),
        )
        self.original.image(seen.png, output_format="PNG", width="stretch", caption="Original")

    def show_result(
        self, record: RunRecord, timing: run.Timing, *, status: bool = True, current: dict[str, str] | None = None
    ) -> None:
        """After a run: verdict, downloads and the replay scrubber, which redraws the view at the chosen step.
        `status` False: the status line's place holds why Run is off now. `current`: the settings the widgets hold
        now; when they differ from the run's, one line says the result is the last run's."""
        stale = current is not None and record.status != "running" and dict(current) != record.query
        with self.results.container():
            if stale and not status:  # else said in the status line, beside Run, instead of the old run's line
                st.caption(f":material/history: {stale_note(record)}")
            v = record.verdict
            if record.status == "failed":
                st.error(f"The attack failed: {record.error}.")
                v = None  # no verdict or downloads for an image the attack never changed
                if not record.steps:
                    return
            if v is not None:
                last = record.steps[-1] if record.steps else 0
                when = f"Stopped at step {last}: " if record.status == "stopped" else ""
                text = f"{when}{'the' if when else 'The'} saved 8-bit image is {_verdict_sentence(v)}."
                if v.success:
                    st.success(f"Fooled! {text}", icon=":material/check_circle:")
                else:
                    hint = not_fooled_hint(record)
                    st.warning(f"Not fooled. {text}" + (f"  \n{hint}" if hint else ""), icon=":material/info:")
            _, target_label = record.labels
            stem = f"{record.image_name.rsplit('.', 1)[0]}_to_{(target_label or 'untargeted').replace(' ', '_')}"
            downloads = [
                ("Adversarial PNG", record.adversarial_png, "png", "image/png"),
                (
                    "Result (JSON)",
                    lambda: json.dumps(_finite(record.report()), indent=2),
                    "json",
                    "application/json",
                ),
            ]
            for col, (label, data, ext, mime) in zip(self.downloads, downloads, strict=False):
                if data is not None:
                    col.download_button(
                        label,
                        data,
                        file_name=f"{stem}.{ext}",
                        mime=mime,
                        icon=":material/download:",
                        on_click="ignore",
                        key=f"download-{ext}",
                        width="stretch",
                    )
            index = len(record.steps) - 1
            if len(record.steps) > 1:
                index = self.replay.slider(
                    "Replay: step",
                    0,
                    len(record.steps) - 1,
                    value=len(record.steps) - 1,
                    key=f"replay-{record.run_id}",
                    help="Scrub through the recorded steps; images are from the nearest "
                    "snapshot at or before the step.",
                )
        if status and stale:
            self.status.markdown(f":material/history: {stale_note(record)}")
        elif status:
            self.draw_status(record, timing)
        if not record.steps:
            return
        step = record.steps[index]
        self.draw_charts(record, index=index, marker=step)
        snap = record.snapshots.at(step)
        shown_step, image = snap if snap is not None else (0, record.original)
        self.draw_images(record, image, step=shown_step, shown_for=step)
        self.draw_cams(record, loaders.to_png(image))


# --- a run's life: built from the pickers, its Steps recorded, verified at the end ----------------------------


def new_record(
    seen: ModelInput,
    image: ImageChoice,
    target: state.TargetChoice,
    choice: AttackChoice,
    query: dict[str, str],
) -> RunRecord:
    """Build the attack's Step generator for the picked image, model and target; nothing runs yet."""
    assert choice.attack is not None
    target_idx = resolve_target(target, seen.probs, secrets.randbelow(2**31))  # "random": a new class each Run
    original = loaders.from_png(seen.png)
    confidence = choice.confidence  # one rule for targeted and untargeted runs, as the CLI's --confidence
    request = run_request(
        seen.model_name, original, choice.attack, source=seen.source, target=target_idx, confidence=confidence
    )
    scheduler = serving.scheduler()
    ticket = scheduler.submit(request)  # or the identical run another session already asked for
    record = RunRecord(
        run_id=next(lab_record.run_ids),
        model_name=seen.model_name,
        image_name=image.name,
        attack_name=choice.name,
        params=dict(choice.params),
        query=dict(query),
        target_choice=state.target_text(target),
        seed=RUN_SEED,
        source=seen.source,
        target=target_idx,
        confidence=confidence,
        original_png=seen.png,
        original=np.array(original, dtype=np.uint8),  # a writable copy (torch.from_numpy warns otherwise)
        probs0=seen.probs,
        planned_steps=choice.attack.total_steps(),
        rms_cap=choice.params.get("max_rms"),
        rows=figures.BarRows(seen.source, target_idx),
        steps_iter=scheduled_steps(scheduler, ticket),
        shared=ticket.asked > 1,
        replayed=ticket.status == FINISHED,
    )
    return record


def steps(record: RunRecord) -> Iterator[Step | Waiting]:
    """The run's work for ui.run.drive: `Waiting` while queued (a yield point, so Stop works), then each Step
    recorded as it comes."""
    assert record.steps_iter is not None
    asked = perf_counter()
    for item in record.steps_iter:
        if isinstance(item, Waiting):
            record.waiting = item.sentence()
            record.queued_s = perf_counter() - asked  # until the first step: the queue's time, not the run's
        else:
            record.waiting = None
            record.record(item)
        yield item


def finish(record: RunRecord, status: str, error: str | None = None) -> None:
    """Verify the last image on its 8-bit PNG, keep it for download and the replay, and drop the generator (which
    leaves the run in the scheduler: a Stop while queued takes it out of the queue)."""
    if record.steps_iter is not None:
        record.steps_iter.close()
    record.steps_iter = None
    record.waiting = None
    record.status = status
    record.error = error
    if record.last_image is None:
        record.last_image = record.original
    model = loaders.get_model(record.model_name)
    adversarial_png = loaders.to_png(record.last_image)
    record.verdict = serving.page_work(
        partial(verify, source=record.source, target=record.target, confidence=record.confidence),
        model,
        loaders.from_png(record.original_png),
        loaders.from_png(adversarial_png),
    )
    record.adversarial_png = adversarial_png
    record.snapshots.add(record.steps[-1] if record.steps else 0, record.last_image)
