"""The experiment pages' presets and defaults: named attack settings, default classes, option titles.

Plain data (no Streamlit, no torch), so the pages, the CLI and the tests read the same values.
"""

from __future__ import annotations

from typing import Any

from experiments.fooling.synthesis import DEFAULT_STEPS
from models import class_index

# --------------------------------------------------------------------------------------------------- transfer

TRANSFER_PRESETS: dict[str, dict[str, Any]] = {
    "relabel": {
        "title": "Relabel toward a class (the paper)",
        "attack": "relabel",
        "params": {},
        "targeted": True,
        "full_budget": False,
    },
    "pgd": {
        "title": "Untargeted PGD, larger budget",
        "attack": "pgd",
        "params": {"eps": 8.0, "step_size": 1.0, "steps": 20},
        "targeted": False,
        "full_budget": True,
    },
    "custom": {"title": "Custom attack", "attack": None, "params": {}, "targeted": None, "full_budget": False},
}
#: The classic comparison: (matrix label, attack, parameters, full budget), each from every offline model.
COMPARE_RUNS: tuple[tuple[str, str, dict[str, float], bool], ...] = (
    ("relabel", "relabel", {}, False),
    ("PGD eps 8", "pgd", {"eps": 8.0, "step_size": 1.0, "steps": 20}, True),
)
RELABEL_TARGET = "umbrella"  # the classic comparison's relabel target when the page's attack is untargeted
MATRIX_ROWS = 12  # runs kept in the transfer matrix

# ------------------------------------------------------------------------------------------------- robustness

#: The verdict on the plain model, for the plain attack and the EOT image alike: the target is the top class.
#: (The EOT confidence only decides when the EOT attack stops, on its averaged, randomised model.)
PLAIN_CONFIDENCE = 0.0
ROBUSTNESS_DEFAULTS: dict[str, Any] = {"eot": True, "samples": 8, "conf": 0.5, "rms": 0.05}
EOT_RELABEL_MIN = {"step_size": 1.0, "steps": 300}  # relabel's paper steps are too small to survive transforms


def eot_params(attack: str, params: dict[str, float], rms_cap: float) -> dict[str, float]:
    """The EOT attack's parameters: the plain ones with the EOT RMS cap, and relabel given room to grow."""
    out = dict(params)
    if "max_rms" in out:
        out["max_rms"] = rms_cap
    if attack == "relabel":
        out["step_size"] = max(float(params["step_size"]), EOT_RELABEL_MIN["step_size"])
        out["steps"] = max(int(params["steps"]), int(EOT_RELABEL_MIN["steps"]))
    return out


# -------------------------------------------------------------------------------------------- fooling images

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
