"""The Susceptibility page's figures, from a study's rows (experiments.study.susceptibility): the success-by-cap
curve, the per-class histograms, modify vs mimic and the class-group heatmap. Plain plotly dicts; no Streamlit.
"""

from __future__ import annotations

import collections
import math
import statistics
from collections.abc import Sequence
from typing import Any

from experiments.study import susceptibility as sus
from experiments.study.store import Row
from models import IMAGENET_CATEGORIES
from ui import figures

COLOURS = {"modify": figures.SOURCE_COLOUR, "mimic": figures.TARGET_COLOUR}


def _layout(title: str, x: str, y: str, height: int = 320, **extra: Any) -> dict[str, Any]:
    return {
        "title": {"text": title},
        "height": height,
        "font": figures.FONT,
        "margin": {"l": 10, "r": 10, "t": 50, "b": 40},
        "xaxis": {"title": {"text": x}},
        "yaxis": {"title": {"text": y}},
        "showlegend": False,
        **extra,
    }


def success_curve(rows: Sequence[Row], study_cap: float, cap: float | None = None) -> dict[str, Any]:
    """Share of pairs relabelled within each RMS cap up to the study's own (sus.caps_within), with the paper's 98.7%
    at 0.01 marked (and the cap the figures below count at, when another). A study capped below 0.01 says so in the
    title instead of drawing points it never tried."""
    caps, rates = zip(*sus.success_by_cap(rows, sus.caps_within(study_cap)), strict=True)
    ours = dict(zip(caps, rates, strict=True)).get(sus.PAPER_CAP)
    fig = figures.lines(
        caps,
        {"this study": rates},
        title="Success rate against the distortion cap",
        x_title="RMS distortion cap",
        y_title="pairs relabelled",
        y_range=(0, 1.05),
        colours={"this study": figures.SOURCE_COLOUR},
    )
    fig["data"].append(
        {
            "type": "scatter",
            "mode": "markers+text",
            "x": [sus.PAPER_CAP],
            "y": [sus.PAPER_SUCCESS],
            "text": [f"paper {sus.PAPER_SUCCESS:.1%}"],
            "textposition": "bottom right",
            "name": "paper",
            "marker": {"symbol": "star", "size": 16, "color": figures.TARGET_COLOUR},
        }
    )
    fig["layout"]["shapes"] = [
        {
            "type": "line",
            "x0": sus.PAPER_CAP,
            "x1": sus.PAPER_CAP,
            "y0": 0,
            "y1": 1.05,
            "line": {"dash": "dot", "color": figures.OTHER_COLOUR},
        }
    ]
    fig["layout"]["annotations"] = (
        [{"x": sus.PAPER_CAP, "y": ours, "text": f"here {ours:.1%}", "showarrow": True, "ax": 60, "ay": 60}]
        if ours is not None
        else [
            {
                "x": sus.PAPER_CAP,
                "y": 0.5,
                "text": f"this study stops at {study_cap:g}",
                "showarrow": False,
                "xanchor": "right",
            }
        ]
    )
    if cap is not None and cap != sus.PAPER_CAP:
        mine = sus.summary(rows, cap)["success_rate"]
        line = {"type": "line", "x0": cap, "x1": cap, "y0": 0, "y1": 1.05, "line": {"color": figures.SOURCE_COLOUR}}
        fig["layout"]["shapes"].append(line)
        note = {"x": cap, "y": mine, "text": f"counted below: {mine:.1%}", "showarrow": True, "ax": -90, "ay": -40}
        fig["layout"]["annotations"].append(note)
    return fig


