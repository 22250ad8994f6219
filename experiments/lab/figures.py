"""The Attack Lab's history chart (probabilities and distortion per step, decimated for long runs). Plain plotly dicts
(see ui.figures for why); no Streamlit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ui.figures import FONT, RMS_COLOUR, SOURCE_COLOUR, TARGET_COLOUR

if TYPE_CHECKING:
    pass


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
