"""Widgets and displays of the experiment pages (fooling images, transfer, robustness, and the pages to come).

Reuses the Attack Lab's cached loaders (ui.loaders) and probability bars (ui.figures). Its own widget keys all start
with "exp." so these pages never collide with the Attack Lab's settings in st.session_state. Nothing here takes a
gradient: the experiments package does.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st
from PIL import Image

from experiments.transfer import transfer
from images import SAMPLES, ImageError, frame_count, load_image
from models import IMAGENET_CATEGORIES, MODELS, OFFLINE_MODELS, Classifier, short_title, tensor_to_pil, weights_cached
from ui import figures, loaders, presenter

_chart_ids = itertools.count()


def error(message: str) -> None:
    """One st.error sentence: capitalised, ending with a full stop."""
    text = str(message).strip()
    text = text[:1].upper() + text[1:]
    st.error(text if text.endswith((".", "!", "?")) else f"{text}.")


def png(image: Any) -> bytes:
    """Exact 8-bit PNG bytes of a PIL image, an (H,W,3) uint8 array or a (1,3,H,W)/(3,H,W) tensor in [0,1]."""
    if not isinstance(image, (Image.Image, np.ndarray)):
        image = tensor_to_pil(image)
    return loaders.to_png(image)


def show_image(slot: Any, image: Any, caption: str) -> None:
    """An image as lossless PNG (st.image would send JPEG, which hides the perturbation)."""
    data = image if isinstance(image, bytes) else png(image)
    slot.image(data, caption=caption, output_format="PNG", width="stretch")


def chart(slot: Any, figure: dict[str, Any]) -> None:
    """A plotly figure (dict) in a slot, larger in the presenter view; a fresh key per draw, as Streamlit refuses
    duplicate element ids."""
    if presenter.on():
        figure = figures.presented(figure)
    slot.plotly_chart(figure, key=f"exp-chart-{next(_chart_ids)}", config={"displayModeBar": False})


def table(slot: Any, rows: Any) -> None:
    """A small results table (a DataFrame or a dict of columns) that fits its frame: st.table wraps a long header
    or cell, where st.dataframe's canvas grid hid the columns at the right of a 1366-px screen (issue 20 item 4)."""
    slot.table(rows, hide_index=True, border="horizontal")


def class_name(index: int) -> str:
    name = IMAGENET_CATEGORIES[index]
    return f"{name} (#{index})" if IMAGENET_CATEGORIES.count(name) > 1 else name


# ------------------------------------------------------------------------------------------------- pickers


#: What the model selectboxes' labels leave out, so a chosen name fits a quarter of a 1366-pixel screen.
MODEL_HELP = "The EfficientNet-Lite models come with the app (offline); the others download their weights once."


def model_label(name: str) -> str:
    """The model's title, and for an online model whether its weights are here ("cached") or will download."""
    spec = MODELS[name]
    if spec.offline:
        return spec.title
    return f"{spec.title} · {'cached' if weights_cached(name) else 'downloads'}"


def short_model_label(name: str) -> str:
    """A chip-sized model name ("Lite0 · offline", "ResNet-50 · cached"), so several fit in a narrow column."""
    spec, title = MODELS[name], short_title(name)
    if spec.offline:
        return f"{title} · offline"
    return f"{title} · {'cached' if weights_cached(name) else 'download'}"


def model_title(name: str) -> str:
    """The name a page shows for a model ("EfficientNet-Lite0", never "efficientnet_lite0"); an unregistered name
    (a loaded file's "?") as it is."""
    return MODELS[name].title if name in MODELS else name


def usable_models() -> list[str]:
    """Models that work without a download: the offline ones and online ones already on this disk."""
    return [n for n in MODELS if n in OFFLINE_MODELS or weights_cached(n)]


def model_select(label: str, key: str, *, disabled: bool = False) -> Classifier | None:
    """One model; None (with the reason as st.error) when its weights cannot be had."""
    st.session_state.setdefault(key, OFFLINE_MODELS[0])
    name = st.selectbox(label, list(MODELS), key=key, format_func=model_label, disabled=disabled, help=MODEL_HELP)
    problem = loaders.model_problem(name)
    if problem:
        error(problem)
        return None
    return loaders.get_model(name)


def models_multiselect(
    label: str,
    key: str,
    default: Sequence[str],
    *,
    disabled: bool = False,
    help: str | None = None,
    empty_error: str | None = None,
) -> list[str]:
    """Several model names, each checked; unusable ones are reported and dropped. Short chip labels that wrap onto
    more rows, so every chosen model stays readable in a narrow settings column. `empty_error`: the sentence shown
    when nothing is chosen (the reason a Run button is off)."""
    st.session_state.setdefault(key, list(default))
    names = st.multiselect(
        label,
        list(MODELS),
        key=key,
        format_func=short_model_label,
        disabled=disabled,
        help=help,
        wrap=True,
    )
    if not names and empty_error:
        error(empty_error)
    usable = []
    for name in names:
        problem = loaders.model_problem(name)
        if problem:
            error(problem)
        else:
            usable.append(name)
    return usable


