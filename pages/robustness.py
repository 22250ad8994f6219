"""Robustness: mirror, shift, crop, rotate, rescale, JPEG, blur, noise, brightness, contrast - does the adversarial
label survive? And the attack that makes it survive: expectation over transformation (EOT).

Thin page: widgets -> experiments.common.attack_image (plain and through experiments.robustness.EOT) ->
experiments.robustness.evaluate_robustness -> image grids and "still fooled" curves (seed 004 sec. 3.1). Run's
on_click marks the page busy (ui.experiments_view.request_start: settings drawn disabled, Stop usable); each part
goes into the stored result as it finishes (plain attack, its transforms, EOT attack, its transforms), so a Stop
keeps what was reached.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from attacks import ATTACKS, AttackError, Step, make_attack
from experiments.common import AttackOutcome, attack_image
from experiments.robustness import EOT, TRANSFORMS, RobustnessReport, evaluate_robustness
from images import ImageError
from models import IMAGENET_CATEGORIES, class_index
from ui import experiments_view as V
from ui import loaders
from ui.pickers import param_input

K = "exp.robust."
RESULT = K + "result"
JOB = K + "job"
TARGETED = [n for n, c in ATTACKS.items() if c.supports_targeted and any(p.name == "steps" for p in c.params)]
PLAIN_COLOUR, EOT_COLOUR = "#1f6fb4", "#d62728"
GRID_COLUMNS = 6  # images per row of the transform grid, so a one-strength transform is not drawn huge
VARIED = [n for n, t in TRANSFORMS.items() if len(t.strengths) > 1]  # drawn as curves over their strengths
ONE_STEP = [n for n, t in TRANSFORMS.items() if len(t.strengths) == 1]  # (the mirror) stated as text and images

job, kind = V.claim(JOB)
running = kind is not None

st.title("Robustness to transformations")
st.caption(
    "Robinson & Graham: cropping, translating or mirroring a relabelled image makes the label revert. Try every "
    "everyday change at growing strength. Then make the attack average its gradient over random transformations "
    "(EOT, Athalye et al. 2018): the perturbation grows, and it survives."
)

settings, view = st.columns([1, 2.3], gap="large")
with settings:
    picked = V.image_select(K + "image", disabled=running)
    model = V.model_select("Model", K + "model", disabled=running)
    target = V.class_select("Target class", K + "target", class_index("umbrella"), disabled=running)
    target_ok = True
    if picked is not None and model is not None:
        try:
            source = V.model_class(model.name, picked)
        except ImageError as err:
            V.error(f"this image cannot be used: {err}")
            target_ok = False
        else:
            if target == source:
                V.error(f"the target is the image's current class ({IMAGENET_CATEGORIES[source]}); pick another target")
                target_ok = False
            else:
                st.caption(f"Now the model sees: **{V.class_name(source)}**.")
    attack_name = st.selectbox(
        "Attack", TARGETED, key=K + "attack", format_func=lambda a: ATTACKS[a].title, disabled=running
    )
    st.caption(ATTACKS[attack_name].summary)
    with st.expander("Attack parameters (plain)"):
        params = {
            p.name: param_input(p, f"{K}{attack_name}.{p.name}", disabled=running) for p in ATTACKS[attack_name].params
        }
    # Defaults go into Session State, never value=: Run's on_click re-assigns every setting (request_start).
    for name, default in (("eot", True), ("samples", 8), ("conf", 0.5), ("rms", 0.05)):
        st.session_state.setdefault(K + name, default)
    use_eot = st.checkbox("Also make an EOT version", key=K + "eot", disabled=running)
    samples = st.slider(
        "EOT: random transforms per step",
        2,
        16,
        key=K + "samples",
        disabled=running or not use_eot,
        help="Each step averages the model over this many random mirror/shift/rotate/zoom/"
        "brightness/noise/JPEG versions of the image. Cost grows with it.",
    )
    eot_conf = st.slider(
        "EOT: stop when the average p(target) reaches",
        0.3,
        0.99,
        step=0.01,
        key=K + "conf",
        disabled=running or not use_eot,
    )
    eot_rms = st.number_input(
        "EOT: RMS cap", 0.005, 0.2, step=0.005, format="%.3f", key=K + "rms", disabled=running or not use_eot
    )
    try:
        plain_attack = make_attack(attack_name, **params)
        eot_params = dict(params)
        if "max_rms" in eot_params:
            eot_params["max_rms"] = eot_rms
        if attack_name == "relabel":
            eot_params["step_size"] = max(float(params["step_size"]), 1.0)
            eot_params["steps"] = max(int(params["steps"]), 300)
        eot_attack = make_attack(attack_name, **eot_params)
    except AttackError as err:
        V.error(err)
        plain_attack = eot_attack = None
    ready = picked is not None and model is not None and plain_attack is not None and target_ok
    V.run_stop_buttons(
        K, JOB, ready=ready, running=running, stop_help="Ends the run at the next step; whatever had finished stays."
    )
    bar = st.empty()  # progress right under Run: where the eye is after the click


def _attack(attacked: Any, attack: Any, original: Any, confidence: float, what: str) -> AttackOutcome:
    steps = int(attack.hparams.get("steps", 1))
    throttle = V.Throttle(0.4)

    def on_step(step: Step) -> None:
        V.checkpoint()
        if throttle.due(final=bool(step.done.all())):
            p = float(step.probs[0, target])
            bar.progress(
                min(1.0, step.index / max(steps, 1)),
                text=f"{what}: step {step.index} · p({IMAGENET_CATEGORIES[target]}) = {p:.1%} · "
                f"RMS {float(step.distortion[0]):.4f}",
            )

    assert model is not None
    return attack_image(attacked, model, original, attack, target, confidence=confidence, on_step=on_step)


def _work(result: dict[str, Any]) -> None:
    """Plain attack, its transforms, then EOT and its transforms; each part is stored the moment it finishes."""
    assert model is not None and picked is not None and plain_attack is not None
    original = loaders.from_png(loaders.model_input_png(model.name, picked.sample_id, picked.data))
    parts: list[tuple[str, Any, Any, float]] = [("plain", model, plain_attack, 0.0)]
    if use_eot and eot_attack is not None:
        parts.append(("EOT", EOT(model, samples=samples, seed=0), eot_attack, eot_conf))
    for what, attacked, attack, confidence in parts:
        label = "plain attack" if what == "plain" else f"EOT attack ({samples}/step)"
        result["stage"] = f"the {what} attack"
        outcome = _attack(attacked, attack, original, confidence, label)
        result["outcomes"][what] = outcome
        result["reports"][what] = None
        if outcome.success:
            result["stage"] = f"the transformations of the {what} result"
            bar.progress(1.0, text=f"Applying every transformation to the {what} result…")
            result["reports"][what] = evaluate_robustness(
                model, original, outcome.adversarial, adversarial_class=target, keep_images=True
            )


def _summary(outcome: AttackOutcome, report: RobustnessReport | None, what: str) -> str:
    v = outcome.verdict
    ok = "fooled" if v.success else "NOT fooled"
    line = f"**{what}**: the model is {ok} ({v.label}, {v.probability:.0%}) at RMS **{v.rms_distortion:.4f}**"
    if report is None:
        return line + "."
    rows = report.rows[1:]
    return line + f"; still fooled after **{sum(r.still_fooled for r in rows)} / {len(rows)}** transformations."


def _curve(reports: dict[str, RobustnessReport], name: str) -> dict[str, Any]:
    t = TRANSFORMS[name]
    series = {what: [r.row(name, s).p_adversarial_class for s in t.strengths] for what, r in reports.items()}
    return V.lines(
        [f"{s:g}" for s in t.strengths],
        series,
        title=f"p(target) under {t.title.lower()}",
        x_title=t.unit or "strength",
        y_title="p(target)",
        categorical_x=True,
        colours={"plain": PLAIN_COLOUR, "EOT": EOT_COLOUR},
    )


def _overview(reports: dict[str, RobustnessReport]) -> dict[str, Any]:
    """Fraction of strengths at which each transform leaves the image fooled, plain vs EOT: horizontal bars, so
    every transform's name is read in full."""
    data = []
    names: list[str] = []
    for what, rep in reports.items():
        curves = rep.curves()
        names = [TRANSFORMS[n].title for n in curves]
        data.append(
            {
                "type": "bar",
                "orientation": "h",
                "name": what,
                "y": names,
                "x": [sum(ok for _, ok in c) / len(c) for c in curves.values()],
                "text": [f"{sum(ok for _, ok in c)}/{len(c)}" for c in curves.values()],
                "textposition": "outside",
                "cliponaxis": False,
                "marker": {"color": PLAIN_COLOUR if what == "plain" else EOT_COLOUR},
            }
        )
    return {
        "data": data,
        "layout": {
            "title": {"text": "Still fooled (fraction of the strengths tried)"},
            "barmode": "group",
            "height": 110 + len(names) * (14 * len(reports) + 12),
            "font": V.FONT,
            "xaxis": {"range": [0, 1.15], "tickformat": ".0%"},
            "yaxis": {"autorange": "reversed", "automargin": True},
            "margin": {"l": 10, "r": 10, "t": 40, "b": 30},
            "legend": {"orientation": "h", "y": -0.12, "x": 0},
        },
    }


