"""Do adversarial images survive everyday transformations? And the attack that makes them survive (EOT).

Seed 004 sec. 3.1 (Robinson & Graham): "cropping, translating and mirroring the image results in the label
reverting to the correct one". Here every transform is a pure function on the 8-bit model input (PIL in, PIL out,
same size), applied to the original and to the adversarial image alike, so each row says both what the transform
does to the adversarial label and what it does to the clean image (a transform that breaks the clean label too
proves nothing). Expectation over transformation (Athalye et al. 2018, arXiv:1707.07397) is a model wrapper
averaging over random differentiable versions of the same transforms, so every registered attack can use it.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance, ImageFilter, ImageOps
from torch import Tensor, nn

from attacks import AttackError, Param
from experiments.common import classify, resize_input
from models import Classifier
from models.wrappers import RandomTransformModel


def _mirror(im: Image.Image, strength: float, seed: int) -> Image.Image:
    return ImageOps.mirror(im)


def _shift(im: Image.Image, strength: float, seed: int) -> Image.Image:
    """Move the content `strength` pixels right and down; the uncovered border repeats the edge pixels."""
    s = int(strength)
    arr = np.asarray(im)  # (H, W, 3)
    padded = np.pad(arr, ((s, 0), (s, 0), (0, 0)), mode="edge")
    return Image.fromarray(np.ascontiguousarray(padded[: arr.shape[0], : arr.shape[1]]), "RGB")


def _crop(im: Image.Image, strength: float, seed: int) -> Image.Image:
    """Cut `strength` percent of the side off (a centred crop), then scale back up to the input size."""
    w, h = im.size
    cw, ch = round(w * (1 - strength / 100)), round(h * (1 - strength / 100))
    left, top = (w - cw) // 2, (h - ch) // 2
    return im.crop((left, top, left + cw, top + ch)).resize((w, h), Image.Resampling.BICUBIC)


def _rotate(im: Image.Image, strength: float, seed: int) -> Image.Image:
    fill = tuple(int(v) for v in np.asarray(im).reshape(-1, 3).mean(0).round())
    return im.rotate(strength, resample=Image.Resampling.BICUBIC, fillcolor=fill)


def _rescale(im: Image.Image, strength: float, seed: int) -> Image.Image:
    """Down to `strength` times the size and back up: the detail finer than the smaller image is lost."""
    w, h = im.size
    small = im.resize((max(1, round(w * strength)), max(1, round(h * strength))), Image.Resampling.BICUBIC)
    return small.resize((w, h), Image.Resampling.BICUBIC)


def jpeg(im: Image.Image, quality: float, seed: int = 0) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as out:
        return out.convert("RGB")


def _blur(im: Image.Image, strength: float, seed: int) -> Image.Image:
    return im.filter(ImageFilter.GaussianBlur(strength))


def _noise(im: Image.Image, strength: float, seed: int) -> Image.Image:
    """Add Gaussian noise of standard deviation `strength`/255 (seeded), rounded back to 8 bits."""
    rng = np.random.default_rng(seed)
    arr = np.asarray(im).astype(np.float64) + rng.normal(0.0, strength, size=(im.height, im.width, 3))
    return Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8), "RGB")


def _brightness(im: Image.Image, strength: float, seed: int) -> Image.Image:
    return ImageEnhance.Brightness(im).enhance(1 + strength / 100)


def _contrast(im: Image.Image, strength: float, seed: int) -> Image.Image:
    return ImageEnhance.Contrast(im).enhance(1 - strength / 100)


@dataclass(frozen=True)
class Transform:
    """An everyday image change at increasing strengths. apply(image, strength, seed) -> image of the same size."""

    name: str
    title: str
    unit: str
    strengths: tuple[float, ...]
    apply: Callable[[Image.Image, float, int], Image.Image] = field(repr=False)
    help: str = ""


#: Every transform by name, mildest strength first. Tests iterate over this dict.
TRANSFORMS: dict[str, Transform] = {
    t.name: t
    for t in (
        Transform("mirror", "Horizontal mirror", "", (1,), _mirror, "Flip left-right."),
        Transform("shift", "Translation", "px", (1, 2, 4, 8, 16), _shift, "Move the picture right and down."),
        Transform("crop", "Crop and zoom", "% cut", (2, 5, 10, 20), _crop, "Cut the border off, zoom back in."),
        Transform("rotate", "Rotation", "°", (1, 2, 5, 10, 20), _rotate, "Rotate anticlockwise."),
        Transform(
            "rescale", "Rescale down and up", "× size", (0.9, 0.75, 0.5, 0.35), _rescale, "Shrink, then enlarge back."
        ),
        Transform(
            "jpeg", "JPEG compression", "quality", (95, 90, 75, 50, 30, 10), jpeg, "Save as JPEG at this quality."
        ),
        Transform("blur", "Gaussian blur", "σ px", (0.5, 1, 1.5, 2, 3), _blur, "Blur with this radius."),
        Transform("noise", "Added noise", "σ /255", (2, 4, 8, 16, 32), _noise, "Add random Gaussian noise."),
        Transform("brightness", "Brighter", "% brighter", (5, 10, 20, 30), _brightness, "Brighten."),
        Transform("contrast", "Less contrast", "% less", (5, 10, 20, 30), _contrast, "Reduce the contrast."),
    )
}


def transform_label(name: str, strength: float) -> str:
    """'JPEG compression 75 quality' - the row's title in tables and captions."""
    t = TRANSFORMS[name]
    return t.title if len(t.strengths) == 1 else f"{t.title} {strength:g} {t.unit}".strip()


