"""experiments.plans: the pages' work as generators, on the tiny classifier (no Streamlit, milliseconds)."""

from __future__ import annotations

import dataclasses

import torch
from tinynet import TinyClassifier

from attacks import make_attack
from attacks.runner import attack_targets, verify
from experiments import plans
from models import pil_to_tensor, tensor_to_pil


def test_a_verdict_made_with_a_higher_confidence_is_judged_again_by_the_plain_rule() -> None:
    """Bug 3: an image whose plain top class is the target fooled the plain model, whatever threshold stopped the
    attack that made it (the Robustness page's EOT confidence)."""
    model = TinyClassifier()
    g = torch.Generator().manual_seed(3)
    original = tensor_to_pil(torch.randint(0, 256, (1, 3, 16, 16), generator=g).float() / 255)
    target = int(model.probabilities(pil_to_tensor(original))[0].argsort()[-2])  # the runner-up: a few steps away
    attack = make_attack("bim", eps=16, step_size=1, steps=50)
    (outcome,) = attack_targets(model, original, attack, [target], confidence=0)
    p_target = outcome.verdict.target_probability
    assert outcome.verdict.success and p_target is not None and p_target < 0.9999
    strict = dataclasses.replace(
        outcome,
        verdict=verify(model, original, outcome.adversarial, source=outcome.source, target=target, confidence=0.9999),
    )
    assert not strict.success  # how the page judged an EOT image before the fix
    judged = plans.judged_plainly(model, strict)
    assert judged.success and judged.verdict.index == target


def test_robustness_parts_keep_each_part_as_it_finishes() -> None:
    model = TinyClassifier()
    g = torch.Generator().manual_seed(3)
    original = tensor_to_pil(torch.randint(0, 256, (1, 3, 16, 16), generator=g).float() / 255)
    target = int(model.probabilities(pil_to_tensor(original))[0].argsort()[-2])
    kept: dict = {}
    attack = make_attack("bim", eps=16, step_size=1, steps=50)
    parts = plans.robustness_parts(model, original, target, attack, None, samples=2, eot_confidence=0.5, kept=kept)
    assert next(parts) == "plain" and kept["outcomes"]["plain"].success and kept["reports"]["plain"] is not None
    assert kept["stopped"] == "Stopped during the transformations of the plain result. Shown below: the plain attack."
    assert next(parts, None) is None and "stopped" not in kept