def class_select(label: str, key: str, default: int, *, disabled: bool = False, help: str | None = None) -> int:
    """One of the 1000 ImageNet classes, searchable by typing."""
    st.session_state.setdefault(key, default)
    return int(
        st.selectbox(
            label, range(len(IMAGENET_CATEGORIES)), key=key, format_func=class_name, disabled=disabled, help=help
        )
    )


def classes_multiselect(
    label: str, key: str, default: Sequence[int], *, max_selections: int, disabled: bool = False
) -> list[int]:
    st.session_state.setdefault(key, list(default))
    return [
        int(c)
        for c in st.multiselect(
            label,
            range(len(IMAGENET_CATEGORIES)),
            key=key,
            format_func=class_name,
            max_selections=max_selections,
            disabled=disabled,
            wrap=True,
        )
    ]


@dataclass(frozen=True)
class PickedImage:
    """The picked image: its name (sample id or file name), the decoded RGB image, and its true label if known.

    sample_id / data (the upload's bytes) are what the cached loaders are keyed by (never the PIL image).
    """

    name: str
    image: Image.Image
    label: int | None
    sample_id: str | None = None
    data: bytes | None = None


def image_select(key: str, *, default: str = "chelsea", disabled: bool = False) -> PickedImage | None:
    """A built-in sample or an upload; None (with one st.error line) when there is no usable image."""
    st.session_state.setdefault(f"{key}.from", "Samples")
    mode = st.segmented_control("Image from", ("Samples", "Upload"), key=f"{key}.from", disabled=disabled) or "Samples"
    if mode == "Upload":
        upload = st.file_uploader("Upload an image", key=f"{key}.upload", disabled=disabled, max_upload_size=50)
        if upload is None:
            st.info("Upload an image, or pick a sample.")
            return None
        try:
            data = upload.getvalue()
            picked = PickedImage(upload.name, _decode(data), None, data=data)
        except ImageError as err:
            error(f"this image cannot be used: {err}")
            return None
        first_frame_note(data)
        return picked
    if not SAMPLES:
        error("no sample images are installed (scikit-image, scikit-learn or foolbox); upload an image instead")
        return None
    st.session_state.setdefault(key, default if default in SAMPLES else next(iter(SAMPLES)))
    sample_id = st.selectbox(
        "Sample", list(SAMPLES), key=key, format_func=lambda s: SAMPLES[s].title, disabled=disabled
    )
    try:
        return PickedImage(sample_id, _sample(sample_id), SAMPLES[sample_id].label, sample_id=sample_id)
    except ImageError as err:
        error(f"this sample cannot be loaded: {err}")
        return None


def first_frame_note(data: bytes | None) -> None:
    """Say so when an upload is animated (or has pages): the model sees its first frame only, as load_image keeps."""
    if data is not None and (frames := frame_count(data)) > 1:
        st.caption(f"This file has {frames} frames (an animation): only the first frame is used.")


def model_class(model_name: str, picked: PickedImage) -> int:
    """The model's top class on the picked image as a run preprocesses it (the Attack Lab's cached PNG and
    probabilities), so a target equal to it is refused before Run. Raises ImageError for an unusable image."""
    png = loaders.model_input_png(model_name, picked.sample_id, picked.data)
    return int(loaders.probabilities(model_name, png).argmax())


def attacked_class(model_names: Sequence[str], picked: PickedImage) -> int:
    """The class a transfer run starts from: the one attacked model's, or the ensemble's (mean of the logits) when
    several are attacked - experiments.transfer.transfer.source_class, the definition the run itself uses."""
    if len(model_names) == 1:
        return model_class(model_names[0], picked)
    return _ensemble_class(tuple(model_names), picked.sample_id, picked.data)


@st.cache_data(max_entries=32, show_spinner="Asking the ensemble…")
def _ensemble_class(model_names: tuple[str, ...], sample_id: str | None, data: bytes | None) -> int:
    image = load_image(sample_id if data is None else data)
    return transfer.source_class(image, [loaders.get_model(n) for n in model_names])


@st.cache_data(max_entries=8, show_spinner="Reading the image…")
def _decode(data: bytes) -> Image.Image:
    return load_image(data)


@st.cache_data(max_entries=32, show_spinner=False)
def _sample(sample_id: str) -> Image.Image:
    return load_image(sample_id)
