"""Plotly figures of the Attack Lab, built as plain dicts, and the row bookkeeping that keeps the bars steady.

Why dicts and not `plotly.graph_objects`: a validated go.Figure costs ~10 ms to build, a dict ~2 ms, and the live
view redraws several times a second inside the time budget of the attack. No Streamlit here, so it is unit-tested.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

SOURCE_COLOUR = "#1f6fb4"  # the class the image had: blue
TARGET_COLOUR = "#d62728"  # the class the attack wants: red
OTHER_COLOUR = "#a3acb9"  # every other class: grey
RMS_COLOUR = "#2a9d3c"  # distortion: green, on its own axis
FONT = {"size": 15}  # readable from the back of a classroom


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
                "text": f"flipped at step {flip_step} ",
                "xanchor": "right",
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
    last = max(xs[-1] if xs else 1, 1)
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
