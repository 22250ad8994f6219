"""Robustness: mirror, shift, crop, rotate, rescale, JPEG, blur, noise, brightness, contrast - does the adversarial
label survive? And the attack that makes it survive: expectation over transformation (EOT).

Widgets -> experiments.robustness.plans.robustness_parts (the plain attack and, through
experiments.robustness.robustness.EOT, the EOT attack, each followed by every transformation; run by ui.run) ->
experiments.robustness.view (seed 004 sec. 3.1). Each part is kept the moment it finishes, so a Stop keeps what was
reached.
"""

from __future__ import annotations

from collections.abc import Iterator

import streamlit as st

from attacks import ATTACKS, AttackError, Step, make_attack
from experiments.robustness import plans
from experiments.robustness import view as robustness_view
from experiments.robustness.presets import ROBUSTNESS_DEFAULTS, eot_params
from images import ImageError
from models import IMAGENET_CATEGORIES, class_index
from ui import loaders, run, widgets
from ui.pickers import param_input
from ui.router import through_router

through_router()

K = "exp.robust."
RESULT, JOB = K + "result", K + "job"
TARGETED = [n for n, c in ATTACKS.items() if c.supports_targeted and any(p.name == "steps" for p in c.params)]

job = run.job(JOB)
running = job.busy

st.title("Robustness to transformations")
st.caption(
    "Robinson & Graham: cropping, translating or mirroring a relabelled image makes the label revert. Try every "
    "everyday change at growing strength. Then make the attack average its gradient over random transformations "
    "(EOT, Athalye et al. 2018): the perturbation grows, and it survives."
)

settings, view = st.columns([1, 2.3], gap="large")
with settings:
    top = st.container()  # Run and its progress, above the settings: on a 768-px screen, beside the result
    picked = widgets.image_select(K + "image", disabled=running)
    model = widgets.model_select("Model", K + "model", disabled=running)
    target = widgets.class_select("Target class", K + "target", class_index("umbrella"), disabled=running)
    target_ok = True
    if picked is not None and model is not None:
        try:
            source = widgets.model_class(model.name, picked)
        except ImageError as err:
            widgets.error(f"this image cannot be used: {err}")
            target_ok = False
        else:
            if target == source:
                widgets.error(
                    f"the target is the image's current class ({IMAGENET_CATEGORIES[source]}); pick another target"
                )
                target_ok = False
            else:
                st.caption(f"In the clean image (before any attack), the model sees **{widgets.class_name(source)}**.")
    attack_name = st.selectbox(
        "Attack", TARGETED, key=K + "attack", format_func=lambda a: ATTACKS[a].title.split(" (")[0], disabled=running
    )
    st.caption(ATTACKS[attack_name].summary)
    with st.expander("Attack parameters (plain)"):
        params = {
            p.name: param_input(p, f"{K}{attack_name}.{p.name}", disabled=running) for p in ATTACKS[attack_name].params
        }
    # Defaults go into Session State, never value=: Run's on_click re-assigns every setting (ui.run.request_start).
    for name, default in ROBUSTNESS_DEFAULTS.items():
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
        help="Decides only when the EOT attack stops; the verdict on the plain model is the same as for the plain "
        "attack (the target is its top class).",
    )
    eot_rms = st.number_input(
        "EOT: RMS cap", 0.005, 0.2, step=0.005, format="%.3f", key=K + "rms", disabled=running or not use_eot
    )
    try:
        plain_attack = make_attack(attack_name, **params)
        eot_attack = make_attack(attack_name, **eot_params(attack_name, params, eot_rms)) if use_eot else None
    except AttackError as err:
        widgets.error(err)
        plain_attack = eot_attack = None
    ready = picked is not None and model is not None and plain_attack is not None and target_ok
    with top:
        run.buttons(job, prefix=K, ready=ready, stop_help="Ends the run at the next step; whatever had finished stays.")
        bar = st.empty()  # progress right under Run: where the eye is after the click


def progress(what: str, step: Step) -> None:
    p = float(step.probs[0, target])
    total = (plain_attack if what == "plain attack" else eot_attack).total_steps()
    bar.progress(
        min(1.0, step.index / max(total, 1)),
        text=f"{what}: step {step.index}/{total} · p({IMAGENET_CATEGORIES[target]}) = {p:.1%} · "
        f"RMS {float(step.distortion[0]):.4f}",
    )


def start() -> Iterator[str]:
    if not ready or model is None or picked is None or plain_attack is None:
        raise AttackError("Run needs a usable image, model, target and attack parameters")
    st.session_state[RESULT] = job.data  # a new run: the earlier result does not belong to these settings
    original = loaders.from_png(loaders.model_input_png(model.name, picked.sample_id, picked.data))
    on_step = run.progress(job, run.Draw(lambda item: progress(*item), run.Throttle(min_interval=0.4)))
    return plans.robustness_parts(
        model,
        original,
        target,
        plain_attack,
        eot_attack,
        samples=samples,
        eot_confidence=eot_conf,
        kept=job.data,
        on_step=lambda what, step: on_step((what, step)),
    )


with view:
    if running:
        st.info(
            "Running: the plain attack and its transformations, then the EOT attack and its transformations. "
            "Progress is under **Run**; **Stop** keeps whatever has finished."
        )
    run.drive(job, start)
    run.show_notes(job, stale_unless=(K + "transform",))
    if RESULT in st.session_state:
        robustness_view.show(st.session_state[RESULT], key=K + "transform", disabled=running)
    elif ready:
        st.info("Press **Run**: the attack runs once plainly and once with EOT, then every transformation is tried.")
