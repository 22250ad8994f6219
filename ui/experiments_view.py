"""Streamlit glue of the experiment pages (fooling images, transfer, robustness): pickers, live slots, figures.

Reuses the Attack Lab's cached loaders (ui.loaders) and probability bars (ui.figures). Its own widget keys all start
with "exp." so these pages never collide with the Attack Lab's settings in st.session_state. Nothing here takes a
gradient: the experiments package does.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import numpy as np
import streamlit as st
from PIL import Image
from torch import Tensor

from images import SAMPLES, ImageError, load_image
from models import IMAGENET_CATEGORIES, MODELS, OFFLINE_MODELS, Classifier, tensor_to_pil, weights_cached
from ui import figures, loaders

FONT = figures.FONT
_chart_ids = itertools.count()


def error(message: str) -> None:
    """One st.error sentence: capitalised, ending with a full stop."""
    text = str(message).strip()
    text = text[:1].upper() + text[1:]
    st.error(text if text.endswith((".", "!", "?")) else f"{text}.")


def png(image: Image.Image | Tensor | np.ndarray) -> bytes:
    """Exact 8-bit PNG bytes of a PIL image, a (1,3,H,W)/(3,H,W) tensor in [0,1] or an (H,W,3) uint8 array."""
    if isinstance(image, Tensor):
        image = tensor_to_pil(image)
    return loaders.to_png(image)


def show_image(slot: Any, image: Image.Image | Tensor | bytes, caption: str) -> None:
    """An image as lossless PNG (st.image would send JPEG, which hides the perturbation)."""
    data = image if isinstance(image, bytes) else png(image)
    slot.image(data, caption=caption, output_format="PNG", width="stretch")


def chart(slot: Any, figure: dict[str, Any]) -> None:
    """A plotly figure (dict) in a slot; a fresh key per draw, as Streamlit refuses duplicate element ids."""
    slot.plotly_chart(figure, key=f"exp-chart-{next(_chart_ids)}", config={"displayModeBar": False})


def class_name(index: int) -> str:
    name = IMAGENET_CATEGORIES[index]
    return f"{name} (#{index})" if IMAGENET_CATEGORIES.count(name) > 1 else name


# ------------------------------------------------------------------------------------------------- pickers


def _model_label(name: str) -> str:
    spec = MODELS[name]
    if spec.offline:
        return f"{spec.title} · offline"
    return f"{spec.title} · online{' (cached)' if weights_cached(name) else ', downloads weights'}"


def usable_models() -> list[str]:
    """Models that work without a download: the offline ones and online ones already on this disk."""
    return [n for n in MODELS if n in OFFLINE_MODELS or weights_cached(n)]


def model_select(label: str, key: str, *, disabled: bool = False) -> Classifier | None:
    """One model; None (with the reason as st.error) when its weights cannot be had."""
    st.session_state.setdefault(key, OFFLINE_MODELS[0])
    name = st.selectbox(label, list(MODELS), key=key, format_func=_model_label, disabled=disabled)
    problem = loaders.model_problem(name)
    if problem:
        error(problem)
        return None
    return loaders.get_model(name)


def models_multiselect(
    label: str, key: str, default: Sequence[str], *, disabled: bool = False, help: str | None = None
) -> list[str]:
    """Several model names, each checked; unusable ones are reported and dropped."""
    st.session_state.setdefault(key, list(default))
    names = st.multiselect(label, list(MODELS), key=key, format_func=_model_label, disabled=disabled, help=help)
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
        )
    ]


@dataclass(frozen=True)
class PickedImage:
    """The picked image: its name (sample id or file name), the decoded RGB image, and its true label if known."""

    name: str
    image: Image.Image
    label: int | None


def image_select(key: str, *, default: str = "chelsea", disabled: bool = False) -> PickedImage | None:
    """A built-in sample or an upload; None (with one st.error line) when there is no usable image."""
    mode = (
        st.segmented_control(
            "Image from", ("Samples", "Upload"), key=f"{key}.from", default="Samples", disabled=disabled
        )
        or "Samples"
    )
    if mode == "Upload":
        upload = st.file_uploader("Upload an image", key=f"{key}.upload", disabled=disabled, max_upload_size=50)
        if upload is None:
            st.info("Upload an image, or pick a sample.")
            return None
        try:
            return PickedImage(upload.name, _decode(upload.getvalue()), None)
        except ImageError as err:
            error(f"this image cannot be used: {err}")
            return None
    if not SAMPLES:
        error("no sample images are installed (scikit-image, scikit-learn or foolbox); upload an image instead")
        return None
    st.session_state.setdefault(key, default if default in SAMPLES else next(iter(SAMPLES)))
    sample_id = st.selectbox(
        "Sample", list(SAMPLES), key=key, format_func=lambda s: SAMPLES[s].title, disabled=disabled
    )
    try:
        return PickedImage(sample_id, _sample(sample_id), SAMPLES[sample_id].label)
    except ImageError as err:
        error(f"this sample cannot be loaded: {err}")
        return None


@st.cache_data(max_entries=8, show_spinner="Reading the image…")
def _decode(data: bytes) -> Image.Image:
    return load_image(data)


@st.cache_data(max_entries=32, show_spinner=False)
def _sample(sample_id: str) -> Image.Image:
    return load_image(sample_id)


# ------------------------------------------------------------------------------------------- live drawing


class Throttle:
    """Redraw at most every `interval` seconds (the first call is always due), so drawing never dominates a run and
    few images pile up in the browser session (Streamlit keeps every replaced image until the script run ends)."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.next_at = 0.0

    def due(self, final: bool = False) -> bool:
        now = perf_counter()
        if final or now >= self.next_at:
            self.next_at = now + self.interval
            return True
        return False


