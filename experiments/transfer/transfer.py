"""Transfer: does an adversarial image made on one model fool the others?

Seed 004 sec. 3.1 (Robinson & Graham): images relabelled on GoogLeNet "do not transfer over" to AlexNet. Seed 003
(universal perturbations) and the transfer literature (Papernot et al. 2016, arXiv:1605.07277; Liu et al. 2017,
arXiv:1611.02770) find that untargeted perturbations with a larger budget often do, and that attacking an
ensemble and input diversity (Xie et al. 2019, arXiv:1803.06978) make them transfer more. This module runs one
attack on a source model (or an ensemble), saves the 8-bit image, and classifies that image with every
evaluation model, each at its own input size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from attacks import DEFAULT_CONFIDENCE, Attack, AttackError, Param, Step
from attacks.runner import AttackResult, attack_targets
from experiments.common import classify
from models import Classifier, load_model, pil_to_tensor
from models.wrappers import DiverseInput, MeanLogitEnsemble

ModelLoader = Callable[[str], Classifier]


@dataclass
class EvalRow:
    """What one evaluation model makes of the clean and of the adversarial image (resized to its input size)."""

    model: str
    input_size: int
    clean_index: int
    clean_label: str
    index: int
    label: str
    probability: float
    p_target: float | None
    p_source: float  # of the attack's source class (for an ensemble: the ensemble's class, maybe not this row's)
    p_source_clean: float
    p_clean_class: float  # of this model's own clean class, on the adversarial image (what `fooled` compares with)
    fooled: bool  # by fooled_rule: targeted, the top class is the target; untargeted, it is not this model's own
    # clean label (the reference is per row: each model's own answer on the clean image, not the attacked model's)
    is_source: bool  # this model was attacked (white-box), so the row is not a transfer
    #: untargeted and fooled by the rule, but the new label is the ATTACKED model's clean label: this model now
    #: agrees with the attacked model on the clean photo (tiger cat vs Egyptian cat), which a class reads as "right"
    took_source_label: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "input_size": self.input_size,
            "clean": {"index": self.clean_index, "label": self.clean_label},
            "predicted": {"index": self.index, "label": self.label, "probability": self.probability},
            "p_target": self.p_target,
            "p_source": self.p_source,
            "p_source_clean": self.p_source_clean,
            "p_clean_class": self.p_clean_class,
            "fooled": self.fooled,
            "took_source_label": self.took_source_label,
            "attacked": self.is_source,
        }


@dataclass
class TransferResult:
    """One attack on the source model(s) and its evaluation by every evaluation model."""

    source_models: list[str]
    diversity: float
    outcome: AttackResult
    rows: list[EvalRow]
    categories: tuple[str, ...] = field(repr=False)

    @property
    def source_name(self) -> str:
        name = " + ".join(self.source_models)
        return f"{name} (input diversity {self.diversity:g})" if self.diversity else name

    @property
    def fooled_rule(self) -> str:
        """What `fooled` means in every row of this result, in words a page or the CLI prints beside it."""
        return fooled_rule(self.outcome.target, self.categories)

    @property
    def transfer_rate(self) -> float | None:
        """Fraction of the models that were not attacked which are fooled; None when every model was attacked."""
        others = [r for r in self.rows if not r.is_source]
        return sum(r.fooled for r in others) / len(others) if others else None

    def to_json(self) -> dict[str, Any]:
        return {
            "source_models": self.source_models,
            "input_diversity": self.diversity,
            "attack": self.outcome.to_json(),
            "fooled_rule": self.fooled_rule,
            "evaluations": [r.to_json() for r in self.rows],
            "transfer_rate": self.transfer_rate,
        }


def fooled_rule(target: int | None, categories: Sequence[str]) -> str:
    """The reference each row's `fooled` is judged against (see EvalRow.fooled)."""
    if target is not None:
        return f"top class = the target ({categories[target]})"
    return "top class ≠ this model's own label of the clean image"


