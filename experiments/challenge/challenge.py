"""Scoring a challenge entry on the server: the saved 8-bit PNG, the plain model, the challenge's own original.

Why recompute instead of taking the run's verdict: the board must hold what the image *is*, not what a session says
about it. The PNG is decoded afresh, compared with the challenge's stored original (not the session's copy), and
classified by the registered model with no defense or randomness, exactly as attacks.runner.verify does everywhere.
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image, UnidentifiedImageError

from attacks import ATTACKS
from attacks.queries import BlackBoxAttack
from attacks.runner import verify
from experiments.challenge.store import Challenge, ChallengeError, Score
from models import Classifier

#: What each "allowed" rule lets a student use (registry names, in the registry's order).
RULE_TITLES = {
    "any": "any attack",
    "relabel": "Relabel only (the paper's attack)",
    "blackbox": "black-box attacks only (no gradients)",
}


def allowed_attacks(rule: str) -> list[str]:
    """The attacks a challenge's rule admits."""
    if rule == "relabel":
        return ["relabel"]
    if rule == "blackbox":
        return [name for name, cls in ATTACKS.items() if issubclass(cls, BlackBoxAttack)]
    return list(ATTACKS)


def budget_params(challenge: Challenge, attack: str) -> dict[str, float]:
    """The attack's own limit set to the challenge's budget, where it has one of the budget's kind: Relabel's
    max_rms for an RMS budget, eps in 1/255 for an L-inf one. Other attacks keep their values (and are scored
    over the budget when they exceed it)."""
    out: dict[str, float] = {}
    for p in ATTACKS[attack].params:
        if challenge.budget_kind == "rms" and p.name == "max_rms" and p.low <= challenge.budget <= p.high:
            out[p.name] = float(challenge.budget)
        if challenge.budget_kind == "linf" and p.name == "eps" and p.unit == "1/255":
            out[p.name] = float(challenge.budget)
    return out


def budget_text(challenge: Challenge) -> str:
    """The budget as a sentence part: "RMS distortion ≤ 0.010" or "no pixel changed by more than 8/255"."""
    if challenge.budget_kind == "rms":
        return f"RMS distortion ≤ {challenge.budget:.4g}"
    return f"no pixel changed by more than {challenge.budget:g}/255"


def decode_png(data: bytes, size: tuple[int, int]) -> Image.Image:
    """The submitted image as 8-bit RGB, refused unless it is a PNG of the challenge image's size."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format != "PNG":
                raise ChallengeError(f"a submission must be a PNG, not {im.format}")
            image = im.convert("RGB")
    except (UnidentifiedImageError, OSError) as err:
        raise ChallengeError(f"the submitted image cannot be read ({err})") from None
    if image.size != size:
        raise ChallengeError(
            f"the submitted image is {image.size[0]}×{image.size[1]}, the challenge's {size[0]}×{size[1]}"
        )
    return image


def score(
    challenge: Challenge,
    model: Classifier,
    png: bytes,
    *,
    attack: str,
    params: dict[str, Any] | None = None,
    steps: int = 0,
    queries: int | None = None,
    seconds: float = 0.0,
) -> Score:
    """Verify a submitted PNG against the challenge: fooled by the plain model, and within its budget."""
    if attack not in allowed_attacks(challenge.allowed):
        raise ChallengeError(f"{attack} is not allowed in this challenge ({RULE_TITLES[challenge.allowed]})")
    with Image.open(io.BytesIO(challenge.image_png)) as im:
        original = im.convert("RGB")
    adversarial = decode_png(png, original.size)
    verdict = verify(
        model, original, adversarial, source=challenge.source, target=challenge.target, confidence=challenge.confidence
    )
    if challenge.budget_kind == "rms":
        within = verdict.rms_distortion <= challenge.budget + 1e-9
    else:
        within = verdict.max_change_255 <= challenge.budget
    return Score(
        success=verdict.success and within,
        fooled=verdict.success,
        within_budget=within,
        label=verdict.label,
        probability=verdict.probability,
        rms=verdict.rms_distortion,
        linf_255=verdict.max_change_255,
        png=png,
        attack=attack,
        params=dict(params or {}),
        steps=int(steps),
        queries=queries,
        seconds=float(seconds),
    )
