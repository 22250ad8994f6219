"""The Adversarial patch page's Streamlit glue: the shipped patches, the placed patch with its top-5 bars, the print
sheet downloads, the camera/upload check, the held-out table and the live view of a training run.

The tensor work is experiments.patch.patch's; here everything is numpy, PNG/PDF bytes and plotly dicts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from attacks import AttackError
from experiments.patch import patch as engine
from images import ImageError, load_image, load_sample
from models import IMAGENET_CATEGORIES
from ui import figures, loaders, widgets

SHIPPED_DIR = Path(__file__).resolve().parents[2] / "data" / "patch"
HELDOUT_SET = str(SHIPPED_DIR / "heldout")
ORIGINS = {"shipped": "shipped with the app", "run": "from your run", "loaded": "loaded from a file"}
PAPER_NOTE = (
    "Brown et al. (2017, Fig. 2) plot success against patch scale for white-box and black-box patches on large "
    "ImageNet networks; here one small model (EfficientNet-Lite0, white-box), a 64x64 patch trained on a CPU on "
    "800 photos, placed within ±30°, so compare the shape of the curve, not its values."
)


@st.cache_data(max_entries=4, show_spinner=False)
def shipped() -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
    """The shipped patches by target name: ((P,P,3) uint8 pixels, sidecar), for every PNG with a sidecar; the
    toaster first, as the paper's (the page opens on it)."""
    found = {}
    for png in sorted(SHIPPED_DIR.glob("*.png"), key=lambda p: ("toaster" not in p.stem, p.stem)):
        if png.with_suffix(".json").exists():
            patch, meta = engine.load_patch(png)
            found[meta.get("target", png.stem)] = (engine.to_uint8(patch), meta)
    return found


def target_of(meta: dict[str, Any]) -> int:
    return int(meta.get("target_index", engine.resolve_target(meta.get("target", "toaster"))))


@st.cache_data(max_entries=8, show_spinner=False)
def photo(sample_id: str | None, data: bytes | None) -> Any:
    """The picked image (a sample or an upload's bytes) decoded; ImageError when unusable."""
    return load_sample(sample_id) if sample_id is not None else load_image(data)  # type: ignore[arg-type]


