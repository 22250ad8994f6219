"""Susceptibility study: how many (image, target class) pairs can be relabelled, and which classes are easy to modify
or to mimic -- Robinson & Graham's 98.7% at RMS 0.01 (seed 004 sec. 3.1) and seed 000's modify/mimic figures.

Opens on the study that ships with the app (no computing); any database `cli.py sweep` wrote can be opened, and a
small study can be run here (ui.run; experiments.study.sweep), its rows kept in a session database when stopped.
Glue: experiments.study.view; figures: experiments.study.figures.
"""

from __future__ import annotations

from collections.abc import Iterator

import streamlit as st

from experiments.study import view as study_view
from experiments.study.store import StoreError
from experiments.study.sweep import Progress
from images import ImageError
from ui import run, widgets
from ui.router import through_router

through_router()

K = "exp.sus."
JOB = K + "job"
SOURCES = {"shipped": "The shipped study", "open": "Open a database", "run": "Run a small study"}
DEFAULTS = {"source": "shipped", "images": "samples", "limit": 2, "targets": 2, "max_rms": 0.01}
for _name, _value in DEFAULTS.items():
    st.session_state.setdefault(K + _name, _value)

job = run.job(JOB)
running = job.busy

st.title("Susceptibility study")
st.caption(
    "Attack every image toward every target class and count: Robinson & Graham relabel 98.7% of pairs within an "
    "RMS distortion of 0.01. Which classes are easy to modify, and which easy to mimic? The "
    "rows below are real attacks, each verified on its saved 8-bit image."
)
source = (
    st.segmented_control("Study", list(SOURCES), format_func=SOURCES.get, key=K + "source", disabled=running)
    or "shipped"
)
path = None

if source == "shipped":
    path = study_view.SHIPPED
elif source == "open":
    upload = st.file_uploader("A database written by `python cli.py sweep --db FILE`", key=K + "db.upload")
    if upload is None:
        st.info("Upload a .sqlite file written by the sweep command, or open the shipped study.")
    else:
        try:
            path = study_view.uploaded(upload.getvalue(), upload.name)
        except StoreError as err:
            widgets.error(f"this file cannot be opened: {err}")
else:
    off = {"disabled": running}
    left, mid, right = st.columns(3)
    with left:
        model = widgets.model_select("Model", K + "model", **off)
        images = st.text_input("Images", key=K + "images", help="samples, imagenette or a folder path", **off)
    limit = int(mid.number_input("Images (at most)", 1, 1000, key=K + "limit", **off))
    targets = int(mid.number_input("Random target classes", 1, 999, key=K + "targets", **off))
    max_rms = right.select_slider("RMS cap", (0.005, 0.01, 0.02, 0.03), key=K + "max_rms", **off)
    study, refusal = None, None
    if model is not None:
        try:
            study = study_view.page_study(model.name, images.strip(), limit, targets, max_rms)
            refusal = study_view.too_big(study, model.device.type)
        except ImageError as err:
            widgets.error(str(err))
    if refusal is not None and study is not None:
        widgets.error(f"{refusal}; run it from the command line and open the database here")
        st.code(study_view.cli_command(study), language="bash")
    with right:
        run.buttons(job, prefix=K, ready=study is not None and refusal is None)
    slot = st.empty()

    def start() -> Iterator[Progress]:
        assert model is not None and study is not None
        return study_view.sweep(model, study, job.data)

    run.drive(job, start, run.Draw(study_view.live(slot, job.data), run.Throttle(min_interval=1.0)))
    run.show_notes(job)
    if job.status == "idle" and refusal is None:
        st.info("Choose a few images and targets and press Run; the figures fill in as pairs finish.")
    path = job.data.get("db") if not running else None

if path is not None:
    try:
        params, rows = study_view.read(path)
    except StoreError as err:
        widgets.error(str(err))
    else:
        if rows:
            st.markdown(study_view.describe(params, rows, shipped=source == "shipped"))
            if source == "shipped":
                st.expander("How the shipped study was made").markdown(study_view.SHIPPED_NOTE)
            study_view.show_study(params, rows, K + source)
        else:
            name = widgets.model_title(params["model"])
            st.info(f"This database holds a study of {name} with no finished pairs yet.")
