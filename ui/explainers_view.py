"""Streamlit glue of the "How it works" page: cached computations from experiments.explainers, Plotly figures as
dicts, and the one live loop (grow a fooling image, train a network) with a progress bar and Stop.

The page imports no torch; everything that touches a tensor is here or in experiments/.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import streamlit as st
import torch

from experiments.explainers import boundary as B
from experiments.explainers import digits as D
from experiments.explainers import linear as L
from ui import experiments_view as V
from ui import figures

FONT = figures.FONT
BLUE, RED, GREY, GREEN = figures.SOURCE_COLOUR, figures.TARGET_COLOUR, figures.OTHER_COLOUR, figures.RMS_COLOUR
LAYOUT = {"font": FONT, "margin": {"l": 10, "r": 10, "t": 40, "b": 30}}

# ------------------------------------------------------------------------------------------- 1. linear models


def logistic(nudge: float) -> tuple[L.LogisticNudge, dict[str, Any]]:
    """Seed 001's example and its figure: one bar per input (w_i * dx_i) and the running score they add up to."""
    r = L.logistic_nudge(nudge)
    names = [f"x{i}" for i in range(len(r.x))]
    running = r.score_before + np.cumsum(r.contributions)
    fig = {
        "data": [
            {"type": "bar", "name": "w_i · dx_i", "x": names, "y": r.contributions.tolist(), "marker": {"color": RED}},
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "score W·x so far",
                "x": ["start", *names],
                "y": [r.score_before, *running.tolist()],
                "line": {"color": BLUE, "width": 3},
            },
        ],
        "layout": {
            **LAYOUT,
            "title": {"text": "Each input adds a little; together they cross 0 (p = 0.5)"},
            "height": 340,
            "xaxis": {"categoryorder": "array", "categoryarray": ["start", *names]},
            "yaxis": {"title": {"text": "score"}, "zeroline": True, "zerolinewidth": 2},
            "legend": {"orientation": "h", "y": -0.2},
        },
    }
    return r, fig


def scale(eps_255: float, n_dims: int) -> tuple[L.ScaleArgument, dict[str, Any]]:
    """The same sum at image scale: score change vs the number of dimensions, at a fixed per-pixel change."""
    curve = L.scale_curve(eps_255)
    here = L.scale_argument(n_dims, eps_255)
    dims = [c.n_dims for c in curve]
    series = {
        "along sign(w): grows like n": ([c.aligned_change for c in curve], RED),
        "random signs: grows like √n": ([c.random_change for c in curve], GREY),
        "per-pixel change (what you see)": ([c.eps for c in curve], GREEN),
    }
    data = [
        {"type": "scatter", "mode": "lines", "name": k, "x": dims, "y": ys, "line": {"color": c, "width": 3}}
        for k, (ys, c) in series.items()
    ]
    data.append(
        {
            "type": "scatter",
            "mode": "markers",
            "name": f"n = {n_dims:,}",
            "x": [n_dims],
            "y": [here.aligned_change],
            "marker": {"size": 14, "color": RED, "symbol": "diamond"},
        }
    )
    layout = {
        **LAYOUT,
        "title": {"text": f"Score change of a linear model, {eps_255:g}/255 per pixel"},
        "height": 360,
        "xaxis": {"title": {"text": "dimensions n"}, "type": "log"},
        "yaxis": {"title": {"text": "change"}, "type": "log", "dtick": 1},
        "legend": {"orientation": "h", "y": -0.3},
    }
    return here, {"data": data, "layout": layout}


@st.cache_data(show_spinner="Measuring on EfficientNet-Lite0…")
def first_order_rows(model_name: str, sample: str, steps_255: Sequence[float]) -> list[dict[str, Any]]:
    """The default model's top-class logit under sign steps of several sizes: linear prediction vs measured."""
    from images import load_image
    from models import pil_to_tensor
    from ui import loaders

    model = loaders.get_model(model_name)
    x = pil_to_tensor(model.preprocess(load_image(sample)))  # (1, 3, 224, 224)
    with torch.no_grad():
        top = int(model(x).argmax())
    rows = []
    for s in steps_255:
        r = L.first_order_change(model, x, top, step_255=s)
        rows.append(
            {
                "step per pixel": f"{s:g}/255",
                "class": model.categories[top],
                "predicted: grad · delta": round(r.predicted, 2),
                "measured change": round(r.measured, 2),
                "pixels × channels": r.n_dims,
            }
        )
    return rows


# ------------------------------------------------------------------------------------------- 2. decision boundary

START_X, START_Y = (-1.5, 2.5), (-1.0, 1.5)  # the start sliders' ranges (step 0.05)


@st.cache_resource(show_spinner="Training the two-moons network (a second)…")
def moons_net() -> B.MoonsNet:
    return B.trained_moons_net(0)


@st.cache_data(show_spinner=False)
def regions() -> B.Regions:
    return B.decision_regions(moons_net())


