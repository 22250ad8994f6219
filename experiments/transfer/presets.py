"""The Transfer page's presets: named attack settings, the classic comparison and the matrix size. Plain data."""

from __future__ import annotations

from typing import Any

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
