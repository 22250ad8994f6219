"""Plotly figures of every page, built as plain dicts, and the row bookkeeping that keeps the bars steady.

Why dicts and not `plotly.graph_objects`: a validated go.Figure costs ~10 ms to build, a dict ~2 ms, and the live
view redraws several times a second inside the time budget of the attack. No Streamlit here, so it is unit-tested.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    pass

SOURCE_COLOUR = "#1678cc"  # the class the image had: blue (>= 4.5:1 on white and on black: tests/test_theme.py)
TARGET_COLOUR = "#e52223"  # the class the attack wants: red (likewise)
OTHER_COLOUR = "#a3acb9"  # every other class: grey
RMS_COLOUR = "#1e8736"  # distortion: green, on its own axis; 4.5:1 on the white and the black page (test_theme)
FONT = {"size": 15}  # readable from the back of a classroom
PRESENTER_FONT_SCALE = 1.35  # the presenter view's charts: the story readable from the back row
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


def row_labels(
    rows: Sequence[int],
    categories: Sequence[str],
    source: int,
    target: int | None,
    pin_names: tuple[str, str] = ("source", "target"),
) -> list[str]:
    """Tick labels; the pinned rows say what they are (`pin_names`: an untargeted change calls them "before" and
    "after", there is no target), and every label is unique (two ImageNet names repeat)."""
    labels = []
    for cls in rows:
        name = categories[cls]
        if cls == source:
            name += f" · {pin_names[0]}"
        elif cls == target:
            name += f" · {pin_names[1]}"
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


def bars(
    probs: np.ndarray,
    categories: Sequence[str],
    *,
    source: int | None,
    target: int | None,
    title: str,
    n_rows: int = 6,
    rows: BarRows | None = None,
    pin_names: tuple[str, str] = ("source", "target"),
) -> dict[str, Any]:
    """The Attack Lab's probability bars: target (and source) pinned, then the strongest other classes."""
    if source is None or source == target:
        source = next(int(c) for c in np.argsort(-probs) if int(c) != target)  # the strongest other class
    keeper = rows or BarRows(source, target, n_rows)
    order = keeper.update(probs)
    src = keeper.pinned[0]
    labels = row_labels(order, categories, src, target, pin_names)
    return probability_bars(
        order, [float(probs[c]) for c in order], labels, source=src, target=target, title=title, height=300
    )


#: Dash styles, in turn, of the series drawn over an earlier one (a solid line of one colour would hide it).
OVERLAP_DASHES = ("dash", "dot", "dashdot")


def _hides(ys: Sequence[float], earlier: Sequence[float], tol: float) -> tuple[bool, bool]:
    """(covers a stretch of `earlier`, lies on it everywhere): a stretch is two consecutive points within `tol`
    (a lone point for a one-point series); a crossing at one point hides nothing."""
    near = [abs(a - b) <= tol for a, b in zip(ys, earlier, strict=False)]
    stretch = near[0] if len(near) == 1 else any(a and b for a, b in zip(near, near[1:], strict=False))
    return stretch, bool(near) and all(near)


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
    """Plain line chart as a plotly dict (cheap to rebuild on every redraw).

    A series that lies on an earlier one (two controls both at 0%) would hide it, being drawn on top: it is drawn
    dashed with open markers, so the one beneath shows through, and where it lies on it at every point its legend
    entry says so ("grey (≈ noise)")."""
    values = {name: [float(v) for v in ys] for name, ys in series.items()}
    if log_y:  # compared on the drawn scale: a decade is a decade
        drawn = {n: [float(np.log10(max(v, 1e-12))) for v in ys] for n, ys in values.items()}
    else:
        drawn = values
    flat = [v for ys in drawn.values() for v in ys]
    span = y_range[1] - y_range[0] if y_range is not None and not log_y else (max(flat) - min(flat) if flat else 0)
    tol = 0.01 * (span or 1.0)  # within 1% of the axis: one line on the other at this chart's size
    traces = []
    for i, (name, ys) in enumerate(values.items()):
        line: dict[str, Any] = {"width": 3, **({"color": colours[name]} if colours and name in colours else {})}
        trace: dict[str, Any] = {
            "type": "scatter",
            "mode": "lines+markers" if len(x) < 40 else "lines",
            "name": name,
            "x": [str(v) for v in x] if categorical_x else list(x),
            "y": ys,
            "cliponaxis": False,  # a series at the range's edge (p = 0 everywhere) keeps its whole markers
            "line": line,
        }
        below = [(other, _hides(drawn[name], drawn[other], tol)) for other in list(values)[:i]]
        covered = [other for other, (stretch, _) in below if stretch]
        if covered:
            line["dash"] = OVERLAP_DASHES[(len(covered) - 1) % len(OVERLAP_DASHES)]
            trace["marker"] = {"symbol": "circle-open", "size": 10, "line": {"width": 2}}
            same = [other for other, (_, everywhere) in below if everywhere]
            if same:
                trace["name"] = f"{name} (≈ {same[0]})"
        traces.append(trace)
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
                "colorscale": [[0, "#f7f7f7"], [1, TARGET_COLOUR]],
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


def _scale_fonts(node: Any, scale: float) -> None:
    """Every font size a figure sets (the global font, an axis's ticks, the RMS-limit and flip labels) times
    `scale`, in place: scaling the global font alone left the labels that set their own size small."""
    if isinstance(node, list):
        for item in node:
            _scale_fonts(item, scale)
    elif isinstance(node, dict):
        for name, value in node.items():
            if name.endswith("font") and isinstance(value, dict) and "size" in value:
                node[name] = {**value, "size": round(value["size"] * scale)}
            else:
                _scale_fonts(value, scale)


def presented(figure: dict[str, Any], scale: float = PRESENTER_FONT_SCALE) -> dict[str, Any]:
    """The figure for the presenter view: every font `scale` times larger and the chart a little taller, on a copy,
    so a figure drawn twice does not grow twice."""
    figure = copy.deepcopy(figure)
    layout = figure.setdefault("layout", {})
    layout["font"] = {"size": FONT["size"], **layout.get("font", {})}
    _scale_fonts(layout, scale)
    # Streamlit's chart theme sizes the title, the ticks and the legend itself, so they do not follow the global
    # font: each gets the scaled size where the figure left it unset (a walk: the ticks stayed at 12 px).
    size = layout["font"]["size"]
    parts = [v for k, v in layout.items() if k.startswith(("xaxis", "yaxis")) and isinstance(v, dict)]
    for axis in parts:
        axis.setdefault("tickfont", {}).setdefault("size", size)
        if isinstance(axis.get("title"), dict):
            axis["title"].setdefault("font", {}).setdefault("size", size)
    if isinstance(layout.get("title"), dict):
        layout["title"].setdefault("font", {}).setdefault("size", size)
    layout.setdefault("legend", {}).setdefault("font", {}).setdefault("size", size)
    for trace in figure.get("data", []):  # the values written on bars and cells ("92.6%")
        _scale_fonts(trace, scale)
        if "text" in trace:
            trace.setdefault("textfont", {}).setdefault("size", round(size * 0.85))
    layout["height"] = round(layout.get("height", 340) * 1.15)
    return figure
