"""Fooling images: pictures of nothing that a classifier is 99% sure about, grown from noise while you watch.

Thin page: widgets -> experiments.synthesis generators -> live placeholders (ui.experiments_view). Seed 004 sec. 3.2
(relabelling started from Gaussian noise) and seed 001 (Nguyen et al.: evolved and gradient fooling images;
feature visualisation as the positive use of the same idea).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import streamlit as st

from attacks import AttackError
from experiments.cli_commands import DEFAULT_STEPS
from experiments.synthesis import INITS, Progress, evolve, start_image, synthesize_gradient, visualize_class
from models import IMAGENET_CATEGORIES, class_index
from ui import experiments_view as V

K = "exp.fool."
MODES = {
    "grow": "Grow from noise",
    "evolve": "Black-box evolution",
    "visualize": "Visualise vs fool",
    "gallery": "Gallery",
}
INIT_TITLES = {"gaussian": "Gaussian noise", "uniform": "Uniform noise", "grey": "Flat grey"}
GALLERY_DEFAULT = ("umbrella", "goldfish", "school bus", "chain mail")

st.title("Fooling images")
st.caption(
    "Start from noise, or from a flat grey picture, and push it toward one class until the model is 99% sure. "
    "What comes out looks like nothing at all, yet the model has no doubt (Robinson & Graham sec. 3.2; Nguyen et "
    "al. 2015). Evolution does it without gradients, only asking the model for probabilities."
)

JOB = K + "job"


#: Every setting's default, put into st.session_state once: the widgets take no value= of their own, so the Run
#: callback may re-assign them (ui.experiments_view.request_start) without Streamlit's "default value and Session
#: State" warning.
DEFAULTS: dict[str, Any] = {
    K + "mode": "grow",
    K + "classes": [class_index(c) for c in GALLERY_DEFAULT],
    K + "target": class_index("umbrella"),
    K + "target_e": class_index("chain mail"),  # a texture class: a query-only search reaches it in half a minute
    **{K + "init." + m: "grey" if m in ("visualize", "evolve") else "gaussian" for m in MODES},
    K + "seed": 0,
    K + "conf": 0.99,
    K + "steps": 200,
    K + "step": 1.0,
    K + "conf_e": 0.99,
    K + "gens": DEFAULT_STEPS["evolution"],
    K + "pop": 10,
    K + "enc": "tile",
    K + "res": 16,
    K + "vsteps": 60,
    K + "jitter": 12,
    K + "blur": 1.0,
    K + "tv": 1.0,
}
for _key, _value in DEFAULTS.items():
    st.session_state.setdefault(_key, _value)

# Run's on_click asks for a run; only the script run that claims the request does the work (a Stop's rerun, which
# Streamlit starts while the stopped run is still unwinding, draws the page idle with what was reached).
job, kind = V.claim(JOB)
running = kind is not None
mode = (
    st.segmented_control("Experiment", list(MODES), format_func=MODES.get, key=K + "mode", disabled=running) or "grow"
)
settings, view = st.columns([1, 2.3], gap="large")

with settings:
    off = {"disabled": running}
    model = V.model_select("Model", K + "model", **off)
    if mode == "gallery":
        targets = V.classes_multiselect(
            "Classes (up to 6)", K + "classes", DEFAULTS[K + "classes"], max_selections=6, **off
        )
    else:
        key = K + "target_e" if mode == "evolve" else K + "target"
        targets = [V.class_select("Target class", key, DEFAULTS[key], **off)]
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
    V.run_stop_buttons(
        K,
        JOB,
        ready=model is not None and bool(targets),
        running=running,
        stop_help="Ends the run at the next step; the last image stays.",
    )
    run = running and model is not None and bool(targets)
    if not targets:
        V.error("choose at least one class")

RESULT = K + "result." + mode


def _caption(p: Progress, i: int, unit: str) -> str:
    t = int(p.targets[i])
    top = int(p.probs[i].argmax())
    label = "✔" if bool(p.success[i]) else ""
    return (
        f"{IMAGENET_CATEGORIES[t]}: p = {float(p.probs[i, t]):.1%} {label} · top: {IMAGENET_CATEGORIES[top]} "
        f"· {unit} {p.index}"
    )


def _snapshot(p: Progress, unit: str) -> dict[str, Any]:
    """What the slots show of one Progress (PNG bytes and small numbers), kept in the store across reruns."""
    return {
        "png": [V.png(p.images[i : i + 1]) for i in range(len(p.targets))],
        "captions": [_caption(p, i, unit) for i in range(len(p.targets))],
        "probs": p.probs.cpu().numpy(),
        "targets": p.targets.tolist(),
        "distortion": p.distortion.tolist(),
        "queries": p.queries,
        "index": p.index,
        "success": p.success.tolist(),
        "done": p.done,
    }


def _drive(gen: Iterator[Progress], slots: dict[str, Any], store: dict[str, Any], *, unit: str, key: str) -> Progress:
    """Pull progress, keep the history, redraw the slots on a throttle; the store survives a Stop.

    The latest Progress is kept every step (tensors, no encoding), so a Stop between two redraws still shows the
    step that was really reached; the PNGs are only encoded when drawn.
    """
    throttle = V.Throttle(0.6)
    history: list[tuple[int, float, int]] = store.setdefault(key + ".history", [])
    last: Progress | None = None
    for last in gen:
        if last.index == 0:
            # The start image's own class (other than the target): the blue "source" bar.
            order = last.probs.argsort(dim=1, descending=True)  # (N, K)
            store[key + ".source"] = [
                int(o[1] if o[0] == t else o[0]) for o, t in zip(order, last.targets, strict=True)
            ]
        history.append((last.index, float(last.target_probability[0]), last.queries))
        store[key + ".last"] = last
        V.checkpoint()  # Stop takes effect here, within one step, even between throttled redraws
        if throttle.due(final=last.done):
            store[key] = _snapshot(last, unit)
            _draw(slots, store, key, unit, live=True)
    assert last is not None
    return last


def _draw(slots: dict[str, Any], store: dict[str, Any], key: str, unit: str, *, live: bool = False) -> None:
    """Redraw the slots from the store; outside a live loop a run that did not finish was stopped."""
    last: Progress | None = store.get(key + ".last")
    if not live and last is not None and store.get(key, {}).get("index") != last.index:
        store[key] = _snapshot(last, unit)  # stopped between two redraws: show the step really reached
    data = store.get(key)
    if not data:
        return
    if "images" in slots:
        cols = slots["images"]
        for slot, image, caption in zip(cols, data["png"], data["captions"], strict=False):
            V.show_image(slot, image, caption)
    else:
        V.show_image(slots["image"], data["png"][0], data["captions"][0])
    if "bars" in slots:
        t = data["targets"][0]
        source = store.get(key + ".source", [None])[0]
        V.chart(
            slots["bars"],
            V.bars(data["probs"][0], source=source, target=t, title=f"Probabilities at {unit} {data['index']}"),
        )
    if "curve" in slots:
        history = store.get(key + ".history", [])
        x_title = "queries" if unit == "generation" else "step"
        xs = [h[2] if unit == "generation" else h[0] for h in history]
        V.chart(
            slots["curve"],
            V.lines(
                xs,
                {"p(target)": [h[1] for h in history]},
                title="Target probability",
                x_title=x_title,
                y_title="p(target)",
                log_y=True,
            ),
        )
    if "status" in slots:
        rms = data["distortion"][0]
        ok = "reached" if data["success"][0] else ("not reached" if data["done"] else "running…" if live else "stopped")
        extra = f" · {data['queries']} queries" if unit == "generation" else ""
        slots["status"].markdown(
            f"**{unit.capitalize()} {data['index']}** · RMS distortion from the start image **{rms:.4f}**{extra} · {ok}"
        )


def _single_slots(container: Any, with_curve: bool = True, stacked: bool = False) -> dict[str, Any]:
    """Status line, image and bars (side by side, or stacked in a narrow column), and the probability curve."""
    with container:
        status = st.empty()
        if stacked:
            slots = {"status": status, "image": st.empty(), "bars": st.empty()}
        else:
            left, right = st.columns([1, 1.2], gap="medium")
            slots = {"status": status, "image": left.empty(), "bars": right.empty()}
        if with_curve:
            slots["curve"] = st.empty()
    return slots


store: dict[str, Any] = st.session_state.setdefault(RESULT, {})

if running:
    job["active"] = kind  # a Stop's rerun waits for this to clear (V.claim) before drawing what was reached
with view:
    try:
        if mode in ("grow", "evolve"):
            unit = "generation" if mode == "evolve" else "step"
            slots = _single_slots(st.container())
            if mode == "grow":
                st.caption(
                    "White box: the paper's relabelling step (the sign of the gradient, 1/255 per pixel) from the "
                    "start image until the saved 8-bit image reaches the confidence. Robinson & Graham needed an "
                    "RMS distortion of about 0.03 from Gaussian noise."
                )
            if mode == "evolve":
                st.caption(
                    "Black box: every image is rounded to 8 bits and classified without gradients; only "
                    "p(target) is used. A natural evolution strategy estimates which way to change the genes "
                    "from the scores of random mutations."
                )
            if run and model is not None:
                store.clear()
                start = start_image(init, model.input_size, seed=seed)
                if mode == "grow":
                    gen = synthesize_gradient(
                        model,
                        targets,
                        confidence=params["confidence"],
                        steps=params["steps"],
                        step_size=params["step_size"],
                        seed=seed,
                        start=start,
                    )
                else:
                    gen = evolve(
                        model,
                        targets[0],
                        confidence=params["confidence"],
                        generations=params["generations"],
                        population=params["population"],
                        encoding=params["encoding"],
                        resolution=params["resolution"],
                        seed=seed,
                        start=start,
                    )
                _drive(gen, slots, store, unit=unit, key="main")
            _draw(slots, store, "main", unit)
            if not store:
                st.info("Press **Run** to grow the image.")
        elif mode == "visualize":
            st.caption(
                "Left: plain gradient descent to 99% (a fooling image). Right: gradient ascent on the class "
                "score with jitter, blur and total variation, which keep only what survives small shifts and "
                "smoothing. Same model, same class - the regularisers are the whole difference."
            )
            left, right = st.columns(2, gap="large")
            with left:
                st.markdown("##### Fooling image (no regulariser)")
            with right:
                st.markdown("##### Class visualisation (regularised)")
            fool_slots = _single_slots(left, with_curve=False, stacked=True)
            vis_slots = _single_slots(right, with_curve=False, stacked=True)
            if run and model is not None:
                store.clear()
                _drive(
                    synthesize_gradient(
                        model,
                        targets,
                        confidence=params["confidence"],
                        steps=params["steps"],
                        step_size=params["step_size"],
                        seed=seed,
                        start=start_image(init, model.input_size, seed=seed),
                    ),
                    fool_slots,
                    store,
                    unit="step",
                    key="fool",
                )
                _drive(
                    visualize_class(
                        model,
                        targets,
                        init=init,
                        steps=params["vis_steps"],
                        jitter=params["jitter"],
                        blur_sigma=params["blur_sigma"],
                        tv_weight=params["tv_weight"],
                        seed=seed,
                    ),
                    vis_slots,
                    store,
                    unit="step",
                    key="vis",
                )
            _draw(fool_slots, store, "fool", "step")
            _draw(vis_slots, store, "vis", "step")
            if not store:
                st.info("Press **Run** to make both images.")
        else:
            status = st.empty()
            cells = []
            for _ in range(0, max(len(targets), 1), 3):
                cells += [c.empty() for c in st.columns(3, gap="small")]
            slots = {"images": cells}
            if run and model is not None and targets:
                store.clear()
                last = _drive(
                    synthesize_gradient(
                        model,
                        targets,
                        confidence=params["confidence"],
                        steps=params["steps"],
                        step_size=params["step_size"],
                        seed=seed,
                        start=start_image(init, model.input_size, seed=seed),
                    ),
                    slots,
                    store,
                    unit="step",
                    key="main",
                )
                store["summary"] = (
                    f"{int(last.success.sum())} of {len(targets)} classes reached "
                    f"{params['confidence']:.1%} after {last.index} steps."
                )
            if store.get("main") and len(store["main"]["png"]) <= len(cells):
                _draw(slots, store, "main", "step")
                status.markdown(store.get("summary", ""))
            else:
                st.info("Press **Run** to grow one fooling image per class.")
    except AttackError as err:
        job["notes"].append(("error", str(err)))
    finally:
        job["active"] = None  # only the dict: after a Stop every st.* call of this run raises again
    V.show_notes(job)
if running:
    st.rerun()  # draw the page again with the settings enabled