def bars(
    probs: np.ndarray,
    *,
    source: int | None,
    target: int | None,
    title: str,
    n_rows: int = 6,
    rows: figures.BarRows | None = None,
) -> dict[str, Any]:
    """The Attack Lab's probability bars: target (and source) pinned, then the strongest other classes."""
    if source is None or source == target:
        source = next(int(c) for c in np.argsort(-probs) if int(c) != target)  # the strongest other class
    keeper = rows or figures.BarRows(source, target, n_rows)
    order = keeper.update(probs)
    src = keeper.pinned[0]
    labels = figures.row_labels(order, IMAGENET_CATEGORIES, src, target)
    return figures.probability_bars(
        order, [float(probs[c]) for c in order], labels, source=src, target=target, title=title, height=300
    )


def lines(
    x: Sequence[float],
    series: dict[str, Sequence[float]],
    *,
    title: str,
    x_title: str,
    y_title: str,
    y_range: tuple[float, float] | None = (0.0, 1.0),
    log_y: bool = False,
    height: int = 300,
    categorical_x: bool = False,
    colours: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Plain line chart as a plotly dict (cheap to rebuild on every redraw)."""
    traces = [
        {
            "type": "scatter",
            "mode": "lines+markers" if len(x) < 40 else "lines",
            "name": name,
            "x": [str(v) for v in x] if categorical_x else list(x),
            "y": [float(v) for v in ys],
            **(
                {"line": {"color": colours[name], "width": 3}}
                if colours and name in colours
                else {"line": {"width": 3}}
            ),
        }
        for name, ys in series.items()
    ]
    yaxis: dict[str, Any] = {"title": {"text": y_title}}
    if log_y:
        yaxis["type"] = "log"
    elif y_range is not None:
        yaxis.update({"range": list(y_range), "tickformat": ".0%"})
    return {
        "data": traces,
        "layout": {
            "title": {"text": title},
            "height": height,
            "font": FONT,
            "margin": {"l": 10, "r": 10, "t": 40, "b": 30},
            "xaxis": {"title": {"text": x_title}, **({"type": "category"} if categorical_x else {})},
            "yaxis": yaxis,
            "legend": {"orientation": "h", "y": -0.25, "x": 0},
        },
    }


def heatmap(
    rows: Sequence[str],
    cols: Sequence[str],
    values: Sequence[Sequence[float | None]],
    text: Sequence[Sequence[str]],
    *,
    title: str,
    height: int | None = None,
) -> dict[str, Any]:
    """Source x evaluation heatmap on a fixed 0..1 scale (white = not fooled, red = fooled / high p)."""
    z = [[None if v is None else float(v) for v in row] for row in values]
    return {
        "data": [
            {
                "type": "heatmap",
                "z": z,
                "x": list(cols),
                "y": list(rows),
                "text": [list(t) for t in text],
                "texttemplate": "%{text}",
                "zmin": 0,
                "zmax": 1,
                "colorscale": [[0, "#f7f7f7"], [1, "#d62728"]],
                "showscale": False,
                "hovertemplate": "%{y} → %{x}: %{text}<extra></extra>",
            }
        ],
        "layout": {
            "title": {"text": title},
            "height": height or 120 + 50 * len(rows),
            "font": FONT,
            "margin": {"l": 10, "r": 10, "t": 40, "b": 30},
            "xaxis": {"title": {"text": "evaluated on"}, "side": "bottom"},
            "yaxis": {"autorange": "reversed", "automargin": True, "title": {"text": "attacked"}},
        },
    }
