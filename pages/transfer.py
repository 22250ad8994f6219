"""Transfer: attack one model, then ask the others. Relabelled images stay on their model; bigger untargeted
perturbations, ensembles and input diversity travel further.

Thin page: widgets -> experiments.transfer.run_transfer -> table and a source x evaluation heatmap that grows with
every run (seed 004 sec. 3.1, seed 003). Run's on_click marks the page busy (ui.experiments_view.request_start:
settings drawn disabled, Stop usable); each finished run goes into the matrix at once, so a Stop keeps them.
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
from ui.pickers import param_input

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
LAST = K + "last"
JOB = K + "job"
BUTTONS = (K + "run", K + "stop", K + "compare", K + "clear")
COMPARE_RUNS = (("relabel", "relabel"), ("PGD eps 8", "pgd"))  # (matrix label, attack) of the classic comparison

job, kind = V.claim(JOB)
running = kind is not None

st.title("Transfer between models")
st.caption(
    "Attack an image on one model, save it as an 8-bit PNG, and show that file to every other model at its own "
    "input size. Robinson & Graham found relabelled images do not transfer; untargeted attacks with a larger "
    "budget often do, and attacking an ensemble or adding input diversity helps them further."
)

settings, view = st.columns([1, 2.2], gap="large")
with settings:
    picked = V.image_select(K + "image", disabled=running)
    usable = V.usable_models()
    sources = V.models_multiselect(
        "Attacked model(s)",
        K + "sources",
        [OFFLINE_MODELS[0]],
        disabled=running,
        help="Choose several to attack their ensemble (mean of their logits).",
        empty_error="choose at least one model to attack",
    )
    evals = V.models_multiselect(
        "Evaluated on", K + "evals", usable, disabled=running, empty_error="choose at least one model to evaluate on"
    )
    preset = st.radio(
        "Attack", list(PRESETS), format_func=lambda p: PRESETS[p]["title"], key=K + "preset", disabled=running
    )
    spec = PRESETS[preset]
    attack_name = spec["attack"] or st.selectbox(
        "Attack", list(ATTACKS), key=K + "attack", format_func=lambda a: ATTACKS[a].title, disabled=running
    )
    cls = ATTACKS[attack_name]
    params = dict(spec["params"])
    if preset == "custom":
        for p in cls.params:
            params[p.name] = param_input(p, f"{K}{attack_name}.{p.name}", disabled=running)
    targeted = spec["targeted"]
    if targeted is None:
        options = [m for m, ok in ((True, cls.supports_targeted), (False, cls.supports_untargeted)) if ok]
        targeted = (
            st.radio(
                "Goal",
                options,
                key=K + "goal",
                format_func=lambda t: "toward a class" if t else "any other class (untargeted)",
                disabled=running,
            )
            is True
        )
    target = (
        V.class_select("Target class", K + "target", class_index("umbrella"), disabled=running) if targeted else None
    )
    target_ok = True
    if picked is not None and sources:
        try:
            source_class = V.attacked_class(sources, picked)
        except ImageError as err:
            V.error(f"this image cannot be used: {err}")
            target_ok = False
        else:
            who = "the ensemble" if len(sources) > 1 else "the attacked model"
            if target is not None and target == source_class:
                V.error(
                    f"the target is the class {who} already sees in this image ({IMAGENET_CATEGORIES[target]}); "
                    "pick another target"
                )
                target_ok = False
            else:
                st.caption(f"Now {who} sees: **{V.class_name(source_class)}**.")
    # Defaults go into Session State, never value=: Run's on_click re-assigns every setting (request_start).
    st.session_state.setdefault(K + "div", 0.0)
    st.session_state.setdefault(K + "full." + preset, spec["full_budget"])
    diversity = st.slider(
        "Input diversity (probability of a random resize-and-pad per step)",
        0.0,
        1.0,
        step=0.1,
        key=K + "div",
        disabled=running,
        help="Xie et al. 2019 use 0.5. 0 = off.",
    )
    full_budget = st.checkbox(
        "Use the whole budget",
        key=K + "full." + preset,
        disabled=running,
        help="Do not stop at the first success: more steps after the label flips add margin, and margin is what "
        "transfers.",
    )
    try:
        attack = make_attack(attack_name, **params)
    except AttackError as err:
        V.error(err)
        attack = None
    ready = picked is not None and bool(sources) and bool(evals) and attack is not None and target_ok
    V.run_stop_buttons(
        K,
        JOB,
        ready=ready,
        running=running,
        stop_help="Ends the run at the next step; finished runs stay in the matrix.",
    )
    status = st.empty()
    bar = st.empty()
    st.button(
        "Classic comparison on this image",
        key=K + "compare",
        disabled=running or picked is None,
        width="stretch",
        on_click=V.request_start,
        args=(JOB, "compare", K, BUTTONS),
        help="Relabel (toward the target class, umbrella when the attack is untargeted) vs untargeted PGD from "
        "each offline model (about a minute). Relabel is skipped on a model that already sees the target.",
    )
    if st.button("Clear the matrix", key=K + "clear", width="stretch", disabled=running):
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
    what: str = "",
) -> TransferResult:
    """One transfer run with a live status line (the attacked model's top class) under the Run button."""
    steps = int(attack.hparams.get("steps", 1))
    throttle = V.Throttle(0.4)

    def on_step(step: Step) -> None:
        V.checkpoint()
        if throttle.due(final=bool(step.done.all())):
            p = step.probs[0]
            top = int(p.argmax())
            bar.progress(
                min(1.0, step.index / max(steps, 1)),
                text=f"step {step.index}/{steps}: the attacked model says {IMAGENET_CATEGORIES[top]} "
                f"({float(p[top]):.0%})",
            )

    status.markdown(f"{what}Attacking **{' + '.join(source_models)}** with {attack.title}…")
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
    """Keep a finished run at once (table and matrix), so a later Stop cannot lose it."""
    history: list[dict[str, Any]] = st.session_state.setdefault(HISTORY, [])
    history.append(
        {"row": _label(result, goal), "cells": {r.model: (r.fooled, r.label, r.p_target) for r in result.rows}}
    )
    del history[:-12]
    st.session_state[LAST] = result


def _compare(image: Any, picked: V.PickedImage, target: int | None, state: dict[str, Any]) -> None:
    """Relabel vs untargeted PGD from each usable offline model, each finished run recorded as it ends. Relabel is
    skipped (with a note) on a model whose own class of the image is already the relabel target."""
    offline = [m for m in OFFLINE_MODELS if m in usable]
    relabel_target = class_index("umbrella") if target is None else target
    plan: list[tuple[str, str, str]] = []  # (goal label, attack, source model)
    skipped = []
    for goal, attack_id in COMPARE_RUNS:
        for m in offline:
            if attack_id == "relabel" and V.model_class(m, picked) == relabel_target:
                skipped.append(m)
                continue
            plan.append((goal, attack_id, m))
    if skipped:
        state["notes"].append(
            (
                "warning",
                f"Relabel skipped on {', '.join(skipped)}: it already sees {IMAGENET_CATEGORIES[relabel_target]}, "
                "the relabel target.",
            )
        )
    for i, (goal, attack_id, m) in enumerate(plan):
        kept = "nothing had finished" if i == 0 else f"the {i} finished before it are in the matrix"
        state["stopped"] = f"Stopped during comparison run {i + 1} of {len(plan)} ({goal} from {m}); {kept}."
        attack = make_attack("relabel") if attack_id == "relabel" else make_attack("pgd", eps=8, step_size=1, steps=20)
        result = _run(
            image,
            source_models=[m],
            eval_models=offline,
            attack=attack,
            target=relabel_target if attack_id == "relabel" else None,
            diversity=0.0,
            full_budget=attack_id != "relabel",
            status=status,
            bar=bar,
            what=f"{i + 1}/{len(plan)} · ",
        )
        _record(result, goal)


def _show_result(result: TransferResult) -> None:
    o = result.outcome
    x0, xa = pil_to_tensor(o.original), pil_to_tensor(o.adversarial)
    cols = st.columns(3, gap="small")
    cats = result.categories
    ensemble = len(result.source_models) > 1
    judge = "ensemble" if ensemble else "attacked model"
    V.show_image(cols[0], o.original, f"Original ({'ensemble: ' if ensemble else ''}{cats[o.source]})")
    V.show_image(cols[1], o.adversarial, f"Adversarial ({judge}): {o.verdict.label} {o.verdict.probability:.0%}")
    V.show_image(cols[2], amplified_difference(xa, x0, 10.0), "Difference ×10 around mid-grey")
    goal = f"→ {cats[o.target]}" if o.target is not None else f"untargeted, away from {cats[o.source]}"
    verdict = "fooled" if o.success else "did NOT fool"
    st.markdown(
        f"The saved image {verdict} the {judge} ({goal}): RMS distortion **{o.verdict.rms_distortion:.4f}**, "
        f"largest change {o.verdict.max_change_255}/255, {o.iterations} steps."
    )
    if ensemble:
        st.caption(
            f"The attack was judged on the ensemble of {' + '.join(result.source_models)} (mean of their logits), "
            f"which sees **{cats[o.source]}** in the clean image. Each row below judges one model by its own clean "
            "label, so a member of the ensemble can count as not fooled."
        )
    targeted = o.target is not None
    table = pd.DataFrame(
        [
            {
                "model": r.model + (" (attacked)" if r.is_source else ""),
                "clean image": r.clean_label,
                "adversarial image": r.label,
                **({"p(target)": 100 * (r.p_target or 0.0)} if targeted else {}),
                "p(clean label)": 100 * r.p_clean_class,
                "fooled": r.fooled,
            }
            for r in result.rows
        ]
    )
    fooled_help = (
        "The adversarial image's top class is the target."
        if targeted
        else "The adversarial image's top class differs from this model's class of the clean image."
    )
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            "p(target)": st.column_config.NumberColumn(format="%.2f%%", help="The target's probability."),
            "p(clean label)": st.column_config.NumberColumn(
                format="%.2f%%", help="The adversarial image's probability of this model's class of the clean image."
            ),
            "fooled": st.column_config.CheckboxColumn(help=fooled_help),
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


def _work(kind: str, state: dict[str, Any]) -> None:
    """Do what Run or the comparison asked for; finished runs are recorded as they end."""
    assert picked is not None
    if kind == "run" and ready:
        st.session_state.pop(LAST, None)  # the previous result does not belong to these settings
        state["stopped"] = "Stopped during the attack: nothing had finished, so the matrix is unchanged."
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
        _record(result, "targeted" if target is not None else "untargeted")
    elif kind == "compare":
        _compare(picked.image, picked, target, state)


with view:
    if kind is not None:
        job["active"] = kind
        finished = False
        try:
            st.info("Running: progress is under **Run**; **Stop** keeps every run that has finished.")
            if picked is not None:
                _work(kind, job)
            finished = True
        except (AttackError, ImageError, WeightsUnavailable) as err:
            job["notes"].append(("error", str(err)))
            finished = True
        finally:
            # Only the dict is touched here: after a Stop any st.* call would raise again.
            if not finished:
                job["notes"].append(("warning", job.get("stopped", "Stopped before anything had finished.")))
            job["active"] = None
        st.rerun()  # draw the page again with the settings enabled and the new result in place
    V.show_notes(job)
    last = st.session_state.get(LAST)
    if last is not None:
        _show_result(last)
    elif ready:
        st.info("Press **Run** to attack the image and show it to the other models.")
    _matrix()
