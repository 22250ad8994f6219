"""Transfer: attack one model, then ask the others. Relabelled images stay on their model; bigger untargeted
perturbations, ensembles and input diversity travel further.

Thin page: widgets -> experiments.transfer.run_transfer -> table and a source x evaluation heatmap that grows with
every run (seed 004 sec. 3.1, seed 003).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from attacks import ATTACKS, AttackError, Step, make_attack
from attacks.metrics import amplified_difference
from experiments.transfer import TransferResult, run_transfer
from images import ImageError
from models import IMAGENET_CATEGORIES, OFFLINE_MODELS, WeightsUnavailable, class_index, pil_to_tensor
from ui import experiments_view as V

K = "exp.transfer."
PRESETS: dict[str, dict[str, Any]] = {
    "relabel": {
        "title": "Relabel toward a class (the paper)",
        "attack": "relabel",
        "params": {},
        "targeted": True,
        "full_budget": False,
    },
    "pgd": {
        "title": "Untargeted PGD, larger budget",
        "attack": "pgd",
        "params": {"eps": 8.0, "step_size": 1.0, "steps": 20},
        "targeted": False,
        "full_budget": True,
    },
    "custom": {"title": "Custom attack", "attack": None, "params": {}, "targeted": None, "full_budget": False},
}
HISTORY = K + "history"

st.title("Transfer between models")
st.caption(
    "Attack an image on one model, save it as an 8-bit PNG, and show that file to every other model at its own "
    "input size. Robinson & Graham found relabelled images do not transfer; untargeted attacks with a larger "
    "budget often do, and attacking an ensemble or adding input diversity helps them further."
)

settings, view = st.columns([1, 2.2], gap="large")
with settings:
    picked = V.image_select(K + "image")
    usable = V.usable_models()
    sources = V.models_multiselect(
        "Attacked model(s)",
        K + "sources",
        [OFFLINE_MODELS[0]],
        help="Choose several to attack their ensemble (mean of their logits).",
    )
    evals = V.models_multiselect("Evaluated on", K + "evals", usable)
    preset = st.radio("Attack", list(PRESETS), format_func=lambda p: PRESETS[p]["title"], key=K + "preset")
    spec = PRESETS[preset]
    attack_name = spec["attack"] or st.selectbox(
        "Attack", list(ATTACKS), key=K + "attack", format_func=lambda a: ATTACKS[a].title
    )
    cls = ATTACKS[attack_name]
    params = dict(spec["params"])
    if preset == "custom":
        for p in cls.params:
            value = st.number_input(
                f"{p.name.replace('_', ' ')} ({p.unit})" if p.unit else p.name.replace("_", " "),
                value=int(p.default) if p.integer else float(p.default),
                help=p.help,
                key=f"{K}{attack_name}.{p.name}",
            )
            params[p.name] = value
    targeted = spec["targeted"]
    if targeted is None:
        options = [m for m, ok in ((True, cls.supports_targeted), (False, cls.supports_untargeted)) if ok]
        targeted = (
            st.radio(
                "Goal",
                options,
                key=K + "goal",
                format_func=lambda t: "toward a class" if t else "any other class (untargeted)",
            )
            is True
        )
    target = V.class_select("Target class", K + "target", class_index("umbrella")) if targeted else None
    diversity = st.slider(
        "Input diversity (probability of a random resize-and-pad per step)",
        0.0,
        1.0,
        0.0,
        0.1,
        key=K + "div",
        help="Xie et al. 2019 use 0.5. 0 = off.",
    )
    full_budget = st.checkbox(
        "Use the whole budget (do not stop at the first success)",
        value=spec["full_budget"],
        key=K + "full." + preset,
        help="More steps after the label flips add margin, and margin is what transfers.",
    )
    try:
        attack = make_attack(attack_name, **params)
    except AttackError as err:
        V.error(err)
        attack = None
    ready = picked is not None and bool(sources) and bool(evals) and attack is not None
    run = st.button(
        "Run", type="primary", key=K + "run", disabled=not ready, icon=":material/play_arrow:", width="stretch"
    )
    compare = st.button(
        "Classic comparison on this image",
        key=K + "compare",
        disabled=picked is None,
        width="stretch",
        help="Relabel vs untargeted PGD from each offline model (about a minute).",
    )
    if st.button("Clear the matrix", key=K + "clear", width="stretch"):
        st.session_state[HISTORY] = []


def _run(
    image: Any,
    *,
    source_models: list[str],
    eval_models: list[str],
    attack: Any,
    target: int | None,
    diversity: float,
    full_budget: bool,
    status: Any,
    bar: Any,
) -> TransferResult:
    """One transfer run with a live status line (p of the source/target class on the attacked model)."""
    steps = int(attack.hparams.get("steps", 1))
    throttle = V.Throttle(0.4)

    def on_step(step: Step) -> None:
        if throttle.due(final=bool(step.done.all())):
            p = step.probs[0]
            top = int(p.argmax())
            bar.progress(
                min(1.0, step.index / max(steps, 1)),
                text=f"step {step.index}/{steps}: the attacked model "
                f"says {IMAGENET_CATEGORIES[top]} ({float(p[top]):.0%})",
            )

    status.markdown(f"Attacking **{' + '.join(source_models)}** with {attack.title}…")
    return run_transfer(
        image,
        source_models=source_models,
        eval_models=eval_models,
        attack=attack,
        target=target,
        diversity=diversity,
        full_budget=full_budget,
        on_step=on_step,
        loader=_loader,
    )


def _loader(name: str) -> Any:
    from ui import loaders

    return loaders.get_model(name)


def _label(result: TransferResult, goal: str) -> str:
    return f"{goal} · {result.source_name} · {result.outcome.verdict.rms_distortion:.3f} rms"


def _record(result: TransferResult, goal: str) -> None:
    history: list[dict[str, Any]] = st.session_state.setdefault(HISTORY, [])
    history.append(
        {"row": _label(result, goal), "cells": {r.model: (r.fooled, r.label, r.p_target) for r in result.rows}}
    )
    del history[:-12]


def _show_result(result: TransferResult) -> None:
    o = result.outcome
    x0, xa = pil_to_tensor(o.original), pil_to_tensor(o.adversarial)
    cols = st.columns(3, gap="small")
    cats = result.categories
    V.show_image(cols[0], o.original, f"Original ({cats[o.source]})")
    V.show_image(cols[1], o.adversarial, f"Adversarial: {o.verdict.label} {o.verdict.probability:.0%}")
    V.show_image(cols[2], amplified_difference(xa, x0, 10.0), "Difference ×10 around mid-grey")
    goal = f"→ {cats[o.target]}" if o.target is not None else "(untargeted)"
    verdict = "fooled" if o.success else "was NOT fooled by"
    st.markdown(
        f"The attacked model {verdict} the saved image {goal}: RMS distortion "
        f"**{o.verdict.rms_distortion:.4f}**, largest change {o.verdict.max_change_255}/255, "
        f"{o.iterations} steps."
    )
    table = pd.DataFrame(
        [
            {
                "model": r.model + (" (attacked)" if r.is_source else ""),
                "clean image": r.clean_label,
                "adversarial image": r.label,
                "p(target)": None if r.p_target is None else 100 * r.p_target,
                "p(source)": 100 * r.p_source,
                "fooled": r.fooled,
            }
            for r in result.rows
        ]
    )
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            "p(target)": st.column_config.NumberColumn(format="%.2f%%"),
            "p(source)": st.column_config.NumberColumn(format="%.2f%%"),
        },
    )


def _matrix() -> None:
    history: list[dict[str, Any]] = st.session_state.get(HISTORY, [])
    if not history:
        st.info("Each run adds a row to the matrix below: attacked model(s) × evaluated model.")
        return
    cols: list[str] = []
    for h in history:
        cols += [m for m in h["cells"] if m not in cols]
    values, text = [], []
    for h in history:
        cells = [h["cells"].get(c) for c in cols]
        values.append([None if c is None else float(c[0]) for c in cells])
        text.append(["" if c is None else ("✔ " if c[0] else "✘ ") + c[1][:18] for c in cells])
    V.chart(
        st.empty(),
        V.heatmap([h["row"] for h in history], cols, values, text, title="Fooled? (red) — the label each model sees"),
    )


with view:
    status = st.empty()
    bar = st.empty()
    try:
        if run and ready:
            assert picked is not None
            result = _run(
                picked.image,
                source_models=sources,
                eval_models=evals,
                attack=attack,
                target=target,
                diversity=diversity,
                full_budget=full_budget,
                status=status,
                bar=bar,
            )
            st.session_state[K + "last"] = result
            _record(result, "targeted" if target is not None else "untargeted")
            status.empty()
            bar.empty()
        if compare and picked is not None:
            offline = [m for m in OFFLINE_MODELS if m in usable]
            relabel_target = class_index("umbrella") if target is None else target
            for goal, make in (
                ("relabel", lambda: make_attack("relabel")),
                ("PGD eps 8", lambda: make_attack("pgd", eps=8, step_size=1, steps=20)),
            ):
                for m in offline:
                    tgt = relabel_target if goal == "relabel" else None
                    result = _run(
                        picked.image,
                        source_models=[m],
                        eval_models=offline,
                        attack=make(),
                        target=tgt,
                        diversity=0.0,
                        full_budget=goal != "relabel",
                        status=status,
                        bar=bar,
                    )
                    _record(result, goal)
                    st.session_state[K + "last"] = result
            status.empty()
            bar.empty()
    except (AttackError, ImageError, WeightsUnavailable) as err:
        status.empty()
        bar.empty()
        V.error(err)
    last = st.session_state.get(K + "last")
    if last is not None:
        _show_result(last)
    elif not run:
        st.info("Press **Run** to attack the image and show it to the other models.")
    _matrix()
