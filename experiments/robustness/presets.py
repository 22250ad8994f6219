"""The Robustness page's defaults: the plain rule's confidence, EOT settings. Plain data."""

from __future__ import annotations

from typing import Any

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
