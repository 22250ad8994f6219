"""The Fooling images page's modes, start images and default gallery. Plain data."""

from __future__ import annotations

from typing import Any

from experiments.fooling.synthesis import DEFAULT_STEPS
from models import class_index

FOOLING_MODES = {
    "grow": "Grow from noise",
    "evolve": "Black-box evolution",
    "visualize": "Visualise vs fool",
    "gallery": "Gallery",
}
INIT_TITLES = {"gaussian": "Gaussian noise", "uniform": "Uniform noise", "grey": "Flat grey"}
GALLERY_DEFAULT = ("umbrella", "goldfish", "school bus", "chain mail")


def fooling_defaults() -> dict[str, Any]:
    """Every fooling-images setting's default, by the name its widget key ends with."""
    return {
        "mode": "grow",
        "classes": [class_index(c) for c in GALLERY_DEFAULT],
        "target": class_index("umbrella"),
        "target_e": class_index("chain mail"),  # a texture class: a query-only search reaches it in half a minute
        **{"init." + m: "grey" if m in ("visualize", "evolve") else "gaussian" for m in FOOLING_MODES},
        "seed": 0,
        "conf": 0.99,
        "steps": 200,
        "step": 1.0,
        "conf_e": 0.99,
        "gens": DEFAULT_STEPS["evolution"],
        "pop": 10,
        "enc": "tile",
        "res": 16,
        "vsteps": 60,
        "jitter": 12,
        "blur": 1.0,
        "tv": 1.0,
    }