@dataclass
class RobustnessRow:
    """One transform at one strength, applied to both images, classified by the model."""

    transform: str
    strength: float
    label: str  # the transformed adversarial image's top class
    index: int
    probability: float
    p_original_class: float
    p_adversarial_class: float
    reverted: bool  # the transformed adversarial image is classified as the original again
    still_fooled: bool  # ... still as the adversarial class
    clean_label: str  # the transformed ORIGINAL image's top class: the control
    clean_kept: bool  # the transform alone leaves the original's class unchanged
    image: Image.Image | None = field(default=None, repr=False)

    @property
    def title(self) -> str:
        return "No transform" if self.transform == "none" else transform_label(self.transform, self.strength)

    def to_json(self) -> dict[str, Any]:
        return {
            "transform": self.transform,
            "strength": self.strength,
            "title": self.title,
            "label": self.label,
            "index": self.index,
            "probability": self.probability,
            "p_original_class": self.p_original_class,
            "p_adversarial_class": self.p_adversarial_class,
            "reverted": self.reverted,
            "still_fooled": self.still_fooled,
            "clean_label": self.clean_label,
            "clean_kept": self.clean_kept,
        }


@dataclass
class RobustnessReport:
    """Every row for one (original, adversarial) pair; rows[0] is the untransformed baseline."""

    model: str
    original_class: int
    original_label: str
    adversarial_class: int
    adversarial_label: str
    rows: list[RobustnessRow]

    def row(self, transform: str, strength: float) -> RobustnessRow:
        for r in self.rows:
            if r.transform == transform and r.strength == strength:
                return r
        raise KeyError(f"no row for {transform} at {strength}")

    def curves(self) -> dict[str, list[tuple[float, bool]]]:
        """transform -> [(strength, still fooled)], mildest first: the 'still fooled vs strength' curves."""
        out: dict[str, list[tuple[float, bool]]] = {}
        for r in self.rows[1:]:
            out.setdefault(r.transform, []).append((r.strength, r.still_fooled))
        return out

    def to_json(self) -> dict[str, Any]:
        transformed = self.rows[1:]
        return {
            "model": self.model,
            "original": {"index": self.original_class, "label": self.original_label},
            "adversarial": {"index": self.adversarial_class, "label": self.adversarial_label},
            "untransformed": self.rows[0].to_json(),
            "rows": [r.to_json() for r in transformed],
            "summary": {
                "transforms": len(transformed),
                "still_fooled": sum(r.still_fooled for r in transformed),
                "reverted": sum(r.reverted for r in transformed),
            },
        }


def _pick(transforms: Sequence[str] | None) -> list[Transform]:
    names = list(TRANSFORMS) if transforms is None else list(transforms)
    unknown = [n for n in names if n not in TRANSFORMS]
    if unknown:
        raise AttackError(f"unknown transform {unknown[0]!r}; choose from: {', '.join(TRANSFORMS)}")
    return [TRANSFORMS[n] for n in names]


def evaluate_robustness(
    model: Classifier,
    original: Image.Image,
    adversarial: Image.Image,
    *,
    transforms: Sequence[str] | None = None,
    strengths: dict[str, Sequence[float]] | None = None,
    adversarial_class: int | None = None,
    seed: int = 0,
    keep_images: bool = False,
) -> RobustnessReport:
    """Apply every transform (at every strength) to both images and classify all of them in one batch.

    The original's class is the model's top class on the untransformed original; the adversarial class is
    `adversarial_class` when given (the attack's target), else the model's top class on the adversarial image.
    Images of another size than the model input are resized to it first (both alike).
    """
    if original.size != adversarial.size:
        raise AttackError(f"the images differ in size: {original.size} vs {adversarial.size}")
    size = model.input_size
    original = resize_input(original.convert("RGB"), size, model)
    adversarial = resize_input(adversarial.convert("RGB"), size, model)
    cases: list[tuple[str, float, Image.Image, Image.Image]] = [("none", 0.0, original, adversarial)]
    for t in _pick(transforms):
        for s in (strengths or {}).get(t.name, t.strengths):
            cases.append((t.name, float(s), t.apply(original, s, seed), t.apply(adversarial, s, seed)))
    probs = classify(model, [c[2] for c in cases] + [c[3] for c in cases])  # (2M, K)
    clean, adv = probs[: len(cases)], probs[len(cases) :]  # (M, K) each
    src = int(clean[0].argmax())
    tgt = int(adv[0].argmax()) if adversarial_class is None else int(adversarial_class)
    if tgt == src:
        raise AttackError(
            f"the adversarial image is classified as the original's class ({model.categories[src]}); "
            "there is nothing that could revert"
        )
    rows = []
    for (name, strength, _, adv_image), pc, pa in zip(cases, clean, adv, strict=True):
        top, clean_top = int(pa.argmax()), int(pc.argmax())
        rows.append(
            RobustnessRow(
                transform=name,
                strength=strength,
                label=model.categories[top],
                index=top,
                probability=float(pa[top]),
                p_original_class=float(pa[src]),
                p_adversarial_class=float(pa[tgt]),
                reverted=top == src,
                still_fooled=top == tgt,
                clean_label=model.categories[clean_top],
                clean_kept=clean_top == src,
                image=adv_image if keep_images else None,
            )
        )
    return RobustnessReport(model.name, src, model.categories[src], tgt, model.categories[tgt], rows)


