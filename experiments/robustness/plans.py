"""The Robustness page's work as a generator: the plain attack and the EOT one, each part kept as it finishes.
No Streamlit here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

from PIL import Image

from attacks import DEFAULT_CONFIDENCE, Attack, Step
from attacks.runner import AttackResult, attack_targets, verify
from experiments.robustness.presets import PLAIN_CONFIDENCE
from experiments.robustness.robustness import EOT, evaluate_robustness
from models import Classifier

OnStep = Callable[[Step], None]


def judged_plainly(model: Classifier, outcome: AttackResult) -> AttackResult:
    """The outcome with its verdict on the plain model by the plain rule (PLAIN_CONFIDENCE), whatever threshold
    stopped the attack: an EOT image whose plain top class is the target fooled the plain model."""
    verdict = verify(
        model,
        outcome.original,
        outcome.adversarial,
        source=outcome.source,
        target=outcome.target,
        confidence=PLAIN_CONFIDENCE,
    )
    return dataclasses.replace(outcome, verdict=verdict, confidence=PLAIN_CONFIDENCE)


def robustness_parts(
    model: Classifier,
    original: Image.Image,
    target: int,
    plain_attack: Attack,
    eot_attack: Attack | None,
    *,
    samples: int,
    eot_confidence: float,
    kept: dict[str, Any],
    on_step: Callable[[str, Step], None] | None = None,
) -> Iterator[str]:
    """The plain attack and its transforms, then (with `eot_attack`) the EOT attack and its transforms. kept gets
    "outcomes" and "reports" (None where the attack missed the target, so there is nothing to transform) as each
    part finishes, and "stage", the part under way. Yields the name of each finished part (attack and transforms)."""
    kept.setdefault("outcomes", {})
    kept.setdefault("reports", {})
    # The plain attack stops at the project's one default confidence (a convincing image); the EOT
    # attack stops when its fixed-view estimate of the expectation reaches eot_confidence (fresh random views would
    # let it stop on a lucky draw). Both verdicts are then the plain model's by the plain rule (judged_plainly).
    parts: list[tuple[str, Any, Any, Attack, float]] = [("plain", None, None, plain_attack, DEFAULT_CONFIDENCE)]
    if eot_attack is not None:
        attacked = EOT(model, samples=samples, seed=0)
        judge = EOT(model, samples=samples, seed=1, fixed=True)
        parts.append(("EOT", attacked, judge, eot_attack, eot_confidence))
    for what, attacked, judge, attack, confidence in parts:
        _stage(kept, f"the {what} attack")
        label = "plain attack" if what == "plain" else f"EOT attack ({samples}/step)"
        step_cb = None if on_step is None else (lambda step, label=label: on_step(label, step))
        (outcome,) = attack_targets(
            model, original, attack, [target], attacked=attacked, judge=judge, confidence=confidence, on_step=step_cb
        )
        outcome = judged_plainly(model, outcome)
        kept["outcomes"][what] = outcome
        kept["reports"][what] = None
        if outcome.success:
            _stage(kept, f"the transformations of the {what} result")
            kept["reports"][what] = evaluate_robustness(
                model, original, outcome.adversarial, adversarial_class=target, keep_images=True
            )
        yield what
    kept.pop("stopped", None)


def _stage(kept: dict[str, Any], stage: str) -> None:
    """The part under way, and where a Stop now would leave the run."""
    outcomes, reports = kept["outcomes"], kept["reports"]
    done = " and ".join(
        f"the {w} attack" + (" with its transformations" if reports.get(w) is not None else "") for w in outcomes
    )
    kept["stage"] = stage
    kept["stopped"] = f"Stopped during {stage}. " + (f"Shown below: {done}." if done else "Nothing had finished.")
