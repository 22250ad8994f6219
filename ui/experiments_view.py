"""Streamlit glue of the experiment pages (fooling images, transfer, robustness): pickers, live slots, figures.

Reuses the Attack Lab's cached loaders (ui.loaders) and probability bars (ui.figures). Its own widget keys all start
with "exp." so these pages never collide with the Attack Lab's settings in st.session_state. Nothing here takes a
gradient: the experiments package does.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import numpy as np
import streamlit as st
from PIL import Image
from torch import Tensor

from experiments import transfer
from images import SAMPLES, ImageError, load_image
from models import IMAGENET_CATEGORIES, MODELS, OFFLINE_MODELS, Classifier, tensor_to_pil, weights_cached
from ui import figures, loaders
from ui.state import pin_values

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


def short_model_label(name: str) -> str:
    """A chip-sized model name ("Lite0 · offline", "ResNet-50 · cached"), so several fit in a narrow column."""
    spec = MODELS[name]
    title = spec.title.removeprefix("EfficientNet-").split(" (")[0]
    if spec.offline:
        return f"{title} · offline"
    return f"{title} · {'cached' if weights_cached(name) else 'download'}"


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
            return PickedImage(upload.name, _decode(data), None, data=data)
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
        return PickedImage(sample_id, _sample(sample_id), SAMPLES[sample_id].label, sample_id=sample_id)
    except ImageError as err:
        error(f"this sample cannot be loaded: {err}")
        return None


def model_class(model_name: str, picked: PickedImage) -> int:
    """The model's top class on the picked image as a run preprocesses it (the Attack Lab's cached PNG and
    probabilities), so a target equal to it is refused before Run. Raises ImageError for an unusable image."""
    png = loaders.model_input_png(model_name, picked.sample_id, picked.data)
    return int(loaders.probabilities(model_name, png).argmax())


def attacked_class(model_names: Sequence[str], picked: PickedImage) -> int:
    """The class a transfer run starts from: the one attacked model's, or the ensemble's (mean of the logits) when
    several are attacked - experiments.transfer.source_class, the definition the run itself uses."""
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


# ------------------------------------------------------------------------------------------- runs


def job(key: str) -> dict[str, Any]:
    """A page's run state in st.session_state: "requested" (what Run asked for, until a script run claims it),
    "active" (what a script run is doing now), "notes" ((level, text) pairs shown after a run: why it stopped, what
    was skipped, an error) and whatever the page keeps there while it works.

    Why a dict held by reference: after a Stop every st.* call of the stopped run raises again, so the code that ends
    a run only touches this dict, never st.session_state.
    """
    return st.session_state.setdefault(key, {"notes": []})


def request_start(key: str, kind: str, prefix: str, unsettable: Sequence[str] = ()) -> None:
    """on_click of a page's Run: ask for a run before the script reruns, so that run draws the settings and Run
    disabled (a second click cannot restart it) while Stop stays usable.

    Streamlit discards a value that arrives for a widget in the same script run that draws it disabled, so a number
    typed just before the click would be lost; re-assigning every setting under `prefix` here makes its fresh value a
    Session State value, which a disabled widget keeps. `unsettable`: the page's buttons, which Session State cannot
    set (the image picker's uploader, "<key>.upload", is skipped too).
    """
    state = st.session_state
    pin_values(
        name
        for name in list(state.keys())
        if isinstance(name, str)
        and name.startswith(prefix)
        and name not in unsettable
        and not name.endswith(".upload")
        and name != key
    )
    state[key] = {"requested": kind, "notes": []}


def claim(key: str, *, wait_s: float = 20.0) -> tuple[dict[str, Any], str | None]:
    """At the top of a page: its run state, and what Run asked for (None when nothing). The request is popped, so
    only the script run that Run started does the work; any later rerun (Stop, a page switch) draws the page idle.

    Why the wait: Streamlit answers a rerun by starting a new script thread at once (runner.fastReruns) while the
    interrupted run goes on to its next Streamlit call and stops there; waiting for its "active" mark to clear lets
    this run show what it kept and why it stopped. After `wait_s` the mark is dropped so no later run waits again.
    """
    state = job(key)
    kind = state.pop("requested", None)
    if kind is None and state.get("active"):
        with st.spinner("Stopping the run…"):
            deadline = perf_counter() + wait_s
            while state.get("active") and perf_counter() < deadline:
                time.sleep(0.1)
        state["active"] = None
    return state, kind


def run_stop_buttons(prefix: str, job_key: str, *, ready: bool, running: bool, stop_help: str) -> None:
    """A page's Run and Stop, side by side: Run asks for a run (request_start) and is off while one goes on or the
    settings are not usable; Stop is on only during a run (its click reruns the script, which ends the run)."""
    run_col, stop_col = st.columns(2, gap="small")
    run_col.button(
        "Run",
        type="primary",
        key=prefix + "run",
        disabled=running or not ready,
        icon=":material/play_arrow:",
        width="stretch",
        on_click=request_start,
        args=(job_key, "run", prefix, (prefix + "run", prefix + "stop", prefix + "compare", prefix + "clear")),
    )
    stop_col.button(
        "Stop", key=prefix + "stop", icon=":material/stop:", width="stretch", disabled=not running, help=stop_help
    )


def checkpoint() -> None:
    """A Streamlit yield point without drawing anything (a Session State lookup), called every attack step so Stop
    takes effect within one step even while the progress line is throttled."""
    _ = "exp.checkpoint" in st.session_state


def show_notes(state: dict[str, Any]) -> None:
    """The notes a finished or stopped run left: warnings as st.warning, errors as one st.error line each."""
    for level, text in state.get("notes", []):
        if level == "error":
            error(text)
        else:
            st.warning(text, icon=":material/info:")


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
        yaxis.update({"type": "log", "dtick": 1, "tickformat": "~%"})  # one tick per decade: 0.1%, 1%, 10%, 100%
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