# --- Expectation over transformation -------------------------------------------------------------------------


@dataclass(frozen=True)
class EOTConfig:
    """The random transformations an EOT attack averages over; each default is a reason-sized everyday change."""

    flip: float = 0.5  # probability of a horizontal mirror: the paper's first reverting transform
    shift: float = 6.0  # largest translation, pixels (covers the 4-px shift of the robustness table)
    rotate: float = 5.0  # largest rotation, degrees
    scale: float = 0.1  # largest relative zoom in or out
    brightness: float = 0.1  # largest relative change of brightness
    contrast: float = 0.1  # largest relative change of contrast
    noise: float = 2.0  # standard deviation of added Gaussian noise, 1/255 units
    jpeg: float = 0.5  # probability of a JPEG round trip (quality 50..95), straight-through gradient

    def check(self) -> EOTConfig:
        for name, high in (
            ("flip", 1),
            ("shift", 64),
            ("rotate", 45),
            ("scale", 0.5),
            ("brightness", 0.5),
            ("contrast", 0.5),
            ("noise", 64),
            ("jpeg", 1),
        ):
            Param(f"EOT {name}", 0.0, 0.0, high).validate(getattr(self, name))
        return self


def jpeg_batch(x: Tensor, quality: int | Sequence[int]) -> Tensor:
    """A real PIL JPEG round trip of each 8-bit image at `quality` (one for all, or one per image), no gradient:
    (M,3,H,W) -> (M,3,H,W). The EOT transform and the JPEG defense both use it."""
    from models import pil_to_tensor, tensor_to_pil

    qualities = [int(quality)] * x.shape[0] if isinstance(quality, int) else [int(q) for q in quality]
    return torch.cat([pil_to_tensor(jpeg(tensor_to_pil(x[i]), q)) for i, q in enumerate(qualities)]).to(x)


def eot_transform(config: EOTConfig) -> Callable[[Tensor, torch.Generator], Tensor]:
    """A random differentiable transform for RandomTransformModel: mirror, rotate, zoom and shift (one affine
    resampling, reflected borders), brightness/contrast, noise, and JPEG with a straight-through gradient."""
    config.check()

    def apply(x: Tensor, gen: torch.Generator) -> Tensor:
        m, _, h, w = x.shape
        flip = torch.where(torch.rand(m, generator=gen) < config.flip, -1.0, 1.0)  # (M,)
        angle = _rand(gen, m, config.rotate) * torch.pi / 180
        zoom = 1.0 + _rand(gen, m, config.scale)
        tx = _rand(gen, m, config.shift) * 2 / w  # normalised coordinates: 2 units span the image
        ty = _rand(gen, m, config.shift) * 2 / h
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1).to(
            x
        )  # (M, 2, 3)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (M, H, W, 2)
        y = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        bright = (1.0 + _rand(gen, m, config.brightness)).view(-1, 1, 1, 1).to(x)
        contrast = (1.0 + _rand(gen, m, config.contrast)).view(-1, 1, 1, 1).to(x)
        mean = y.mean(dim=(1, 2, 3), keepdim=True)
        y = ((y - mean) * contrast + mean) * bright
        if config.noise:
            y = y + torch.randn(y.shape, generator=gen).to(x) * config.noise / 255.0
        y = y.clamp(0.0, 1.0)
        if config.jpeg:
            pick = (torch.rand(m, generator=gen) < config.jpeg).nonzero()[:, 0]
            qualities = torch.randint(50, 96, (m,), generator=gen)
            if len(pick):
                compressed = jpeg_batch(y[pick].detach(), [int(qualities[i]) for i in pick])
                y = y.clone()
                y[pick] = y[pick] + (compressed - y[pick]).detach()  # forward: JPEG; backward: identity (BPDA)
        return y  # (M, 3, H, W)

    return apply


def _rand(gen: torch.Generator, m: int, bound: float) -> Tensor:
    return (torch.rand(m, generator=gen) * 2 - 1) * bound  # (m,) uniform in [-bound, bound]


class EOT(RandomTransformModel):
    """Expectation over transformation as a model: `samples` random transforms of each input per forward."""

    def __init__(
        self,
        model: nn.Module,
        *,
        samples: int = 8,
        config: EOTConfig | None = None,
        seed: int = 0,
        fixed: bool = False,
    ):
        super().__init__(model, eot_transform(config or EOTConfig()), samples=samples, seed=seed, fixed=fixed)
