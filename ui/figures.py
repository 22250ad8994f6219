"""Plotly figures of every page, built as plain dicts, and the row bookkeeping that keeps the bars steady.

Why dicts and not `plotly.graph_objects`: a validated go.Figure costs ~10 ms to build, a dict ~2 ms, and the live
view redraws several times a second inside the time budget of the attack. No Streamlit here, so it is unit-tested.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from experiments.explainers.boundary import BoundaryAttack, Regions

SOURCE_COLOUR = "#1f6fb4"  # the class the image had: blue
TARGET_COLOUR = "#d62728"  # the class the attack wants: red
OTHER_COLOUR = "#a3acb9"  # every other class: grey
RMS_COLOUR = "#2a9d3c"  # distortion: green, on its own axis
FONT = {"size": 15}  # readable from the back of a classroom
MARGIN = {"l": 10, "r": 10, "t": 40, "b": 30}


class BarRows:
    """The classes shown as bars: source and target pinned on top, other rows replaced in place, never reordered.

    Why: sorting the bars by probability on every redraw makes them jump; a class that rises into the top is put
    in the slot of the weakest other row instead, so the eye can follow each bar through the run.
    """

    def __init__(self, source: int, target: int | None, n_rows: int = 8) -> None:
        self.pinned = [source] if target is None else [source, target]
        self.others: list[int] = []
        self.n_others = max(0, n_rows - len(self.pinned))

    @property
    def rows(self) -> list[int]:
        return self.pinned + self.others

    def update(self, probs: np.ndarray) -> list[int]:
        """Admit classes of the current top that outshine the weakest other row; (K,) probabilities -> rows."""
        order = np.argsort(-probs)[: self.n_others + len(self.pinned)]
        for cls in (int(c) for c in order):
            if cls in self.pinned or cls in self.others:
                continue
            if len(self.others) < self.n_others:
                self.others.append(cls)
                continue
            weakest = min(range(len(self.others)), key=lambda i: probs[self.others[i]])
            if probs[cls] > probs[self.others[weakest]]:
                self.others[weakest] = cls
        return self.rows


def row_labels(rows: Sequence[int], categories: Sequence[str], source: int, target: int | None) -> list[str]:
    """Tick labels; the pinned rows say what they are, and every label is unique (two ImageNet names repeat)."""
    labels = []
    for cls in rows:
        name = categories[cls]
        if cls == source:
            name += " · source"
        elif cls == target:
            name += " · target"
        if name in labels or categories.count(categories[cls]) > 1:
            name += f" #{cls}"
        labels.append(name)
    return labels


def probability_bars(
    rows: Sequence[int],
    probs: Sequence[float],
    labels: Sequence[str],
    *,
    source: int,
    target: int | None,
    title: str = "Class probabilities",
    height: int = 340,
) -> dict[str, Any]:
    """Horizontal bars on a fixed 0..1 axis, rows in the given order (top to bottom), source/target coloured."""
    colours = [SOURCE_COLOUR if c == source else TARGET_COLOUR if c == target else OTHER_COLOUR for c in rows]
    values = [float(p) for p in probs]
    return {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "x": values,
                "y": list(labels),
                "marker": {"color": colours},
                "text": [f"{p:.1%}" for p in values],
                "textposition": "outside",
                "cliponaxis": False,
                "hovertemplate": "%{y}: %{x:.2%}<extra></extra>",
            }
        ],
        "layout": {
            "title": {"text": title},
            "height": height,
            "font": FONT,
            "margin": {"l": 10, "r": 60, "t": 40, "b": 30},
            "xaxis": {"range": [0, 1], "fixedrange": True, "tickformat": ".0%", "title": {"text": "probability"}},
            "yaxis": {
                "autorange": "reversed",
                "type": "category",
                "fixedrange": True,
                "automargin": True,
                "tickfont": {"size": 15},
            },
            "showlegend": False,
            "bargap": 0.25,
        },
    }


def _decimate(n: int, keep: Sequence[int], max_points: int) -> list[int]:
    """Indices 0..n-1 thinned to about max_points, always keeping the last one and the ones in `keep`."""
    if n <= max_points:
        return list(range(n))
    idx = set(np.linspace(0, n - 1, max_points).round().astype(int).tolist())
    idx.update(k for k in keep if 0 <= k < n)
    idx.add(n - 1)
    return sorted(idx)


def history_lines(
    steps: Sequence[int],
    p_source: Sequence[float],
    p_target: Sequence[float] | None,
    rms: Sequence[float],
    *,
    source_label: str,
    target_label: str | None,
    flip_step: int | None,
    rms_cap: float | None = None,
    marker: int | None = None,
    height: int = 340,
    max_points: int = 400,
) -> dict[str, Any]:
    """Source and target probability (left axis, 0..1) and RMS distortion (right axis) per step.

    The step where the label flipped gets a vertical line; `marker` (the replay position) another. Long runs are
    thinned to `max_points` so a redraw stays cheap however many steps were taken.
    """
    keep = [i for i, s in enumerate(steps) if s in (flip_step, marker)]
    idx = _decimate(len(steps), keep, max_points)
    xs = [int(steps[i]) for i in idx]
    traces: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "lines",
            "name": f"p({source_label})",
            "x": xs,
            "y": [float(p_source[i]) for i in idx],
            "line": {"color": SOURCE_COLOUR, "width": 3},
        },
    ]
    if p_target is not None and target_label is not None:
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": f"p({target_label})",
                "x": xs,
                "y": [float(p_target[i]) for i in idx],
                "line": {"color": TARGET_COLOUR, "width": 3},
            }
        )
    traces.append(
        {
            "type": "scatter",
            "mode": "lines",
            "name": "RMS distortion",
            "x": xs,
            "yaxis": "y2",
            "y": [float(rms[i]) for i in idx],
            "line": {"color": RMS_COLOUR, "width": 2, "dash": "dot"},
        }
    )
    top_rms = max([float(r) for r in rms] + [rms_cap or 0.0, 1e-3]) * 1.15
    shapes: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    last = max(xs[-1] if xs else 1, 1)
    if flip_step is not None:
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": flip_step,
                "x1": flip_step,
                "y0": 0,
                "y1": 1,
                "line": {"color": TARGET_COLOUR, "width": 2, "dash": "dash"},
            }
        )
        annotations.append(
            {
                "x": flip_step,
                "y": 1.0,
                "xref": "x",
                "yref": "paper",
                "showarrow": False,
                # On the side of the line with room: right of it in the left half, so an early flip is not cut.
                "text": f" flipped at step {flip_step}" if flip_step < last / 2 else f"flipped at step {flip_step} ",
                "xanchor": "left" if flip_step < last / 2 else "right",
                "yanchor": "bottom",
                "font": {"size": 13},
            }
        )
    if marker is not None:
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": marker,
                "x1": marker,
                "y0": 0,
                "y1": 1,
                "line": {"color": "#555", "width": 1},
            }
        )
    if rms_cap is not None:
        shapes.append(
            {
                "type": "line",
                "xref": "paper",
                "yref": "y2",
                "x0": 0,
                "x1": 1,
                "y0": rms_cap,
                "y1": rms_cap,
                "line": {"color": RMS_COLOUR, "width": 1, "dash": "dash"},
            }
        )
    return {
        "data": traces,
        "layout": {
            "title": {"text": "Probability and distortion per step"},
            "height": height,
            "font": FONT,
            "margin": {"l": 10, "r": 10, "t": 40, "b": 30},
            "xaxis": {"title": {"text": "step"}, "range": [0, last], "rangemode": "tozero"},
            "yaxis": {"range": [0, 1], "tickformat": ".0%", "title": {"text": "probability"}, "fixedrange": True},
            "yaxis2": {
                "range": [0, top_rms],
                "overlaying": "y",
                "side": "right",
                "showgrid": False,
                "title": {"text": "RMS"},
                "fixedrange": True,
                "tickformat": ".3f",
            },
            "legend": {"orientation": "h", "y": -0.22, "x": 0},
            "shapes": shapes,
            "annotations": annotations,
        },
    }


def bars(
    probs: np.ndarray,
    categories: Sequence[str],
    *,
    source: int | None,
    target: int | None,
    title: str,
    n_rows: int = 6,
    rows: BarRows | None = None,
) -> dict[str, Any]:
    """The Attack Lab's probability bars: target (and source) pinned, then the strongest other classes."""
    if source is None or source == target:
        source = next(int(c) for c in np.argsort(-probs) if int(c) != target)  # the strongest other class
    keeper = rows or BarRows(source, target, n_rows)
    order = keeper.update(probs)
    src = keeper.pinned[0]
    labels = row_labels(order, categories, src, target)
    return probability_bars(
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
            "cliponaxis": False,  # a series at the range's edge (p = 0 everywhere) keeps its whole markers
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
        # A little room beyond the range, so a series lying on its edge (p = 0 everywhere) is drawn above the axis
        # line, not hidden under it.
        pad = 0.04 * (y_range[1] - y_range[0])
        yaxis.update({"range": [y_range[0] - pad, y_range[1] + pad], "tickformat": ".0%", "zeroline": False})
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


#: Width of a bar that stands for 0, so a series that is 0 everywhere (the plain attack) is still seen in its colour.
ZERO_STUB = 0.008


def still_fooled_bars(counts: dict[str, list[tuple[str, int, int]]], colours: dict[str, str]) -> dict[str, Any]:
    """Per transform, the fraction of its strengths at which each image stays fooled: horizontal grouped bars, so
    every transform's name is read in full. counts: series name -> [(transform title, still fooled, tried)]."""
    data = []
    names: list[str] = []
    for what, rows in counts.items():
        names = [title for title, _, _ in rows]
        data.append(
            {
                "type": "bar",
                "orientation": "h",
                "name": what,
                "y": names,
                # A series at 0 would be no bar at all: a stub of ZERO_STUB marks it, its text says 0/n.
                "x": [max(ok / total, ZERO_STUB) for _, ok, total in rows],
                "text": [f"{ok}/{total}" for _, ok, total in rows],
                "hovertemplate": "%{y}: %{text}<extra>" + what + "</extra>",
                "textposition": "outside",
                "cliponaxis": False,
                "marker": {"color": colours.get(what, OTHER_COLOUR)},
            }
        )
    return {
        "data": data,
        "layout": {
            "title": {"text": "Still fooled (fraction of the strengths tried)"},
            "barmode": "group",
            "height": 110 + len(names) * (14 * len(counts) + 12),
            "font": FONT,
            "xaxis": {"range": [0, 1.15], "tickformat": ".0%"},
            "yaxis": {"autorange": "reversed", "automargin": True},
            "margin": {"l": 10, "r": 10, "t": 40, "b": 30},
            "legend": {"orientation": "h", "y": -0.12, "x": 0},
        },
    }


# ------------------------------------------------------------------------------------------- How it works (issue 11)


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