@st.cache_data(max_entries=64, show_spinner="Placing the patch…")
def placed(
    model_name: str, sample_id: str | None, data: bytes | None, pixels: np.ndarray, where: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """((S,S,3) 8-bit image with the patch, its (K,) probabilities, the clean photo's (K,) probabilities)."""
    model = loaders.get_model(model_name)
    image, probs = engine.patched(model, photo(sample_id, data), pixels, *where)
    return image, probs, engine.classify(model, photo(sample_id, data))


def verdict(probs: np.ndarray, target: int) -> str:
    """The label line: the model's top-1 with its probability, and whether it is the patch's target."""
    top = int(probs.argmax())
    mark = "✔ the patch's target" if top == target else f"target {widgets.class_name(target)}: {probs[target]:.1%}"
    return f"**Model says: {widgets.class_name(top)}** ({probs[top]:.0%}) · {mark}"


def show_placed(model_name: str, picked: Any, pixels: np.ndarray, target: int, where: tuple[float, ...]) -> None:
    """The photo with the patch and, beside it, the top-5 bars with the target pinned."""
    try:
        image, probs, clean = placed(model_name, picked.sample_id, picked.data, pixels, where)
    except (AttackError, ImageError) as err:
        widgets.error(err)
        return
    st.markdown(verdict(probs, target))
    left, right = st.columns([1, 1.5], gap="small", vertical_alignment="center")
    widgets.show_image(left, image, f"With the patch at {where[2]:.0%} of the image, {where[3]:+.0f}°")
    source = int(clean.argmax())
    fig = figures.bars(probs, IMAGENET_CATEGORIES, source=source, target=target, title="Top-5", n_rows=5)
    widgets.chart(right, fig)
    st.caption(f"Without the patch: {widgets.class_name(source)} ({clean[source]:.0%}).")


def print_downloads(pixels: np.ndarray, name: str, cm: float, dpi: int = 300) -> None:
    """PNG and PDF of the print sheet: the patch at cm x cm (at dpi), a dashed cut line, a caption."""
    try:
        sheet = engine.print_sheet(pixels, cm, dpi, caption=f"adversarial patch '{name}', {cm:g} cm - cut on the line")
    except AttackError as err:
        widgets.error(err)
        return
    left, right = st.columns(2)
    stem = f"patch_{name.replace(' ', '_')}_{cm:g}cm"
    left.download_button("Print sheet (.png)", engine.sheet_png(sheet, dpi), f"{stem}.png", key="exp.patch_dl.png")
    right.download_button("Print sheet (.pdf)", engine.sheet_pdf(sheet, dpi), f"{stem}.pdf", key="exp.patch_dl.pdf")
    st.caption(f"{sheet.width} x {sheet.height} px at {dpi} dpi: print at 100% (no fit to page).")


@st.cache_data(max_entries=16, show_spinner="Classifying the photo…")
def classify_bytes(model_name: str, data: bytes) -> np.ndarray:
    return engine.classify(loaders.get_model(model_name), load_image(data))


def show_camera(model_name: str, data: bytes | None, target: int) -> None:
    """A camera photo or an upload classified, the patch's target marked; one line for an unusable file."""
    if data is None:
        return
    try:
        probs = classify_bytes(model_name, data)
    except ImageError as err:
        widgets.error(f"this photo cannot be used: {err}")
        return
    st.markdown(verdict(probs, target))
    if int(probs.argmax()) != target:
        st.info(
            "Not the target: is the whole patch in the picture, flat, and at least a tenth of the frame? "
            "A photo with no visible patch is simply classified as it is."
        )
    source = int(probs.argmax()) if int(probs.argmax()) != target else None
    widgets.chart(st, figures.bars(probs, IMAGENET_CATEGORIES, source=source, target=target, title="Top-5", n_rows=5))


def show_heldout(meta: dict[str, Any]) -> None:
    """The sidecar's held-out table (patch vs noise vs grey by size) as a table and lines, with the split sizes."""
    table = meta.get("heldout")
    if not table:
        st.caption(
            "No table by size for this patch: the shipped patches have one (scripts/make_patch.py); a patch trained "
            "here gives its held-out success at 10% in its line above."
        )
        return
    sizes = [f"{s:.0%}" for s in table["sizes"]]
    rows = {"patch size (area)": sizes}
    rows |= {k: ["–" if r is None else f"{r:.1%}" for r in table[k]] for k in ("patch", "noise", "grey")}
    widgets.table(st, rows)
    series = {k: [r or 0.0 for r in table[k]] for k in ("patch", "noise", "grey")}
    fig = figures.lines(sizes, series, title="Targeted success", x_title="patch area", y_title="", categorical_x=True)
    widgets.chart(st, fig)
    split = meta.get("split", {})
    st.caption(
        f"Targeted success on {table['n']} held-out photos (of {split.get('n_heldout', '?')} held out; those already "
        f"classified as the target are not counted), never trained on; trained on {split.get('n_train', '?')} "
        f"photos in {meta.get('training_seconds', meta.get('seconds', 0)):.0f} s. Random place and angle (±30°, seed "
        f"{table['seed']}), the same for the patch and both controls. {PAPER_NOTE}"
    )


def uploaded(key: str, disabled: bool) -> tuple[np.ndarray, dict[str, Any]] | None:
    """A square patch image from the uploader, or None (one st.error line when the file is not usable)."""
    upload = st.file_uploader("Load a patch (PNG)", key=key, disabled=disabled, max_upload_size=20)
    if upload is None:
        return None
    try:
        patch = engine.read_patch(upload.getvalue(), upload.name)
    except (AttackError, ImageError) as err:
        widgets.error(f"this patch cannot be used: {err}")  # not the file's name first: error() capitalises it
        return None
    return engine.to_uint8(patch), {"file": upload.name}


# --------------------------------------------------------------------------------------------- a live run


@st.cache_resource(max_entries=2, show_spinner="Reading the images…")
def image_set(name: str) -> tuple[list[str], Any]:
    """(ids, (N,3,S,S) uint8 Lite0 inputs) of an image set; AttackError for a missing or empty one."""
    return engine.load_inputs(loaders.get_model("efficientnet_lite0"), name)


def recorded(work: Iterator[engine.PatchProgress], store: dict[str, Any], model_name: str) -> Iterator:
    """Keep the latest patch, its settings and the loss curve in the store, so a Stop keeps the patch so far."""
    store["history"] = []
    for p in work:
        store["patch"], store["last"] = engine.to_uint8(p.patch), p
        store["meta"] = p.to_json(model_name)
        store["history"].append((p.step, p.loss))
        store["stopped"] = f"Stopped at step {p.step} of {p.steps}: the patch so far is kept (labelled 'stopped')."
        yield p


def status(p: engine.PatchProgress, stopped: bool = False) -> str:
    """The run's line: step, loss, recent training success, split sizes and (when done) held-out success."""
    held = "" if p.heldout_success is None else f" · held-out success at 10%: **{p.heldout_success:.0%}**"
    where = "done" if p.done else "stopped" if stopped else "so far"
    line = (
        f"**Step {p.step} of {p.steps}** ({where}) · loss {p.loss:.2f} · target on the last training batches "
        f"**{p.train_success:.0%}** · {p.n_train} training, {p.n_heldout} held-out photos{held} · {p.seconds:.0f} s"
    )
    return line + short_run_note(p)


def short_run_note(p: engine.PatchProgress) -> str:
    """Why a finished page run's patch rarely fools (a walk: the default 60 steps gave 0% held-out): the shipped
    patch for that target, with its own steps, photos and held-out success, as the yardstick. '' otherwise."""
    if p.heldout_success is None or p.heldout_success >= 0.5:
        return ""
    same = [meta for _, meta in shipped().values() if target_of(meta) == p.target]
    if not same:
        return "  \nA short run on a few photos trains a weak patch: more steps and photos make it work."
    meta = same[0]
    fools = meta["heldout_success_at_eval_fraction"]
    return (
        f"  \nA short run on a few photos trains a weak patch: the shipped {meta['target']} patch took "
        f"{meta['steps_run']} steps on {meta['n_train']} photos and fools {fools:.0%} of its held-out photos at 10% "
        "(pick it above)."
    )


def loss_figure(history: list[tuple[int, float]]) -> dict[str, Any]:
    """The training loss by step, on the loss's own range (cross-entropy, ~0 to ~10): on the 0-100% axis of a rate,
    as it was, every value of 4 to 9 lay above the chart and the curve looked empty."""
    steps, losses = [h[0] for h in history], [h[1] for h in history]
    return figures.lines(steps, {"loss": losses}, title="Loss", x_title="step", y_title="", y_range=None)


def painter(slots: dict[str, Any], store: dict[str, Any]):
    """Draws a run's line, its patch and its loss curve into the page's slots: live, and again after the run."""

    def paint(p: engine.PatchProgress, stopped: bool = False) -> None:
        slots["status"].markdown(status(p, stopped=stopped))
        where = "trained" if p.done else "stopped" if stopped else "so far"
        widgets.show_image(slots["patch"], store["patch"], f"patch {where} (step {p.step})")
        widgets.chart(slots["curve"], loss_figure(store["history"]))

    return paint