def _mark(still_fooled: bool, reverted: bool) -> str:
    return "still fooled ✔" if still_fooled else "reverted" if reverted else "other class"


def _one_step(ok: dict[str, RobustnessReport]) -> None:
    """Transforms with a single strength (the mirror): a sentence and the images, not a one-dot curve."""
    for name in ONE_STEP:
        t = TRANSFORMS[name]
        parts = []
        for what, rep in ok.items():
            row = rep.row(name, t.strengths[0])
            parts.append(f"{what} → {row.label} ({_mark(row.still_fooled, row.reverted)})")
        st.markdown(f"**{t.title}** (one strength only): " + " · ".join(parts) + ".")
        grid = st.columns(GRID_COLUMNS, gap="small")
        for col, (what, rep) in zip(grid, ok.items(), strict=False):
            row = rep.row(name, t.strengths[0])
            assert row.image is not None
            V.show_image(col, row.image, f"{what}: {row.label}")


def _show(result: dict[str, Any]) -> None:
    outcomes, reports = result["outcomes"], result["reports"]
    if result["status"] == "stopped":
        done = " and ".join(
            f"the {w} attack" + (" with its transformations" if reports.get(w) is not None else "") for w in outcomes
        )
        st.warning(
            f"Stopped during {result['stage']}. " + (f"Shown below: {done}." if outcomes else "Nothing had finished."),
            icon=":material/stop_circle:",
        )
    if not outcomes:
        return
    cols = st.columns(4, gap="medium")
    for i, (what, o) in enumerate(outcomes.items()):
        V.show_image(cols[2 * i], o.adversarial, f"{what}: {o.verdict.label} {o.verdict.probability:.0%}")
        with cols[2 * i + 1]:
            st.markdown(_summary(o, reports.get(what), what))
            if not o.success:
                V.error(
                    f"the {what} attack did not reach the target, so there is nothing to transform; "
                    "allow more steps or a larger RMS cap"
                )
    ok = {w: r for w, r in reports.items() if r is not None}
    if not ok:
        return
    V.chart(st.empty(), _overview(ok))
    _one_step(ok)
    name = st.selectbox(
        "Transformation", VARIED, key=K + "transform", format_func=lambda n: TRANSFORMS[n].title, disabled=running
    )
    V.chart(st.empty(), _curve(ok, name))
    t = TRANSFORMS[name]
    for what, rep in ok.items():
        st.markdown(f"##### {what}")
        grid = st.columns(max(len(t.strengths), GRID_COLUMNS), gap="small")
        for col, s in zip(grid, t.strengths, strict=False):
            row = rep.row(name, s)
            assert row.image is not None
            V.show_image(col, row.image, f"{row.title}: {row.label} ({_mark(row.still_fooled, row.reverted)})")
    first = next(iter(ok.values()))
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "transform": r.title,
                    **{f"{w}: label": rep.row(r.transform, r.strength).label for w, rep in ok.items()},
                    **{f"{w}: still fooled": rep.row(r.transform, r.strength).still_fooled for w, rep in ok.items()},
                    "original under the same transform": r.clean_label,
                }
                for r in first.rows[1:]
            ]
        ),
        hide_index=True,
        width="stretch",
    )


with view:
    if kind is not None:
        job["active"] = kind
        result: dict[str, Any] = {"outcomes": {}, "reports": {}, "stage": "the plain attack", "status": "running"}
        finished = False
        try:
            st.session_state[RESULT] = result  # a new run: the earlier result does not belong to these settings
            st.info(
                "Running: the plain attack and its transformations, then the EOT attack and its transformations. "
                "Progress is under **Run**; **Stop** keeps whatever has finished."
            )
            if ready:
                _work(result)
            finished = True
        except (AttackError, ImageError) as err:
            job["notes"].append(("error", str(err)))
            finished = True
        finally:
            # Only plain dicts are touched here: after a Stop any st.* call would raise again.
            result["status"] = "finished" if finished else "stopped"
            job["active"] = None
        st.rerun()  # draw the page again with the settings enabled and the result in place
    V.show_notes(job)
    stored = st.session_state.get(RESULT)
    if stored is not None:
        _show(stored)
    elif ready:
        st.info("Press **Run**: the attack runs once plainly and once with EOT, then every transformation is tried.")
