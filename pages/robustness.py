"""Robustness: mirror, shift, crop, rotate, rescale, JPEG, blur, noise, brightness, contrast - does the adversarial
label survive? And the attack that makes it survive: expectation over transformation (EOT).

Thin page: widgets -> experiments.common.attack_image (plain and through experiments.robustness.EOT) ->
experiments.robustness.evaluate_robustness -> image grids and "still fooled" curves (seed 004 sec. 3.1).
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

K = "exp.robust."
RESULT = K + "result"
TARGETED = [n for n, c in ATTACKS.items() if c.supports_targeted and any(p.name == "steps" for p in c.params)]
PLAIN_COLOUR, EOT_COLOUR = "#1f6fb4", "#d62728"
GRID_COLUMNS = 6  # images per row of the transform grid, so a one-strength transform is not drawn huge

st.title("Robustness to transformations")
st.caption(
    "Robinson & Graham: cropping, translating or mirroring a relabelled image makes the label revert. Try every "
    "everyday change at growing strength. Then make the attack average its gradient over random transformations "
    "(EOT, Athalye et al. 2018): the perturbation grows, and it survives."
)

settings, view = st.columns([1, 2.3], gap="large")
with settings:
    picked = V.image_select(K + "image")
    model = V.model_select("Model", K + "model")
    target = V.class_select("Target class", K + "target", class_index("umbrella"))
    attack_name = st.selectbox("Attack", TARGETED, key=K + "attack", format_func=lambda a: ATTACKS[a].title)
    st.caption(ATTACKS[attack_name].summary)
    with st.expander("Attack parameters (plain)"):
        params = {}
        for p in ATTACKS[attack_name].params:
            label = f"{p.name.replace('_', ' ')} ({p.unit})" if p.unit else p.name.replace("_", " ")
            params[p.name] = st.number_input(
                label,
                value=int(p.default) if p.integer else float(p.default),
                help=p.help,
                key=f"{K}{attack_name}.{p.name}",
            )
    use_eot = st.checkbox("Also make an EOT version", value=True, key=K + "eot")
    samples = st.slider(
        "EOT: random transforms per step",
        2,
        16,
        8,
        key=K + "samples",
        disabled=not use_eot,
        help="Each step averages the model over this many random mirror/shift/rotate/zoom/"
        "brightness/noise/JPEG versions of the image. Cost grows with it.",
    )
    eot_conf = st.slider(
        "EOT: stop when the average p(target) reaches", 0.3, 0.99, 0.5, 0.01, key=K + "conf", disabled=not use_eot
    )
    eot_rms = st.number_input(
        "EOT: RMS cap", 0.005, 0.2, 0.05, 0.005, format="%.3f", key=K + "rms", disabled=not use_eot
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
    ready = picked is not None and model is not None and plain_attack is not None
    run = st.button(
        "Run", type="primary", key=K + "run", disabled=not ready, icon=":material/play_arrow:", width="stretch"
    )
    st.button("Stop", key=K + "stop", icon=":material/stop:", width="stretch")


def _attack(attacked: Any, attack: Any, original: Any, confidence: float, bar: Any, what: str) -> AttackOutcome:
    steps = int(attack.hparams.get("steps", 1))
    throttle = V.Throttle(0.4)

    def on_step(step: Step) -> None:
        if throttle.due(final=bool(step.done.all())):
            p = float(step.probs[0, target])
            bar.progress(
                min(1.0, step.index / max(steps, 1)),
                text=f"{what}: step {step.index} · p({IMAGENET_CATEGORIES[target]}) = {p:.1%} · "
                f"RMS {float(step.distortion[0]):.4f}",
            )

    assert model is not None
    return attack_image(attacked, model, original, attack, target, confidence=confidence, on_step=on_step)


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
        x_title=t.unit or "applied",
        y_title="p(target)",
        categorical_x=True,
        colours={"plain": PLAIN_COLOUR, "EOT": EOT_COLOUR},
    )


def _overview(reports: dict[str, RobustnessReport]) -> dict[str, Any]:
    """Fraction of strengths at which each transform leaves the image fooled, plain vs EOT."""
    data = []
    for what, rep in reports.items():
        curves = rep.curves()
        data.append(
            {
                "type": "bar",
                "name": what,
                "x": [TRANSFORMS[n].title for n in curves],
                "y": [sum(ok for _, ok in c) / len(c) for c in curves.values()],
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
            "height": 320,
            "font": V.FONT,
            "yaxis": {"range": [0, 1.15], "tickformat": ".0%"},
            "margin": {"l": 10, "r": 10, "t": 60, "b": 30},
            "legend": {"orientation": "h", "y": -0.35},
        },
    }


with view:
    bar = st.empty()
    try:
        if run and ready:
            assert model is not None and picked is not None and plain_attack is not None
            st.session_state.pop(RESULT, None)
            original = model.preprocess(picked.image)
            outcomes = {"plain": _attack(model, plain_attack, original, 0.0, bar, "plain attack")}
            if use_eot and eot_attack is not None:
                eot_model = EOT(model, samples=samples, seed=0)
                outcomes["EOT"] = _attack(
                    eot_model, eot_attack, original, eot_conf, bar, f"EOT attack ({samples}/step)"
                )
            bar.progress(1.0, text="Applying every transformation…")
            reports: dict[str, RobustnessReport | None] = {}
            for what, o in outcomes.items():
                reports[what] = (
                    evaluate_robustness(model, original, o.adversarial, adversarial_class=target, keep_images=True)
                    if o.success
                    else None
                )
            st.session_state[RESULT] = {"outcomes": outcomes, "reports": reports, "model": model.name}
            bar.empty()
    except (AttackError, ImageError) as err:
        bar.empty()
        V.error(err)

    result = st.session_state.get(RESULT)
    if result is None:
        st.info("Press **Run**: the attack runs once plainly and once with EOT, then every transformation is tried.")
    else:
        outcomes, reports = result["outcomes"], result["reports"]
        cols = st.columns(4, gap="medium")
        for i, (what, o) in enumerate(outcomes.items()):
            V.show_image(cols[2 * i], o.adversarial, f"{what}: {o.verdict.label} {o.verdict.probability:.0%}")
            with cols[2 * i + 1]:
                st.markdown(_summary(o, reports[what], what))
                if reports[what] is None:
                    V.error(
                        f"the {what} attack did not reach the target, so there is nothing to transform; "
                        "allow more steps or a larger RMS cap"
                    )
        ok = {w: r for w, r in reports.items() if r is not None}
        if ok:
            V.chart(st.empty(), _overview(ok))
            name = st.selectbox(
                "Transformation", list(TRANSFORMS), key=K + "transform", format_func=lambda n: TRANSFORMS[n].title
            )
            V.chart(st.empty(), _curve(ok, name))
            t = TRANSFORMS[name]
            for what, rep in ok.items():
                st.markdown(f"##### {what}")
                grid = st.columns(max(len(t.strengths), GRID_COLUMNS), gap="small")
                for col, s in zip(grid, t.strengths, strict=False):
                    row = rep.row(name, s)
                    mark = "still fooled ✔" if row.still_fooled else "reverted" if row.reverted else "other class"
                    assert row.image is not None
                    V.show_image(col, row.image, f"{row.title}: {row.label} ({mark})")
            first = next(iter(ok.values()))
            st.dataframe(
                pd.DataFrame(
                    [
                        {
                            "transform": r.title,
                            **{f"{w}: label": rep.row(r.transform, r.strength).label for w, rep in ok.items()},
                            **{
                                f"{w}: still fooled": rep.row(r.transform, r.strength).still_fooled
                                for w, rep in ok.items()
                            },
                            "original under the same transform": r.clean_label,
                        }
                        for r in first.rows[1:]
                    ]
                ),
                hide_index=True,
                width="stretch",
            )
