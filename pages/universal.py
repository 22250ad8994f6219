"""Universal perturbations: one faint pattern v that changes the model's label on most photos (seed 003;
Moosavi-Dezfooli et al., CVPR 2017). Opens with the perturbation shipped for the default model, applied to a sample.

Widgets -> experiments.universal.universal.compute_universal (run by ui.run) -> experiments.universal.view: amplified
v, fooling-ratio curves, held-out grid, before/after on any photo, the cross-model table, save and load.
"""

from __future__ import annotations

import streamlit as st

from attacks import AttackError
from experiments.universal import universal, view
from models import OFFLINE_MODELS
from ui import run, widgets
from ui.router import through_router

through_router()

K = "exp.univ."
JOB, CURRENT = K + "job", K + "current"
for _name, _value in {"set": "samples", "folder": "", "norm": "inf", "method": "sgd", "passes": 3, "seed": 0}.items():
    st.session_state.setdefault(K + _name, _value)

job = run.job(JOB)
running = job.busy
if job.ended and "v" in job.data and not job.data.get("adopted"):
    st.session_state[CURRENT] = (job.data["v"], job.data["meta"], "run")  # a finished or stopped run's v
    job.data["adopted"] = True

st.title("Universal perturbations")
st.caption(
    "One faint pattern, the same for every photo, that makes the model change its mind on most of them - even "
    "photos it never saw while the pattern was made (Moosavi-Dezfooli et al. 2017: 78-93% of ImageNet photos at "
    "L∞ ξ = 10 of 255). It is built on training photos and measured on held-out ones."
)
settings, out = st.columns([1, 2.3], gap="large")
with settings:
    top = st.container()  # Run and its progress, above the settings: on a 768-px screen, beside the result
    off = {"disabled": running}
    model = widgets.model_select("Model", K + "model", **off)
    source = st.segmented_control("Images", ("samples", "folder"), key=K + "set", **off) or "samples"
    folder = st.text_input("Folder of images (on the server)", key=K + "folder", **off) if source == "folder" else ""
    names, photos = [], []
    try:
        names, photos = (
            view.image_set("samples" if source == "samples" else folder.strip())
            if source == "samples" or folder.strip()
            else ([], [])
        )
    except AttackError as err:
        widgets.error(err)
    view.clamp(K + "count", 3, max(3, len(names)), len(names))
    most = max(3, len(names))  # said in the label: the greyed "+" at the end said nothing (a walk)
    count = int(st.number_input(f"Use the first N images (of {len(names)})", 3, most, key=K + "count", **off))
    norm = st.segmented_control("Norm", universal.NORMS, key=K + "norm", format_func=lambda n: f"L{n}", **off)
    norm = norm or "inf"
    st.session_state.setdefault(K + "xi." + norm, universal.DEFAULT_XI[norm])
    xi = st.number_input(
        "ξ (0-255 pixel units)", 0.5, 255.0 if norm == "inf" else 50_000.0, key=K + "xi." + norm, **off
    )
    method = st.radio("Method", universal.METHODS, key=K + "method", horizontal=True, **off)
    st.caption("deepfool: the paper's (slow, minutes); sgd: gradient ascent on mini-batches (Shafahi et al. 2020).")
    passes = int(st.number_input("Passes at most", 1, 50, key=K + "passes", **off))
    view.clamp(K + "holdout", 1, max(1, count - 2), round(0.3 * count))
    holdout = int(st.number_input("Held-out images", 1, max(1, count - 2), key=K + "holdout", **off))
    seed = int(st.number_input("Seed (split and order)", 0, 10_000, key=K + "seed", **off))
    ready = model is not None and len(photos) >= 3
    with top:
        run.buttons(job, prefix=K, ready=ready)
        bar = st.empty()


def start():
    assert model is not None
    meta = {"model": model.name, "images": "samples" if source == "samples" else folder.strip(), "names": names}
    work = universal.compute_universal(
        model, photos[:count], norm=norm, xi=xi, method=method, holdout=holdout, passes=passes, seed=seed
    )
    return view.recorded(work, job.data, meta)


with out:
    slots = {"status": st.empty(), "bar": bar}
    left, right = st.columns([1, 1.4], gap="medium")
    slots |= {"v": left.empty(), "curve": right.empty()}
    run.drive(job, start, run.Draw(view.painter(slots, job.data, passes), run.Throttle(min_interval=0.8)))
    run.show_notes(job)
    loaded = view.uploaded(K + "load.upload", running)
    if loaded is not None and st.session_state.get(K + "loaded_name") != loaded[1]["file"]:
        st.session_state[CURRENT] = (*loaded, "loaded")
        st.session_state[K + "loaded_name"] = loaded[1]["file"]
    broken = loaded is None and st.session_state.get(K + "load.upload") is not None
    if broken and (st.session_state.get(CURRENT) or (None,) * 3)[2] == "loaded":
        del st.session_state[CURRENT]  # the error replaces the v loaded before, never sits beside it
        st.session_state.pop(K + "loaded_name", None)
    default = view.shipped(model.name if model else OFFLINE_MODELS[0]) or view.shipped(OFFLINE_MODELS[0])
    v, meta, origin = st.session_state.get(CURRENT) or (*default, "shipped")  # type: ignore[misc]
    if "last" in job.data and (running or origin == "run"):  # the run's figures while it is the v shown
        slots["status"].markdown(view.status(job.data["last"], passes))
        view.curves(slots["curve"], job.data["history"])
    else:
        slots["status"].markdown(view.shipped_status(model.name if model else "", v, meta, origin))
    v_model = widgets.model_title(meta.get("model", "?"))
    view.show_perturbation(slots["v"], v, f"v for {v_model}, {view.ORIGINS[origin]}")
    if origin != "shipped" and not running:  # outside K: a button, never pinned by Run
        st.button("Back to the shipped v", key="exp.univ_back", on_click=st.session_state.pop, args=(CURRENT,))
    view.downloads(v, meta, "exp.univ_save.")  # outside K: download buttons cannot be pinned by Run
    if model is not None:
        view.show_grid(model.name, v, meta)
        st.subheader("Apply it to any photo")
        picked = widgets.image_select(K + "photo", disabled=running)
        if picked is not None:
            view.show_applied(model.name, view.applied_photo(model.name, picked.sample_id, picked.data, v))
    st.subheader("Does it fool other models?")
    view.show_table(widgets.usable_models())
