"""Adversarial patch: a visible sticker that turns whatever it sits next to into its target class for the model,
wherever it is placed (Brown et al. 2017). Opens with a shipped patch placed on a sample, top-5 bars beside it.

Widgets -> experiments.patch.patch (placing, printing, classifying, training by ui.run) -> experiments.patch.view.
"""

from __future__ import annotations

import streamlit as st

from experiments.patch import patch as engine
from experiments.patch import view
from ui import loaders, run, widgets
from ui.router import through_router

through_router()

K = "exp.patch."
JOB, CURRENT, MODEL = K + "job", K + "current", "efficientnet_lite0"
PLACE = {"x": 0.7, "y": 0.3, "size": 20, "angle": 0, "cm": 6.0}
TRAIN = {"target": 859, "steps": 60, "set": "samples", "seed": 0}  # Run's settings, folded under it
for _name, _value in (PLACE | TRAIN).items():
    st.session_state.setdefault(K + _name, _value)

job = run.job(JOB)
running = job.busy
if job.ended and job.kind == "run" and "patch" in job.data and not job.data.get("adopted"):
    label = "run" if job.status == "finished" else "stopped run"
    st.session_state[CURRENT] = (job.data["patch"], {**job.data["meta"], "origin": label})
    st.session_state[K + "which"] = f"{job.data['meta'].get('target', '?')} ({label})"  # the result, placed
    job.data["adopted"] = True

st.title("Adversarial patch")
st.caption(
    "A patch you can print: not a faint change of a few grey levels, but a visible sticker trained so that the "
    "model answers its target class wherever the sticker sits, at any angle and in any light (Brown et al. 2017). "
    f"Model: {widgets.model_title(MODEL)}."
)
shipped = view.shipped()
choices = {f"{name} (shipped)": item for name, item in shipped.items()}
if CURRENT in st.session_state:
    pixels_run, meta_run = st.session_state[CURRENT]
    choices[f"{meta_run.get('target', '?')} ({meta_run['origin']})"] = (pixels_run, meta_run)
settings, out = st.columns([1, 2.2], gap="large")
with settings:
    # What is dragged, then Run (training a new patch) with its settings folded: on a 768-px projector screen both
    # sit beside the placed patch, where a run draws itself and its patch lands. The photo, the patch and the
    # uploader come below.
    head, train, below = st.container(), st.container(), st.container()
with below:
    picked = widgets.image_select(K + "photo", default="coffee", disabled=running)
    thumb = st.container()
    loaded = view.uploaded(K + "load.upload", running)
if loaded is not None:
    choices[f"{loaded[1]['file']} (loaded)"] = (loaded[0], {"target": "toaster", **loaded[1]})
if not choices:
    st.error("No patch is shipped (data/patch/ is empty): train one below or load a PNG.")
    st.stop()
with head:
    which = st.selectbox("Patch", list(choices), key=K + "which")
    pixels, meta = choices[which]
    if "(loaded)" in which:
        meta = {**meta, "target_index": widgets.class_select("Its target", K + "load_target", 859)}
        meta["target"] = engine.target_name(meta["target_index"])
    target = view.target_of(meta)
    x = st.slider("Across (left → right)", 0.0, 1.0, key=K + "x", step=0.05)
    y = st.slider("Down (top → bottom)", 0.0, 1.0, key=K + "y", step=0.05)
    size = st.slider("Size (% of the image area)", 1, 50, key=K + "size")
    angle = st.slider("Angle (degrees, counter-clockwise)", -180, 180, key=K + "angle", step=5)
with thumb:
    widgets.show_image(st, pixels, f"the patch; target: {widgets.class_name(target)}")
with train:
    run.buttons(job, prefix=K, ready=True)
    aim = widgets.class_name(st.session_state[K + "target"])
    summary = f"Training: {aim}, {st.session_state[K + 'steps']} steps"
    with st.expander(summary, key="exp.patch_train"):  # a key (no on_change): stays open while its label changes
        st.caption(
            "Live, on this server's CPU: a few steps show the idea, a good patch takes thousands "
            "(scripts/make_patch.py trained the shipped ones on 800 photos). Stop keeps the patch so far."
        )
        new_target = widgets.class_select("Target", K + "target", TRAIN["target"], disabled=running)
        steps = int(st.number_input("Steps", 5, 2000, key=K + "steps", disabled=running))
        source = st.segmented_control("Photos", ("samples", "shipped held-out"), key=K + "set", disabled=running)
        seed = int(st.number_input("Seed (split, draws)", 0, 10_000, key=K + "seed", disabled=running))

with out:
    slots = {"status": st.empty()}  # a run's line, on top; while it runs, the patch so far and its loss under it
    if running:  # the selected patch's verdict would read as the new patch's: it waits for the run's end
        patch_col, curve_col = st.columns([1, 2])
        slots |= {"patch": patch_col.empty(), "curve": curve_col.empty()}
        st.info("The new patch is placed on the photo here when training ends, or at **Stop**.")
    run.show_notes(job)
    if picked is not None and not running:
        view.show_placed(MODEL, picked, pixels, target, (x, y, size / 100, float(angle)))
    if "last" in job.data and not running:  # the run's patch and loss stay, under the placed patch (first screen)
        patch_col, curve_col = st.columns([1, 2])
        slots |= {"patch": patch_col.empty(), "curve": curve_col.empty()}
        view.painter(slots, job.data)(job.data["last"], stopped=job.status == "stopped")

    st.subheader("Print it")
    cm = st.number_input("Printed side (cm)", 2.0, 30.0, key=K + "cm", step=0.5)
    view.print_downloads(pixels, meta.get("target", "patch"), cm)

    st.subheader("Hold it up to the camera")
    st.caption("A photo of the printed patch next to an object: the model's answer, the patch's target marked.")
    snap = st.camera_input("Take a photo", key=K + "camera.upload", disabled=running)
    upload = st.file_uploader("…or upload a photo", key=K + "shot.upload", disabled=running, max_upload_size=50)
    shot = snap if snap is not None else upload
    view.show_camera(MODEL, shot.getvalue() if shot is not None else None, target)

    st.subheader("Does it work on photos it never saw?")
    view.show_heldout(meta)


def start():
    names, inputs = view.image_set("samples" if source != "shipped held-out" else view.HELDOUT_SET)
    work = engine.train_patch(loaders.get_model(MODEL), inputs, new_target, steps=steps, seed=seed)
    return view.recorded(work, job.data, MODEL)


run.drive(job, start, run.Draw(view.painter(slots, job.data), run.Throttle(min_interval=0.8)))