def nice_step(at_least: float) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50… that is at least `at_least`: a tick every 131 classes read as noise."""
    power = 1
    while True:
        for first in (1, 2, 5):
            if first * power >= at_least:
                return first * power
        power *= 10


def histogram(rates: dict[int, sus.Rate], kind: str) -> dict[str, Any]:
    values = [v.rate for v in rates.values()]
    median = statistics.median(values)
    side = "source" if kind == "modify" else "target"
    bars = {
        "type": "histogram",
        "x": values,
        "xbins": {"start": -0.025, "end": 1.025, "size": 0.05},  # bins centred on 0%, 5%, ..., 100%
        "marker": {"color": COLOURS[kind]},
    }
    layout = _layout(f"{kind.title()} rate per {side} class", f"{kind} rate", "classes", height=280)
    layout["xaxis"].update({"range": [-0.03, 1.03], "tickformat": ".0%"})
    tallest = max(collections.Counter(round(v / 0.05) for v in values).values())  # classes in the fullest bin
    layout["yaxis"].update({"tick0": 0, "dtick": nice_step(tallest / 5)})  # whole classes, round numbers (1, 2, 5…)
    layout["shapes"] = [
        {
            "type": "line",
            "x0": median,
            "x1": median,
            "yref": "paper",
            "y0": 0,
            "y1": 1,
            "line": {"dash": "dash", "color": "black"},
        }
    ]
    layout["annotations"] = [
        {
            "x": median,
            "yref": "paper",
            "y": 1,
            "text": f"median {pct(median)}",
            "showarrow": False,
            "xanchor": "right",
            "yanchor": "bottom",
        }
    ]
    return {"data": [bars], "layout": layout}


def scatter(rows: Sequence[Row], cap: float) -> tuple[dict[str, Any], str]:
    """Seed 000's modify-vs-mimic scatter, one point per class that is both a source and a target; when no class is
    both (a random target set), one point per pair instead (RMS against steps). Returns (figure, what it shows)."""
    points = sus.modify_vs_mimic(rows, cap)
    if points:
        trace = {
            "x": [p[1] for p in points],
            "y": [p[2] for p in points],
            "customdata": [f"c:{p[0]}" for p in points],
            "text": [IMAGENET_CATEGORIES[p[0]] for p in points],
            "hovertemplate": "%{text}: modify %{x:.1%}, mimic %{y:.1%}<extra></extra>",
            "marker": {"size": 12, "color": figures.SOURCE_COLOUR},
            "cliponaxis": False,  # the many classes at 100% keep their whole markers at the plot's top edge
        }
        layout = _layout("Modify vs mimic (classes both source and target)", "modify rate", "mimic rate")
        layout["xaxis"].update({"range": [-0.02, 1.02], "tickformat": ".0%"})
        layout["yaxis"].update({"range": [-0.02, 1.02], "tickformat": ".0%"})
        return {"data": [{"type": "scatter", "mode": "markers", **trace}], "layout": layout}, "classes"
    ok = [sus.succeeded(r, cap) for r in rows]
    trace = {
        "x": [r.rms for r in rows],
        "y": [r.iterations for r in rows],
        "customdata": [f"p:{r.image_id}|{r.target}" for r in rows],
        "text": [f"{r.image_id} → {IMAGENET_CATEGORIES[r.target]}" for r in rows],
        "hovertemplate": "%{text}: RMS %{x:.4f}, %{y} steps<extra></extra>",
        "marker": {"size": 9, "color": [figures.SOURCE_COLOUR if k else figures.TARGET_COLOUR for k in ok]},
    }
    layout = _layout("Every pair: distortion and steps (red: not relabelled within the cap)", "RMS distortion", "steps")
    layout["shapes"] = [
        {
            "type": "line",
            "x0": cap,
            "x1": cap,
            "yref": "paper",
            "y0": 0,
            "y1": 1,
            "line": {"dash": "dot", "color": figures.OTHER_COLOUR},
        }
    ]
    return {"data": [{"type": "scatter", "mode": "markers", **trace}], "layout": layout}, "pairs"


def group_heatmap(sources: list[str], targets: list[str], matrix: list[list[float | None]]) -> dict[str, Any]:
    """The group matrix (rows: source groups, columns: target groups), with one invisible marker per cell so a
    click selects it."""
    text = [["" if v is None else pct(v) for v in line] for line in matrix]
    fig = figures.heatmap(sources, targets, matrix, text, title="Relabelled by WordNet group: source → target")
    # ~20 columns beside the examples: each cell too narrow for its number, so the colour and a scale carry it (the
    # number is in the hover), and every group's name is kept (Plotly would drop every other one).
    fig["data"][0] |= {"texttemplate": "", "showscale": True, "colorbar": {"tickformat": ".0%", "thickness": 12}}
    # Most groups are relabelled 95-100% of the time: on a 0-100% scale every cell was the same red. The scale
    # starts at the lowest rate's tenth (its bar says where), so the hard pairs stand out.
    rates = [v for line in matrix for v in line if v is not None]
    if rates:
        fig["data"][0]["zmin"] = min(math.floor(min(rates) * 10) / 10, 0.9)
    fig["layout"]["xaxis"].update(
        {
            "title": {"text": "target group"},
            "tickangle": -90,
            "automargin": True,
            "tickfont": {"size": 13},
            "tickmode": "array",
            "tickvals": list(targets),
        }
    )
    fig["layout"]["yaxis"]["title"]["text"] = "source group"
    fig["layout"]["yaxis"]["tickfont"] = {"size": 13}
    fig["layout"]["height"] += 120  # room for the slanted column names
    cells = [(a, b) for i, a in enumerate(sources) for j, b in enumerate(targets) if matrix[i][j] is not None]
    marker = {"size": 30, "color": "rgba(255,255,255,0.01)"}
    fig["data"].append(
        {
            "type": "scatter",
            "mode": "markers",
            "x": [b for _, b in cells],
            "y": [a for a, _ in cells],
            "customdata": [f"g:{a}|{b}" for a, b in cells],
            "hoverinfo": "none",
            "marker": marker,
        }
    )
    return fig


def pct(rate: float) -> str:
    """A rate as a percentage; one decimal unless it is exactly 0 or 1, so 99.9% never reads as 100%."""
    return f"{rate:.0%}" if rate in (0.0, 1.0) else f"{rate:.1%}"
