"""Transfer: attack one model, then ask the others. Relabelled images stay on their model; bigger untargeted
perturbations, ensembles and input diversity travel further (seed 004 sec. 3.1, seed 003).
Widgets -> experiments.transfer.plans.transfer_runs (run by ui.run) -> table and a source x evaluation heatmap that
grows with every run. Each finished run goes into the matrix at once, so a Stop keeps it.
"""

from __future__ import annotations

from collections.abc import Iterator

import streamlit as st

from attacks import AttackError, make_attack
from experiments.transfer import plans
from experiments.transfer import view as transfer_view
from experiments.transfer.presets import RELABEL_TARGET, TRANSFER_PRESETS
from experiments.transfer.transfer import TransferResult
from images import ImageError
from models import IMAGENET_CATEGORIES, OFFLINE_MODELS, class_index
from ui import loaders, run, widgets
from ui.router import through_router

through_router()

K = "exp.transfer."
JOB, HISTORY = K + "job", K + "history"
OTHER_BUTTONS = (K + "compare", K + "clear")

job = run.job(JOB)
running = job.busy

st.title("Transfer between models")
st.caption(
    "Attack an image on one model, save it as an 8-bit PNG, and show that file to every other model at its own "
    "input size. Robinson & Graham found relabelled images do not transfer; untargeted attacks with a larger "
    "budget often do, and attacking an ensemble or adding input diversity helps them further."
)

settings, view = st.columns([1, 2.2], gap="large")
with settings:
    top = st.container()  # Run and its progress, above the settings: on a 768-px screen, beside the result
    picked = widgets.image_select(K + "image", disabled=running)
    usable = widgets.usable_models()
    sources = widgets.models_multiselect(
        "Attacked model(s)",
        K + "sources",
        [OFFLINE_MODELS[0]],
        disabled=running,
        help="Choose several to attack their ensemble (mean of their logits).",
        empty_error="choose at least one model to attack",
    )
    evals = widgets.models_multiselect(
        "Evaluated on", K + "evals", usable, disabled=running, empty_error="choose at least one model to evaluate on"
    )
    preset = st.radio(
        "Attack",
        list(TRANSFER_PRESETS),
        format_func=lambda p: TRANSFER_PRESETS[p]["title"],
        key=K + "preset",
        disabled=running,
    )
    spec = TRANSFER_PRESETS[preset]
    attack_name, params, targeted = transfer_view.attack_settings(K, spec, disabled=running)
    target = (
        widgets.class_select("Target class", K + "target", class_index("umbrella"), disabled=running)
        if targeted
        else None
    )
    target_ok = picked is not None and bool(sources) and transfer_view.target_allowed(sources, picked, target)
    # Defaults go into Session State, never value=: Run's on_click re-assigns every setting (ui.run.request_start).
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
        attack = make_attack(attack_name, early_stop=not full_budget, **params)
    except AttackError as err:
        widgets.error(err)
        attack = None
    ready = bool(evals) and attack is not None and target_ok
    stop_help = "Ends the run at the next step; finished runs stay in the matrix."
    with top:
        run.buttons(job, prefix=K, ready=ready, other_buttons=OTHER_BUTTONS, stop_help=stop_help)
        bar = st.empty()
    st.button(
        "Classic comparison on this image",
        key=K + "compare",
        disabled=running or picked is None,
        width="stretch",
        on_click=run.request_start,
        args=(JOB, "compare", run.page_settings(K, OTHER_BUTTONS)),
        help="Relabel (toward the target class, umbrella when the attack is untargeted) vs untargeted PGD from "
        "each offline model (about a minute). Relabel is skipped on a model that already sees the target.",
    )
    if st.button("Clear the matrix", key=K + "clear", width="stretch", disabled=running):
        st.session_state[HISTORY] = []


def start() -> Iterator[TransferResult]:
    """The runs Run or the comparison asked for (the comparison from every usable offline model)."""
    if picked is None:
        raise ImageError("pick an image first")
    evaluated, parts = evals, []
    if job.kind == "compare":
        evaluated = [m for m in OFFLINE_MODELS if m in usable]
        relabel_target = class_index(RELABEL_TARGET) if target is None else target
        parts, skipped = plans.comparison(evaluated, relabel_target, lambda m: widgets.model_class(m, picked))
        if skipped:
            job.note(
                "warning",
                f"Relabel skipped on {', '.join(skipped)}: it already sees "
                f"{IMAGENET_CATEGORIES[relabel_target]}, the relabel target.",
            )
    elif ready and attack is not None:
        goal = "targeted" if target is not None else "untargeted"
        parts = [plans.TransferPart(goal, attack, tuple(sources), target, diversity)]
    history = st.session_state.setdefault(HISTORY, [])
    draw = run.Draw(lambda step: transfer_view.step_progress(bar, job.data, step), run.Throttle(min_interval=0.4))
    on_step = run.progress(job, draw)
    return plans.transfer_runs(
        picked.image,
        parts,
        evaluated,
        kept=job.data,
        history=history,
        on_step=on_step,
        loader=loaders.get_model,
        shown=tuple(sources),
    )


with view:
    if running:
        st.info("Running: progress is under **Run**; **Stop** keeps every run that has finished.")
    run.drive(job, start)
    run.show_notes(job, stale_unless=())
    if job.data.get("last") is not None:
        transfer_view.show_result(job.data["last"])
    elif ready:
        st.info("Press **Run** to attack the image and show it to the other models.")
    transfer_view.show_matrix(st.session_state.get(HISTORY, []))
