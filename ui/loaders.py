"""Cached loaders: one model per process for every session, and small cached results keyed by ids and bytes.

serving.models() holds the models (one copy shared by all browser sessions and the scheduler, bounded by bytes; safe
because a Classifier is in eval mode with parameter gradients off). `st.cache_data` holds small pickled results keyed
by a
model name and PNG bytes, never by tensors or UploadedFile objects. Bad input raises the engine's own errors,
which the pickers turn into one st.error line.
"""

from __future__ import annotations

import io

import numpy as np
import streamlit as st
from PIL import Image

import serving
from experiments.lab.steps import cam_images
from images import load_image, sample_thumbnail
from models import Classifier, UnknownModelError, WeightsUnavailable, pil_to_tensor


def get_model(name: str) -> Classifier:
    """The shared classifier; raises UnknownModelError, WeightsUnavailable or serving.NoRoom (a model that does not
    fit the server's budget now), none of them cached, so it can be retried."""
    cache = serving.models()
    if name in cache.names():
        return cache.get(name)
    with st.spinner("Loading the model…"):
        return cache.get(name)


@st.cache_data(ttl=60, show_spinner="Checking the model's weights…")
def model_problem(name: str) -> str | None:
    """Why `name` cannot be used, or None. Cached for a minute, so an offline online-model costs no retries."""
    try:
        get_model(name)
    except (UnknownModelError, WeightsUnavailable, serving.NoRoom) as err:
        return str(err)
    return None


@st.cache_data(max_entries=8, show_spinner="Finding the photos a label-only attacker can start from…")
def start_classes(model_name: str) -> tuple[int, ...]:
    """The classes a targeted decision-based run (HopSkipJump) can aim at with this model: those with a shipped
    photo the model labels correctly (images.imagesets.class_examples, what serving's scheduler starts it from)."""
    from images.imagesets import class_examples  # noqa: PLC0415

    return tuple(sorted(class_examples(get_model(model_name))))


def to_png(image: Image.Image | np.ndarray) -> bytes:
    """Lossless 8-bit PNG; compression level 1 because encoding time is spent inside the live view's budget."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image, "RGB")
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def from_png(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB")


@st.cache_data(max_entries=256, show_spinner=False)
def thumbnail_png(sample_id: str, size: int = 112) -> bytes:
    """A square, centre-cropped thumbnail, so the gallery's rows line up."""
    thumb = sample_thumbnail(sample_id, 2 * size)
    side = min(thumb.size)
    left, top = (thumb.width - side) // 2, (thumb.height - side) // 2
    return to_png(thumb.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.LANCZOS))


@st.cache_data(max_entries=32, show_spinner="Reading the image…")
def model_input_png(model_name: str, sample_id: str | None, data: bytes | None) -> bytes:
    """The image exactly as the model sees it (resized and centre-cropped, 8-bit), as PNG bytes.

    Raises ImageError for bad input (not cached, so a bad upload is refused again, cheaply, on the next rerun).
    """
    image = load_image(sample_id if data is None else data)
    return to_png(get_model(model_name).preprocess(image))


@st.cache_data(max_entries=64, show_spinner=False)
def probabilities(model_name: str, png: bytes) -> np.ndarray:
    """(K,) class probabilities of an 8-bit image."""
    model = get_model(model_name)
    return model.probabilities(pil_to_tensor(from_png(png)).to(model.device))[0].cpu().numpy()


@st.cache_data(max_entries=32, show_spinner=False)
def cam_overlays(model_name: str, png: bytes, classes: tuple[int, ...]) -> list[bytes]:
    """Grad-CAM heatmaps of each class on one image, blended over it, as PNGs (one batched pass for all classes)."""
    model = get_model(model_name)
    images = serving.page_work(cam_images, model, from_png(png), classes)  # one heatmap pass at a time, one thread
    return [to_png(im) for im in images]