@st.cache_data(show_spinner=False)
def boundary_attack(start: tuple[float, float], norm: str, eps: float, steps: int) -> B.BoundaryAttack:
    return B.attack_path(moons_net(), start, norm=norm, eps=eps, steps=steps)


def _ball(center: tuple[float, float], eps: float, norm: str) -> tuple[list[float], list[float]]:
    cx, cy = center
    if norm == "linf":
        return [cx - eps, cx + eps, cx + eps, cx - eps, cx - eps], [cy - eps, cy - eps, cy + eps, cy + eps, cy - eps]
    t = np.linspace(0, 2 * np.pi, 90)
    return (cx + eps * np.cos(t)).tolist(), (cy + eps * np.sin(t)).tolist()


def boundary_figure(a: B.BoundaryAttack, upto: int) -> dict[str, Any]:
    """Decision regions (p of class 1), the training points, the budget ball, the path up to step `upto` and the
    straight step; an invisible grid of points makes a click anywhere pick a new start."""
    reg = regions()
    xs, ys = B.moons()
    path = a.path[: upto + 1]
    bx, by = _ball(a.start, a.eps, a.norm)
    gx, gy = np.meshgrid(np.arange(*START_X, 0.1).round(2), np.arange(*START_Y, 0.1).round(2))  # on the sliders' grid
    data = [
        {
            "type": "contour",
            "x": reg.xs.tolist(),
            "y": reg.ys.tolist(),
            "z": reg.z.tolist(),
            "zmin": 0,
            "zmax": 1,
            "colorscale": [[0, "#c6dbef"], [0.5, "#ffffff"], [1, "#fcbba1"]],
            "contours": {"start": 0.5, "end": 0.5, "size": 1, "coloring": "heatmap"},
            "line": {"width": 3, "color": "black"},
            "showscale": False,
            "hoverinfo": "skip",
            "name": "p(class 1)",
        },
        *[
            {
                "type": "scatter",
                "mode": "markers",
                "name": f"class {c}",
                "x": xs[ys == c, 0].tolist(),
                "y": xs[ys == c, 1].tolist(),
                "marker": {"size": 5, "color": BLUE if c == 0 else RED, "opacity": 0.5},
                "hoverinfo": "skip",
            }
            for c in (0, 1)
        ],
        {"type": "scatter", "mode": "lines", "name": "budget", "x": bx, "y": by, "line": {"dash": "dot", "width": 2}},
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": "iterated steps",
            "x": [p.point[0] for p in path],
            "y": [p.point[1] for p in path],
            "line": {"color": GREEN, "width": 3},
            "marker": {"size": 6},
        },
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": f"one straight step ({'crosses' if a.straight_crossed else 'does not cross'})",
            "x": [a.start[0], a.straight.point[0]],
            "y": [a.start[1], a.straight.point[1]],
            "line": {"color": "#555555", "width": 4, "dash": "dash"},
            "marker": {"symbol": ["circle", "x"], "size": [1, 14]},
        },
        {
            "type": "scatter",
            "mode": "markers",
            "name": "click to start here",
            "x": gx.ravel().tolist(),
            "y": gy.ravel().tolist(),
            "marker": {"size": 12, "opacity": 0},
            "hovertemplate": "start at (%{x:.2f}, %{y:.2f})<extra></extra>",
            "showlegend": False,
        },
    ]
    layout = {
        **LAYOUT,
        "height": 520,
        "xaxis": {"range": list(B.X_RANGE), "title": {"text": "feature 1"}},
        "yaxis": {"range": list(B.Y_RANGE), "title": {"text": "feature 2"}, "scaleanchor": "x"},
        "legend": {"orientation": "h", "y": -0.15},
        "clickmode": "event+select",
        "dragmode": False,
    }
    return {"data": data, "layout": layout}


def pick_start(chart_key: str, x_key: str, y_key: str) -> None:
    """on_select of the boundary chart: the clicked point becomes the start (sets the two sliders, within range)."""
    points = st.session_state[chart_key].selection.points
    if points:
        for key, value, (low, high) in ((x_key, points[0]["x"], START_X), (y_key, points[0]["y"], START_Y)):
            st.session_state[key] = round(min(high, max(low, round(float(value) * 20) / 20)), 2)


# ------------------------------------------------------------------------------------------- 3. digits

#: Noise seeds of the retraining set (1000 and 1001), outside the page's noise seeds (0..999): a fooling image grown
#: on the page never starts from noise the retrained network was shown.
REJECT_SEED = 1000
MAX_NOISE_SEED = 999


@st.cache_resource(show_spinner="Loading the digits network…")
def digits_net(kind: str) -> D.DigitsCNN:
    return D.load_network(kind)


def committed_curve(kind: str) -> list[tuple[float, float]]:
    """The committed network's accuracy under PGD as scripts/train_digits.py measured it (tests recompute it)."""
    recorded = D.committed_metrics()[kind]["pgd_accuracy"]
    return [(float(e), float(a)) for e, a in recorded.items()]


