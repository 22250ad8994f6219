"""One stored (image, target) row of a sweep made visible again: the study keeps numbers, not images, so the
Susceptibility page recomputes a clicked pair's original, adversarial and amplified difference on demand.

The attack is the study's own (Study.from_params: same attack, parameters, cap, confidence and seed) run through
attacks.runner.attack_targets, the one way to attack an image; the verdict is the plain model's on the saved 8-bit
image. The row was computed in a batch of neighbouring pairs, so the recomputed distortion can differ from the stored
one in the last digits; the page shows both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from torch import nn

from attacks.runner import attack_targets
from experiments.lab.steps import difference_image
from experiments.study.sweep import Study
from images.imagesets import ImageItem, ImageSet, ImageSetError, load_input, open_image_set

GAIN = 10.0  # the amplification of the difference image, as on the other pages


@dataclass(frozen=True)
class Example:
    """A recomputed pair: three 8-bit images and the verdict on the adversarial one."""

    original: Image.Image
    adversarial: Image.Image
    difference: Image.Image
    success: bool
    final_class: int
    p_target: float
    rms: float
    iterations: int


def _item(image_set: ImageSet, image_id: str) -> ImageItem:
    item = next((i for i in image_set.items if i.id == image_id), None)
    if item is None:
        raise ImageSetError(f"image {image_id!r} is not in the image set {image_set.name!r} any more")
    return item


def study_image(image_set_name: str, image_id: str) -> Image.Image:
    """An image of a study by its stored id (sample id, or path relative to the folder), for thumbnails."""
    image_set = open_image_set(image_set_name)
    return image_set.load(_item(image_set, image_id))


def recompute(model: nn.Module, params: dict[str, Any], image_id: str, target: int) -> Example:
    """Run the study's attack again on one stored pair and return what it looked like."""
    study = Study.from_params(params)
    image_set = open_image_set(study.image_set)
    item = _item(image_set, image_id)
    original = Image.fromarray(load_input(image_set, item, model))  # the 8-bit model input the sweep attacked
    [result] = attack_targets(
        model,
        original,
        study.make_attack(),
        [target],
        confidence=study.confidence,
        seed=study.seed,
        seed_keys=(image_id,),  # the sweep's seed for this pair (experiments.study.sweep.run_unit)
    )
    verdict = result.verdict
    return Example(
        original=original,
        adversarial=result.adversarial,
        difference=difference_image(np.asarray(original), np.asarray(result.adversarial), GAIN),
        success=verdict.success and verdict.rms_distortion <= study.max_rms,
        final_class=verdict.index,
        p_target=float(verdict.target_probability or 0.0),
        rms=verdict.rms_distortion,
        iterations=result.iterations,
    )
