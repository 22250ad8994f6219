"""The Robustness page's figure: how often each image stays fooled per transformation. Plain plotly dicts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ui.figures import FONT, OTHER_COLOUR

if TYPE_CHECKING:
    pass


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
            "margin": {"l": 10, "r": 10, "t": 64, "b": 30},
            # the key above the bars, under the title: below them it fell under a 768-px screen (a walk)
            "legend": {"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0},
        },
    }
