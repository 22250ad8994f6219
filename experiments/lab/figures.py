"""The Attack Lab's history chart (probabilities and distortion per step, decimated for long runs). Plain plotly dicts
(see ui.figures for why); no Streamlit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ui.figures import FONT, RMS_COLOUR, SOURCE_COLOUR, TARGET_COLOUR


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
    queries: Sequence[int] | None = None,
    height: int = 340,
    max_points: int = 400,
) -> dict[str, Any]:
    """Two panels on one x axis: source and target probability (top, 0..1) and RMS distortion (bottom, its own
    labelled axis, with the attack's RMS limit as a labelled line: on a shared twin axis a class read the limit as the
    90% confidence mark).

    x is the step, or for a black-box attack (`queries`: the model queries spent by each step) the queries, its real
    cost. The step where the label flipped gets a vertical line; `marker` (the replay position, a step) another. Long
    runs are thinned to `max_points` so a redraw stays cheap however many steps were taken.
    """
    keep = [i for i, s in enumerate(steps) if s in (flip_step, marker)]
    idx = _decimate(len(steps), keep, max_points)
    by_queries = queries is not None and len(queries) == len(steps) and len(steps) > 0
    at = {int(s): (int(queries[i]) if by_queries else int(s)) for i, s in enumerate(steps)}  # step -> x
    xs = [at[int(steps[i])] for i in idx]
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
            "line": {"color": RMS_COLOUR, "width": 2},
            "showlegend": False,  # the bottom panel's own axis title names it
        }
    )
    top_rms = max([float(r) for r in rms] + [rms_cap or 0.0, 1e-3]) * 1.25
    shapes: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    last = max(xs[-1] if xs else 1, 1)

    def vertical(x: int, colour: str, width: int, dash: str = "solid") -> dict[str, Any]:
        return {
            "type": "line",
            "xref": "x",
            "yref": "paper",
            "x0": x,
            "x1": x,
            "y0": 0,
            "y1": 1,
            "line": {"color": colour, "width": width, "dash": dash},
        }

    if flip_step is not None and flip_step in at:
        fx = at[flip_step]
        shapes.append(vertical(fx, TARGET_COLOUR, 2, "dash"))
        left_half = fx < last / 2
        annotations.append(
            {
                "x": fx,
                "y": 1.0,
                "xref": "x",
                "yref": "paper",
                "showarrow": False,
                # On the side of the line with room: right of it in the left half, so an early flip is not cut.
                "text": f" flipped at step {flip_step}" if left_half else f"flipped at step {flip_step} ",
                "xanchor": "left" if left_half else "right",
                "yanchor": "bottom",
                "font": {"size": 13},
            }
        )
    if marker is not None and marker in at:
        shapes.append(vertical(at[marker], "#555", 1))
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
        annotations.append(
            {
                "x": 0,
                "y": rms_cap,
                "xref": "paper",
                "yref": "y2",
                "showarrow": False,
                "text": f"RMS limit {rms_cap:g}",
                "xanchor": "left",
                "yanchor": "bottom",
                "font": {"size": 12, "color": RMS_COLOUR},
            }
        )
    return {
        "data": traces,
        "layout": {
            "title": {"text": "Probability and distortion per " + ("model query" if by_queries else "step")},
            "height": height,
            "font": FONT,
            "margin": {"l": 10, "r": 10, "t": 40, "b": 30},
            "xaxis": {
                "title": {"text": "model queries" if by_queries else "step"},
                "range": [0, last],
                "rangemode": "tozero",
                "anchor": "y2",
            },
            "yaxis": {
                "domain": [0.4, 1],
                "range": [0, 1],
                "tickformat": ".0%",
                "title": {"text": "probability"},
                "fixedrange": True,
            },
            "yaxis2": {
                "domain": [0, 0.3],
                "range": [0, top_rms],
                "title": {"text": "RMS"},
                "fixedrange": True,
                "tickformat": ".3f",
                "nticks": 3,
            },
            "legend": {"orientation": "h", "y": -0.25, "x": 0},
            "shapes": shapes,
            "annotations": annotations,
        },
    }
