"""The pages' plans (experiments/<feature>/plans.py): their work as generators, on the tiny classifier (no Streamlit,
milliseconds)."""

from __future__ import annotations

import dataclasses

import torch
from tinynet import TinyClassifier

from attacks import make_attack
from attacks.runner import attack_targets, verify
from experiments.robustness import plans as robustness_plans
from experiments.transfer import plans as transfer_plans
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
    judged = robustness_plans.judged_plainly(model, strict)
    assert judged.success and judged.verdict.index == target


def test_robustness_parts_keep_each_part_as_it_finishes() -> None:
    model = TinyClassifier()
    g = torch.Generator().manual_seed(3)
    original = tensor_to_pil(torch.randint(0, 256, (1, 3, 16, 16), generator=g).float() / 255)
    target = int(model.probabilities(pil_to_tensor(original))[0].argsort()[-2])
    kept: dict = {}
    attack = make_attack("bim", eps=16, step_size=1, steps=50)
    parts = robustness_plans.robustness_parts(
        model, original, target, attack, None, samples=2, eot_confidence=0.5, kept=kept
    )
    assert next(parts) == "plain" and kept["outcomes"]["plain"].success and kept["reports"]["plain"] is not None
    assert kept["stopped"] == "Stopped during the transformations of the plain result. Shown below: the plain attack."
    assert next(parts, None) is None and "stopped" not in kept


class _Tiny(TinyClassifier):
    """TinyClassifier with run_transfer's `preprocess` (its inputs are already 16x16 model inputs)."""

    def preprocess(self, image):  # noqa: ANN001, ANN201 - the Classifier interface
        return image


def test_the_transfer_panel_shows_the_model_the_widgets_name() -> None:
    """Issue 17 item 10: after the classic comparison from every model, the top panel showed the last row's run
    (another model than the widgets'). It shows the latest run from the widgets' source model."""
    g = torch.Generator().manual_seed(5)
    image = tensor_to_pil(torch.randint(0, 256, (1, 3, 16, 16), generator=g).float() / 255)
    models = {"tiny0": _Tiny(0), "tiny1": _Tiny(1)}
    for m in models.values():
        m.name = next(k for k, v in models.items() if v is m)
    pgd = make_attack("pgd", eps=16, step_size=4, steps=3)
    parts = [
        transfer_plans.TransferPart("untargeted", pgd, ("tiny0",), None),
        transfer_plans.TransferPart("untargeted", make_attack("fgsm", eps=8), ("tiny0",), None),
        transfer_plans.TransferPart("untargeted", pgd, ("tiny1",), None),
    ]
    for shown, want in ((("tiny0",), 1), (("tiny1",), 2), (("nobody",), 2)):
        kept: dict = {}
        history: list = []
        results = list(
            transfer_plans.transfer_runs(
                image, parts, list(models), kept=kept, history=history, loader=models.get, shown=shown
            )
        )
        assert len(history) == 3
        assert kept["last"] is results[want], (shown, kept["last"].source_models)


def test_untargeted_rows_that_take_the_attacked_models_label_are_flagged() -> None:
    """Issue 17 item 10: an untargeted row counted as fooled when the other model moved from its own clean label to
    the attacked model's clean label (a class reads it as "got it right"). The rule is stated, and that row flagged."""
    from experiments.transfer.transfer import evaluate_transfer  # noqa: PLC0415

    model = _Tiny(0)
    g = torch.Generator().manual_seed(9)
    images = [tensor_to_pil(torch.randint(0, 256, (1, 3, 16, 16), generator=g).float() / 255) for _ in range(8)]
    labels = [int(model.probabilities(pil_to_tensor(im)).argmax()) for im in images]
    a, b = next((i, j) for i in range(8) for j in range(8) if labels[i] != labels[j])
    # "adversarial" = another image this model labels differently; the attacked model's clean class = that label
    (row,) = evaluate_transfer(images[a], images[b], source=labels[b], target=None, models=[model])
    assert row.fooled and row.took_source_label and row.to_json()["took_source_label"]
    other = next(c for c in range(10) if c not in (labels[a], labels[b]))
    (row,) = evaluate_transfer(images[a], images[b], source=other, target=None, models=[model])
    assert row.fooled and not row.took_source_label
    (row,) = evaluate_transfer(images[a], images[b], source=labels[b], target=labels[b], models=[model])
    assert row.fooled and not row.took_source_label  # targeted: the target is the reference, no flag
