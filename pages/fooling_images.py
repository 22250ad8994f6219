"""Fooling images: pictures of nothing that a classifier is 99% sure about, grown from noise while you watch.

Widgets -> experiments.fooling.plans.fooling_images (experiments.fooling.synthesis's generators, run by ui.run) -> the
live view of experiments.fooling.view. Seed 004 sec. 3.2 (relabelling started from Gaussian noise) and seed 001 (Nguyen
et al.: evolved and gradient fooling images; feature visualisation as the positive use of the same idea).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import streamlit as st

from experiments.fooling import plans
from experiments.fooling import view as fooling_view
from experiments.fooling.presets import FOOLING_MODES, INIT_TITLES, fooling_defaults
from experiments.fooling.synthesis import INITS, Progress
from ui import run, widgets
from ui.router import through_router

through_router()

K = "exp.fool."
JOB = K + "job"
DEFAULTS = fooling_defaults()
for _name, _value in DEFAULTS.items():  # into Session State, never value=: Run's on_click re-assigns the settings
    st.session_state.setdefault(K + _name, _value)

job = run.job(JOB)
running = job.busy

st.title("Fooling images")
st.caption(
    "Start from noise, or from a flat grey picture, and push it toward one class until the model is 99% sure. "
    "What comes out looks like nothing at all, yet the model has no doubt (Robinson & Graham sec. 3.2; Nguyen et "
    "al. 2015). Evolution does it without gradients, only asking the model for probabilities."
)
mode = (
    st.segmented_control(
        "Experiment", list(FOOLING_MODES), format_func=FOOLING_MODES.get, key=K + "mode", disabled=running
    )
    or "grow"
)
settings, view = st.columns([1, 2.3], gap="large")

with settings:
    top = st.container()  # Run goes here, above the settings: on a 768-px projector screen, beside the result
    off = {"disabled": running}
    model = widgets.model_select("Model", K + "model", **off)
    if mode == "gallery":
        targets = widgets.classes_multiselect(
            "Classes (up to 6)", K + "classes", DEFAULTS["classes"], max_selections=6, **off
        )
    else:
        key = K + "target_e" if mode == "evolve" else K + "target"
        targets = [widgets.class_select("Target class", key, DEFAULTS[key.removeprefix(K)], **off)]
    init = st.radio("Start from", INITS, format_func=INIT_TITLES.get, key=K + "init." + mode, horizontal=True, **off)
    seed = int(st.number_input("Seed", 0, 10_000, key=K + "seed", help="Changes the noise and the evolution.", **off))
    params: dict[str, Any] = {}
    if mode in ("grow", "gallery", "visualize"):
        params["confidence"] = st.slider(
            "Stop at confidence", 0.5, 0.999, step=0.001, key=K + "conf", format="%.3f", **off
        )
        params["steps"] = int(st.number_input("Maximum steps", 1, 2000, key=K + "steps", **off))
        params["step_size"] = st.number_input(
            "Step size (1/255 per pixel and step)", 0.05, 16.0, step=0.25, key=K + "step", **off
        )
    if mode == "evolve":
        params["confidence"] = st.slider(
            "Stop at confidence", 0.5, 0.999, step=0.001, key=K + "conf_e", format="%.3f", **off
        )
        params["generations"] = int(
            st.number_input(
                "Generations",
                1,
                5000,
                key=K + "gens",
                help="At most this many; each generation queries population + 1 images. Chain mail from grey "
                "needs about 110-130 with the defaults (half a minute on two CPU cores).",
                **off,
            )
        )
        params["population"] = int(st.number_input("Population (even)", 2, 200, step=2, key=K + "pop", **off))
        params["encoding"] = st.selectbox(
            "Genes",
            ("tile", "grid"),
            key=K + "enc",
            format_func=lambda e: {"tile": "a small tile, repeated", "grid": "a coarse grid, upsampled"}[e],
            **off,
        )
        params["resolution"] = int(st.number_input("Tile / grid side (pixels of genes)", 1, 64, key=K + "res", **off))
    if mode == "visualize":
        st.markdown("**Regularisers of the visualisation**")
        params["vis_steps"] = int(st.number_input("Visualisation steps", 1, 500, key=K + "vsteps", **off))
        params["jitter"] = int(st.slider("Jitter (pixels)", 0, 32, key=K + "jitter", **off))
        params["blur_sigma"] = st.slider("Blur σ every 4 steps", 0.0, 3.0, step=0.1, key=K + "blur", **off)
        params["tv_weight"] = st.slider("Total-variation weight", 0.0, 5.0, step=0.1, key=K + "tv", **off)
    ready = model is not None and bool(targets)
    with top:
        run.buttons(job, prefix=K, ready=ready, stop_help="Ends the run at the next step; the last image stays.")
        if not targets:
            widgets.error("choose at least one class")

RESULT = K + "result." + mode
store: dict[str, Any] = st.session_state.setdefault(RESULT, {})


def start() -> Iterator[tuple[str, Progress]]:
    assert model is not None
    store.clear()
    work = plans.fooling_images(mode, model, targets, init=init, seed=seed, params=params)
    return fooling_view.recorded(work, store, gallery_confidence=params["confidence"] if mode == "gallery" else None)


with view:
    run.show_notes(job, stale_unless=())  # above the images: an old result says so before it is looked at
    slots = fooling_view.layout(mode, len(targets))
    paint = fooling_view.painter(slots, store, fooling_view.UNITS[mode])
    run.drive(job, start, run.Draw(paint, run.Throttle(min_interval=0.6)))
    fooling_view.show(mode, slots, store)