def evaluate_transfer(
    original: Image.Image,
    adversarial: Image.Image,
    *,
    source: int,
    target: int | None,
    models: Sequence[Classifier],
    attacked: Sequence[str] = (),
) -> list[EvalRow]:
    """Classify the clean and the adversarial 8-bit image with each model, each resized to its own input size.

    Both images go through the same resize, so a difference between them is the perturbation's doing. `source` is
    the attacked model's clean class; `fooled` follows fooled_rule, and an untargeted row whose new label is
    `source` is flagged (took_source_label).
    """
    rows = []
    for m in models:
        clean, adv = classify(m, [original, adversarial])  # (K,) each
        top, clean_top = int(adv.argmax()), int(clean.argmax())
        fooled = top == target if target is not None else top != clean_top
        took_source_label = target is None and fooled and top == source
        rows.append(
            EvalRow(
                model=m.name,
                input_size=m.input_size,
                clean_index=clean_top,
                clean_label=m.categories[clean_top],
                index=top,
                label=m.categories[top],
                probability=float(adv[top]),
                p_target=None if target is None else float(adv[target]),
                p_source=float(adv[source]),
                p_source_clean=float(clean[source]),
                p_clean_class=float(adv[clean_top]),
                fooled=bool(fooled),
                is_source=m.name in attacked,
                took_source_label=bool(took_source_label),
            )
        )
    return rows


def attacked_model(members: Sequence[Classifier]) -> Classifier | MeanLogitEnsemble:
    """The model the attack is judged on: the one source model, or the ensemble (mean logits) of several."""
    if not members:
        raise AttackError("choose at least one source model")
    return members[0] if len(members) == 1 else MeanLogitEnsemble(members)


def source_class(image: Image.Image, members: Sequence[Classifier]) -> int:
    """The class a transfer run starts from, before running it: the attacked model's (or the ensemble's) top class
    on `image` preprocessed for the first member - the same input and model that attack_targets asks in run_transfer,
    so a page can refuse a target equal to it before Run."""
    model = attacked_model(members)
    x0 = pil_to_tensor(members[0].preprocess(image)).to(model.device)  # (1, 3, H, W)
    with torch.no_grad():
        return int(model.probabilities(x0)[0].argmax())


def run_transfer(
    image: Image.Image,
    *,
    source_models: Sequence[str],
    eval_models: Sequence[str],
    attack: Attack,
    target: int | None,
    diversity: float = 0.0,
    diversity_samples: int = 1,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
    on_step: Callable[[Step], None] | None = None,
    loader: ModelLoader = load_model,
) -> TransferResult:
    """Attack `image` (any size; preprocessed for the first source model) on the source model, or on the ensemble
    of all `source_models`, optionally through input diversity (probability `diversity` per copy), then evaluate
    the saved 8-bit image on every model of `eval_models`.

    To keep going after the first success (larger budgets and extra steps are what make untargeted perturbations
    transfer), build the attack with early_stop=False. Success (and early stopping) is judged by the plain source
    model(s) on the 8-bit image, never through the input-diversity wrapper.
    """
    if not source_models:
        raise AttackError("choose at least one source model")
    if not eval_models:
        raise AttackError("choose at least one evaluation model")
    diversity = Param("input diversity", 0.0, 0.0, 1.0).validate(diversity)
    diversity_samples = Param("diversity samples", 1, 1, 64, integer=True).validate(diversity_samples)
    members = [loader(n) for n in source_models]
    evaluators = [loader(n) for n in eval_models]
    plain = attacked_model(members)
    attacked = DiverseInput(plain, prob=diversity, samples=diversity_samples, seed=seed) if diversity else plain
    original = members[0].preprocess(image)
    (outcome,) = attack_targets(
        plain,  # type: ignore[arg-type]
        original,
        attack,
        [target],
        attacked=attacked,
        confidence=confidence,
        seed=seed,
        on_step=on_step,
    )
    rows = evaluate_transfer(
        original,
        outcome.adversarial,
        source=outcome.source,
        target=target,
        models=evaluators,
        attacked=list(source_models),
    )
    return TransferResult(list(source_models), diversity, outcome, rows, members[0].categories)


def matrix(results: Sequence[TransferResult], value: str = "fooled") -> tuple[list[str], list[str], list[list[Any]]]:
    """(row names, column names, values) for a heatmap: one row per source, one column per evaluation model.

    value: 'fooled' (bool), 'p_target', 'p_source', or 'label'.
    """
    if value not in ("fooled", "p_target", "p_source", "label"):
        raise AttackError(f"unknown matrix value {value!r}")
    cols: list[str] = []
    for r in results:
        cols.extend(e.model for e in r.rows if e.model not in cols)
    names = [r.source_name for r in results]
    cells = []
    for r in results:
        by_model = {e.model: e for e in r.rows}
        cells.append([getattr(by_model[c], value) if c in by_model else None for c in cols])
    return names, cols, cells