def test_accuracy(net: torch.nn.Module) -> float:
    split = D.digits_split()
    return D.accuracy(net, split.x_test, split.y_test)


def digit_figure(image: np.ndarray, title: str, height: int = 260) -> dict[str, Any]:
    """An 8x8 image as a grey heatmap (0 = white, 1 = black, as the dataset draws ink)."""
    return {
        "data": [
            {
                "type": "heatmap",
                "z": np.asarray(image).tolist(),
                "zmin": 0,
                "zmax": 1,
                "colorscale": "Greys",
                "showscale": False,
                "hovertemplate": "%{z:.2f}<extra></extra>",
            }
        ],
        "layout": {
            **LAYOUT,
            "title": {"text": title, "font": {"size": 14}},
            "height": height,
            "xaxis": {"visible": False},
            "yaxis": {"visible": False, "autorange": "reversed", "scaleanchor": "x"},
        },
    }


def class_bars(probs: np.ndarray, highlight: int, title: str) -> dict[str, Any]:
    names = list(D.DIGITS) + ([D.REJECT] if len(probs) == 11 else [])
    colours = [RED if i == highlight else GREY for i in range(len(probs))]
    return {
        "data": [{"type": "bar", "x": names, "y": [float(p) for p in probs], "marker": {"color": colours}}],
        "layout": {**LAYOUT, "title": {"text": title, "font": {"size": 14}}, "height": 240, "yaxis": {"range": [0, 1]}},
    }


def curves_figure(curves: dict[str, list[tuple[float, float]]]) -> dict[str, Any]:
    eps = [e for e, _ in next(iter(curves.values()))]
    return V.lines(
        eps,
        {k: [a for _, a in c] for k, c in curves.items()},
        title="Test accuracy under PGD (20 steps, L-inf)",
        x_title="epsilon ([0,1] pixels)",
        y_title="accuracy",
    )


@st.cache_resource(show_spinner="Retraining with a 'not a digit' class (fooling images + noise)…")
def retrained_net(seed: int = REJECT_SEED) -> tuple[D.DigitsCNN, np.ndarray]:
    """Nguyen et al.'s defense on the committed standard network: its fooling images and noise as class 10, a new
    11-class network trained with another seed. Returns it and the share of old fooling images it now rejects."""
    rejects = D.reject_training_set(digits_net("standard"), seed=seed)
    net, _ = D.train_to_end(epochs=10, seed=seed + 1, extra=rejects, n_classes=11)
    with torch.no_grad():
        rejected = (net(rejects[0]).argmax(1) == 10).float().numpy()  # (N,)
    return net, rejected


def fooling_steps(net: torch.nn.Module, digit: int, seed: int) -> Iterator[dict[str, Any]]:
    """grow_fooling as plain numbers for the page: step, image (8, 8), probabilities (K,)."""
    for p in D.grow_fooling(net, [digit], seed=seed, steps=500):
        yield {"step": p.index, "image": p.images[0, 0].numpy(), "probs": p.probs[0].numpy(), "ok": bool(p.success[0])}


def training_steps(epochs: int, eps: float, seed: int) -> Iterator[dict[str, Any]]:
    """train() as plain numbers for the page; "net" is the network as it is after this batch."""
    for p in D.train(epochs=epochs, eps=eps, seed=seed):
        yield {
            "fraction": p.fraction,
            "text": f"epoch {p.epoch}/{p.epochs}, batch {p.batch}/{p.batches}: loss {p.loss:.3f}, "
            f"batch accuracy {p.accuracy:.0%}, {p.elapsed:.0f} s",
            "net": p.net,
        }


def trained_curve(key: str) -> list[tuple[float, float]] | None:
    """The accuracy curve of the network a live training left in st.session_state[key] (finished or stopped),
    measured once and kept next to it."""
    state = st.session_state.get(key, {})
    last = state.get("last")
    if last is None:
        return None
    if state.get("curve_of") is not last:
        with st.spinner("Measuring the new network under PGD…"):
            state["curve"] = D.accuracy_curve(D.frozen(last["net"]))
        state["curve_of"] = last
    return state["curve"]


def run_live(key: str, steps: Iterator[dict[str, Any]], draw: Callable[[dict[str, Any]], None]) -> None:
    """Drive a generator: keep every step in st.session_state[key]["last"] (a Stop keeps what finished), draw it
    (throttled), and mark the run done. The page's Stop button is a plain button: its click reruns the script, which
    ends this loop at the next Streamlit call. One function, so it can move to the shared run protocol (ui/run.py)."""
    state = st.session_state.setdefault(key, {})
    state.update(last=None, done=False)
    bar = st.progress(0.0)
    throttle = V.Throttle(0.25)
    for step in steps:
        state["last"] = step
        V.checkpoint()  # a Stop ends the loop here, within one step
        if throttle.due():
            bar.progress(min(1.0, step.get("fraction", 0.0)), text=step.get("text"))
            draw(step)
    if state["last"] is not None:
        draw(state["last"])
    bar.empty()
    state["done"] = True
