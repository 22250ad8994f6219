"""The explainers' figures: the linear-model contributions, the scale demo, the decision boundary and the
digits. Plain plotly dicts; no Streamlit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ui.figures import FONT, MARGIN, OTHER_COLOUR, RMS_COLOUR, SOURCE_COLOUR, TARGET_COLOUR

if TYPE_CHECKING:
    from experiments.explainers.boundary import BoundaryAttack, Regions


def contributions_figure(contributions: np.ndarray, score_before: float) -> dict[str, Any]:
    """Seed 001's example: one bar per input (w_i * dx_i) and the running score they add up to."""
    names = [f"x{i}" for i in range(len(contributions))]
    running = score_before + np.cumsum(contributions)  # (n,)
    return {
        "data": [
            {
                "type": "bar",
                "name": "w_i · dx_i",
                "x": names,
                "y": contributions.tolist(),
                "marker": {"color": TARGET_COLOUR},
            },
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "score W·x so far",
                "x": ["start", *names],
                "y": [score_before, *running.tolist()],
                "line": {"color": SOURCE_COLOUR, "width": 3},
            },
        ],
        "layout": {
            "font": FONT,
            "margin": MARGIN,
            "title": {"text": "Each input adds a little; together they cross 0 (p = 0.5)"},
            "height": 340,
            "xaxis": {"categoryorder": "array", "categoryarray": ["start", *names]},
            "yaxis": {"title": {"text": "score"}, "zeroline": True, "zerolinewidth": 2},
            "legend": {"orientation": "h", "y": -0.2},
        },
    }


def scale_figure(
    dims: Sequence[int], series: dict[str, Sequence[float]], *, here: tuple[int, float], eps_255: float
) -> dict[str, Any]:
    """Score change of a linear model against the number of dimensions (log-log), with the slider's n marked.
    series: "aligned", "random", "pixel" -> one value per dimension count."""
    names = {
        "aligned": ("along sign(w): grows like n", TARGET_COLOUR),
        "random": ("random signs: grows like √n", OTHER_COLOUR),
        "pixel": ("per-pixel change (what you see)", RMS_COLOUR),
    }
    data = [
        {
            "type": "scatter",
            "mode": "lines",
            "name": names[k][0],
            "x": list(dims),
            "y": list(ys),
            "line": {"color": names[k][1], "width": 3},
        }
        for k, ys in series.items()
    ]
    data.append(
        {
            "type": "scatter",
            "mode": "markers",
            "name": f"n = {here[0]:,}",
            "x": [here[0]],
            "y": [here[1]],
            "marker": {"size": 14, "color": TARGET_COLOUR, "symbol": "diamond"},
        }
    )
    layout = {
        "font": FONT,
        "margin": MARGIN,
        "title": {"text": f"Score change of a linear model, {eps_255:g}/255 per pixel"},
        "height": 360,
        "xaxis": {"title": {"text": "dimensions n"}, "type": "log"},
        "yaxis": {"title": {"text": "change"}, "type": "log", "dtick": 1},
        "legend": {"orientation": "h", "y": -0.3},
    }
    return {"data": data, "layout": layout}


def _ball(center: tuple[float, float], eps: float, norm: str) -> tuple[list[float], list[float]]:
    cx, cy = center
    if norm == "linf":
        return [cx - eps, cx + eps, cx + eps, cx - eps, cx - eps], [cy - eps, cy - eps, cy + eps, cy + eps, cy - eps]
    t = np.linspace(0, 2 * np.pi, 90)
    return (cx + eps * np.cos(t)).tolist(), (cy + eps * np.sin(t)).tolist()


def boundary_figure(
    regions: Regions,
    points: tuple[np.ndarray, np.ndarray],
    attack: BoundaryAttack,
    upto: int,
    *,
    ranges: tuple[tuple[float, float], tuple[float, float]],
    click_grid: tuple[np.ndarray, np.ndarray],
) -> dict[str, Any]:
    """Decision regions (p of class 1), the training points (N, 2) and labels (N,), the budget ball, the path up to
    step `upto` and the straight step; an invisible grid of points (`click_grid`) makes a click pick a new start."""
    xs, ys = points
    path = attack.path[: upto + 1]
    bx, by = _ball(attack.start, attack.eps, attack.norm)
    data = [
        {
            "type": "contour",
            "x": regions.xs.tolist(),
            "y": regions.ys.tolist(),
            "z": regions.z.tolist(),
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
                "marker": {"size": 5, "color": SOURCE_COLOUR if c == 0 else TARGET_COLOUR, "opacity": 0.5},
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
            "line": {"color": RMS_COLOUR, "width": 3},
            "marker": {"size": 6},
        },
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": f"one straight step ({'crosses' if attack.straight_crossed else 'does not cross'})",
            "x": [attack.start[0], attack.straight.point[0]],
            "y": [attack.start[1], attack.straight.point[1]],
            "line": {"color": "#555555", "width": 4, "dash": "dash"},
            "marker": {"symbol": ["circle", "x"], "size": [1, 14]},
        },
        {
            "type": "scatter",
            "mode": "markers",
            "name": "click to start here",
            "x": click_grid[0].ravel().tolist(),
            "y": click_grid[1].ravel().tolist(),
            "marker": {"size": 12, "opacity": 0},
            "hovertemplate": "start at (%{x:.2f}, %{y:.2f})<extra></extra>",
            "showlegend": False,
        },
    ]
    layout = {
        "font": FONT,
        "margin": MARGIN,
        "height": 520,
        "xaxis": {"range": list(ranges[0]), "title": {"text": "feature 1"}},
        "yaxis": {"range": list(ranges[1]), "title": {"text": "feature 2"}, "scaleanchor": "x"},
        "legend": {"orientation": "h", "y": -0.15},
        "clickmode": "event+select",
        "dragmode": False,
    }
    return {"data": data, "layout": layout}


def digit_image(image: np.ndarray, title: str, height: int = 260) -> dict[str, Any]:
    """An 8x8 image (8, 8) in [0,1] as a grey heatmap (0 = white, 1 = black, as the dataset draws ink)."""
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
            "font": FONT,
            "margin": MARGIN,
            "title": {"text": title, "font": {"size": 14}},
            "height": height,
            "xaxis": {"visible": False},
            "yaxis": {"visible": False, "autorange": "reversed", "scaleanchor": "x"},
        },
    }


def class_bars(probs: np.ndarray, names: Sequence[str], highlight: int, title: str) -> dict[str, Any]:
    """Every class's probability (K,), one bar each in a fixed order, the highlighted class in red."""
    colours = [TARGET_COLOUR if i == highlight else OTHER_COLOUR for i in range(len(probs))]
    return {
        "data": [{"type": "bar", "x": list(names), "y": [float(p) for p in probs], "marker": {"color": colours}}],
        "layout": {
            "font": FONT,
            "margin": MARGIN,
            "title": {"text": title, "font": {"size": 14}},
            "height": 240,
            "yaxis": {"range": [0, 1]},
        },
    }
