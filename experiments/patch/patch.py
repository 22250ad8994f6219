"""The adversarial patch engine (Brown et al. 2017, arXiv:1712.09665): a targeted, visible patch trained by
expectation over transformation (EOT) on many photos, with the model frozen.

Why EOT: a printed sticker is seen at any place, size, angle and lighting, so the patch is optimised for the mean
target log-likelihood over those random transformations, not for one placement. Each training step draws, per
photo, a place, a size (a share of the image area), a rotation, a brightness/contrast change, a slight blur and
camera noise; the loss is the cross-entropy of the target on the 8-bit result (straight-through rounding).

Why the controls: a patch can "win" only by hiding the object (the label then drifts to anything), so the
held-out figures put the trained patch beside a random-noise patch and a plain grey patch of the same size,
placed at the very same seeded random places, judged by the same function (`evaluate`). Success = the plain
model's top-1 on the saved 8-bit image is the target, counted over held-out photos whose clean top-1 is not
already the target.

Public API (no Streamlit):

    train_patch(model, images, target, *, steps, batch_size, ...) -> Iterator[PatchProgress]
    apply_patch(image, patch, x, y, size_fraction, angle) -> image with the patch     place(images, patch, where)
    placements(n, size_fraction, seed) -> Placement    evaluate(model, x, patch, size_fraction, target, seed) -> Score
    heldout_table(model, x, patch, target) -> dict (patch vs noise vs grey by size)    noise_patch / grey_patch
    save_patch / load_patch / read_patch (PNG + JSON sidecar)    print_sheet / sheet_pdf    simulate_photo
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageEnhance
from torch import Tensor, nn

from attacks import AttackError
from attacks.metrics import quantize, quantize_ste
from experiments.common import check_number
from experiments.universal.universal import load_image_set, model_inputs, split_indices
from images import ImageError, load_image
from models import IMAGENET_CATEGORIES, class_index

#: Patch sizes of the held-out table, as shares of the image area (the paper's curve spans 0-50%).
SIZES = (0.05, 0.10, 0.15, 0.20, 0.25)
MIN_FRACTION, MAX_FRACTION = 0.01, 0.50
#: Rotation range (degrees, either way) of the held-out placements; training draws from the same range.
EVAL_ANGLE = 30.0
RESOLUTION = 64  # default patch side in pixels (upsampled when placed: 25% of 224x224 is 112 px)
_BATCH = 32  # images per no-grad forward


@dataclass(frozen=True)
class EOT:
    """The random transformations of a training step (Brown et al.'s "expectation over transformation").

    scale: (low, high) patch area as a share of the image; angle: degrees either way; brightness: added, either
    way; contrast: (low, high) factor; blur: largest blend with a 3x3 box blur; noise: largest Gaussian std
    (0-1 pixel units). All but the place apply to the whole composited image, as a camera would see it.
    """

    scale: tuple[float, float] = (0.05, 0.25)
    angle: float = EVAL_ANGLE
    brightness: float = 0.1
    contrast: tuple[float, float] = (0.8, 1.2)
    blur: float = 0.5
    noise: float = 0.02

    def to_json(self) -> dict[str, Any]:
        return {
            "scale": list(self.scale),
            "angle": self.angle,
            "brightness": self.brightness,
            "contrast": list(self.contrast),
            "blur": self.blur,
            "noise": self.noise,
        }


@dataclass
class Placement:
    """Where patches go, one row per image: x, y in [0,1] (0 = left/top edge, 1 = right/bottom edge of the free
    range, so the unrotated square always fits), fraction = patch area / image area, angle in degrees
    (counter-clockwise on screen). Each field (N,)."""

    x: Tensor
    y: Tensor
    fraction: Tensor
    angle: Tensor

    def __len__(self) -> int:
        return len(self.x)


def check_fraction(size_fraction: float, name: str = "patch size") -> float:
    """A patch size as a share of the image area, 1-50%, or one AttackError line."""
    try:
        value = float(size_fraction)
    except (TypeError, ValueError):
        raise AttackError(f"{name} must be a number (a share of the image area), got {size_fraction!r}") from None
    if not (MIN_FRACTION <= value <= MAX_FRACTION) or not math.isfinite(value):
        raise AttackError(f"{name} must be 1-50% of the image area, got {value:.4g} ({value:.1%})")
    return value


def resolve_target(target: str | int) -> int:
    """A class name or index -> its ImageNet index (UnknownClassError, one line, for an unknown one)."""
    return class_index(target)


def target_name(index: int) -> str:
    return IMAGENET_CATEGORIES[index]


# --- geometry ---------------------------------------------------------------------------------------------------


def _theta(where: Placement, height: int, width: int) -> Tensor:
    """(N,2,3) affine_grid matrices mapping each output pixel (normalised -1..1, align_corners=False) to the
    patch's normalised coordinates: centre at the placement, side sqrt(fraction*H*W) px, rotated by angle."""
    side = (where.fraction * height * width).sqrt()  # (N,) pixels
    cx = side / 2 + where.x * (width - side).clamp(min=0)  # (N,) centre, pixels from the left edge
    cy = side / 2 + where.y * (height - side).clamp(min=0)
    a = torch.deg2rad(-where.angle)  # screen y points down: a negative math angle turns it counter-clockwise
    cos, sin = a.cos(), a.sin()
    row0 = torch.stack(
        [cos * width / side, sin * height / side, (cos * (width - 2 * cx) + sin * (height - 2 * cy)) / side], 1
    )
    row1 = torch.stack(
        [-sin * width / side, cos * height / side, (-sin * (width - 2 * cx) + cos * (height - 2 * cy)) / side], 1
    )
    return torch.stack([row0, row1], 1)  # (N, 2, 3)


def place(images: Tensor, patch: Tensor, where: Placement) -> Tensor:
    """Paste a patch on each image (differentiable in the patch): (N,3,H,W) in [0,1], patch (3,P,P) or (N,3,P,P)
    -> (N,3,H,W). Bilinear sampling; the edge pixels blend by how much of them the patch covers."""
    n, _, h, w = images.shape
    patch = patch.expand(n, -1, -1, -1) if patch.dim() == 3 else patch  # (N, 3, P, P)
    ones = torch.ones_like(patch[:, :1])  # (N, 1, P, P): the coverage channel
    theta = _theta(Placement(*(t.to(images) for t in (where.x, where.y, where.fraction, where.angle))), h, w)
    grid = F.affine_grid(theta, [n, 4, h, w], align_corners=False)  # (N, H, W, 2)
    sampled = F.grid_sample(torch.cat([patch, ones], 1), grid, mode="bilinear", align_corners=False)  # (N, 4, H, W)
    rgb, cover = sampled[:, :3], sampled[:, 3:]  # rgb is premultiplied by the coverage (zero padding)
    return images * (1 - cover) + rgb  # (N, 3, H, W)


def apply_patch(image: Tensor, patch: Tensor, x: float, y: float, size_fraction: float, angle: float = 0.0) -> Tensor:
    """One placement on one image (3,H,W) or a batch (N,3,H,W): the patch (3,P,P) with area size_fraction of the
    image, at x, y in [0,1] of the free range (0,0 = top-left corner), turned `angle` degrees counter-clockwise.
    Returns the same shape, not rounded (quantize it to judge what a saved PNG holds)."""
    check_fraction(size_fraction)
    for name, value in (("x", x), ("y", y)):
        check_number(name, value, 0.0, 1.0)
    single = image.dim() == 3
    batch = image[None] if single else image  # (N, 3, H, W)
    n = len(batch)
    where = Placement(*(torch.full((n,), float(v)) for v in (x, y, size_fraction, angle)))
    out = place(batch, patch.to(batch), where)
    return out[0] if single else out


def placements(n: int, size_fraction: float, seed: int, max_angle: float = EVAL_ANGLE) -> Placement:
    """n seeded random places and angles at one size: a function of (n, seed) only, never of the patch, so the
    patch and its controls are judged at the very same places."""
    gen = torch.Generator().manual_seed(seed)
    x, y = torch.rand(n, generator=gen), torch.rand(n, generator=gen)  # (N,), (N,)
    angle = (torch.rand(n, generator=gen) * 2 - 1) * max_angle  # (N,)
    return Placement(x, y, torch.full((n,), float(size_fraction)), angle)


def _random_eot(n: int, eot: EOT, gen: torch.Generator) -> tuple[Placement, Tensor, Tensor, Tensor, Tensor]:
    """A training step's draws: placements and, per image, brightness, contrast, blur blend and noise std."""
    lo, hi = eot.scale
    u = lambda: torch.rand(n, generator=gen)  # noqa: E731 -- (N,) uniform draws in a fixed order
    where = Placement(u(), u(), lo + (hi - lo) * u(), (u() * 2 - 1) * eot.angle)
    bright = (u() * 2 - 1) * eot.brightness
    contrast = eot.contrast[0] + (eot.contrast[1] - eot.contrast[0]) * u()
    return where, bright, contrast, u() * eot.blur, u() * eot.noise


def transformed(images: Tensor, patch: Tensor, eot: EOT, gen: torch.Generator) -> Tensor:
    """The EOT view of a batch: patch placed, lighting changed, slightly blurred, noisy, rounded to 8 bits
    (straight-through, so gradients reach the patch). (N,3,H,W) -> (N,3,H,W)."""
    where, bright, contrast, blur, noise_std = _random_eot(len(images), eot, gen)
    x = place(images, patch, where)  # (N, 3, H, W)
    x = (x - 0.5) * contrast.view(-1, 1, 1, 1) + 0.5 + bright.view(-1, 1, 1, 1)
    box = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)  # (N, 3, H, W) 3x3 box blur
    x = x + blur.view(-1, 1, 1, 1) * (box - x)
    x = x + noise_std.view(-1, 1, 1, 1) * torch.randn(x.shape, generator=gen)
    return quantize_ste(x.clamp(0.0, 1.0))


# --- data -------------------------------------------------------------------------------------------------------


def as_inputs(model: nn.Module, images: Sequence[Image.Image] | Tensor) -> Tensor:
    """Photos (through the model's preprocess) or (N,3,S,S) inputs -> (N,3,S,S) uint8, a quarter of the memory of
    float for the ~800 training photos; converted back to [0,1] per batch."""
    if isinstance(images, Tensor):
        return images if images.dtype == torch.uint8 else (quantize(images) * 255).round().to(torch.uint8)
    chunks = [model_inputs(model, list(images[i : i + _BATCH])) for i in range(0, len(images), _BATCH)]
    if not chunks:
        size = int(getattr(model, "input_size", 224))
        return torch.zeros(0, 3, size, size, dtype=torch.uint8)
    return torch.cat([(c * 255).round().to(torch.uint8).cpu() for c in chunks])  # (N, 3, S, S)


def _float(x: Tensor) -> Tensor:
    return x.float() / 255.0 if x.dtype == torch.uint8 else x


def predict(model: nn.Module, x: Tensor) -> Tensor:
    """(N,3,H,W) uint8 or [0,1] -> (N,) top-1 on the 8-bit images, no gradients."""
    with torch.no_grad():
        out = [model(quantize(_float(x[i : i + _BATCH]))).argmax(1) for i in range(0, len(x), _BATCH)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


# --- evaluation -------------------------------------------------------------------------------------------------


@dataclass
class Score:
    """Targeted success over the counted images (clean top-1 not already the target)."""

    hits: int
    n: int

    @property
    def rate(self) -> float:
        return self.hits / self.n if self.n else float("nan")

    def to_json(self) -> dict[str, Any]:
        return {"hits": self.hits, "n": self.n, "rate": self.rate if self.n else None}


#: How success is decided everywhere (the sidecar, the page, the CLI).
SUCCESS_RULE = (
    "targeted: the plain model's top-1 on the 8-bit image (photo through the model's preprocess, patch pasted at a "
    "seeded random place and angle within ±30°, rounded to 8 bits) is the target; counted over photos whose clean "
    "top-1 is not already the target"
)


def success_mask(
    model: nn.Module, x: Tensor, patch: Tensor, size_fraction: float, target: int, seed: int = 0
) -> Tensor:
    """(N,) True where the 8-bit image with the patch at placements(N, size, seed) is classified as the target."""
    check_fraction(size_fraction)
    where = placements(len(x), size_fraction, seed)
    hits = []
    patch = torch.as_tensor(patch, dtype=torch.float32)
    for i in range(0, len(x), _BATCH):
        part = Placement(*(t[i : i + _BATCH] for t in (where.x, where.y, where.fraction, where.angle)))
        with torch.no_grad():
            xp = quantize(place(_float(x[i : i + _BATCH]), patch.to(_device(model)), part))  # (B, 3, S, S)
            hits.append(model(xp).argmax(1).cpu() == target)
    return torch.cat(hits) if hits else torch.zeros(0, dtype=torch.bool)


def _device(model: nn.Module) -> torch.device:
    return getattr(model, "device", None) or torch.device("cpu")


def evaluate(
    model: nn.Module,
    x: Tensor,
    patch: Tensor,
    size_fraction: float,
    target: int,
    seed: int = 0,
    clean: Tensor | None = None,
) -> Score:
    """THE targeted success of a patch (or a control) on inputs x (N,3,S,S): the one function the run, the
    script, the page and the CLI call, so their figures cannot disagree. clean: the (N,) clean top-1 if known."""
    clean = predict(model, x) if clean is None else clean
    counted = clean.cpu() != target  # (N,)
    hits = success_mask(model, x, patch, size_fraction, target, seed)
    return Score(int((hits & counted).sum()), int(counted.sum()))


def noise_patch(shape: Sequence[int], seed: int) -> Tensor:
    """The noise control: uniform random 8-bit pixels, seeded, of the patch's shape (3,P,P)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, tuple(shape), generator=gen).float() / 255.0


def grey_patch(shape: Sequence[int]) -> Tensor:
    """The occlusion control: a plain mid-grey (128/255) patch of the patch's shape."""
    return torch.full(tuple(shape), 128 / 255.0)


def heldout_table(
    model: nn.Module,
    x: Tensor,
    patch: Tensor,
    target: int,
    *,
    sizes: Sequence[float] = SIZES,
    seed: int = 0,
    noise_seed: int = 1,
) -> dict[str, Any]:
    """Success by size of the patch, the noise and the grey control, all at placements(seed) on the same x."""
    clean = predict(model, x)
    patch = torch.as_tensor(patch, dtype=torch.float32)
    rows = {"patch": patch, "noise": noise_patch(patch.shape, noise_seed), "grey": grey_patch(patch.shape)}
    table: dict[str, Any] = {"sizes": list(sizes), "seed": seed, "noise_seed": noise_seed}
    for name, p in rows.items():
        scores = [evaluate(model, x, p, s, target, seed, clean) for s in sizes]
        table[name] = [s.rate if s.n else None for s in scores]
        table["n"] = scores[0].n
    table["n_images"] = len(x)
    return table


# --- training ---------------------------------------------------------------------------------------------------


@dataclass
class PatchProgress:
    """Where a training run stands; the last one (done=True) is the result, and a stopped run's latest one holds
    the patch so far. patch: (3,P,P) in [0,1]. train_success: the share of the last `window` steps' transformed
    training images classified as the target. heldout_success: at `eval_fraction`, only on the last one."""

    step: int
    steps: int
    loss: float
    train_success: float
    heldout_success: float | None
    train_ids: tuple[int, ...]
    heldout_ids: tuple[int, ...]
    target: int
    patch: Tensor = field(repr=False)
    seconds: float
    done: bool = False
    stop_reason: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def n_train(self) -> int:
        return len(self.train_ids)

    @property
    def n_heldout(self) -> int:
        return len(self.heldout_ids)

    def to_json(self, model: str = "") -> dict[str, Any]:
        """The sidecar's run part (the patch itself goes to the PNG)."""
        return {
            "model": model,
            "target": target_name(self.target),
            "target_index": self.target,
            **self.settings,
            "steps_run": self.step,
            "finished": self.done,
            "n_train": self.n_train,
            "n_heldout": self.n_heldout,
            "train_success_recent": self.train_success,
            "heldout_success_at_eval_fraction": self.heldout_success,
            "seconds": self.seconds,
            "stop_reason": self.stop_reason,
        }


def check_training(n: int, steps: int, batch_size: int, holdout: int | None, resolution: int, lr: float) -> int:
    """The holdout count (default 30%) after checking every setting, before any work; one AttackError line."""
    check_number("steps", steps, 1, 100_000, integer=True)
    check_number("batch_size", batch_size, 1, 512, integer=True)
    check_number("resolution", resolution, 8, 512, integer=True)
    check_number("lr", lr, 1e-5, 10.0)
    holdout = round(0.3 * n) if holdout is None else holdout
    check_number("holdout", holdout, 0, max(0, n), integer=True)
    if n - holdout < 1:
        raise AttackError(f"need at least 1 training image: got {n} images with {holdout} held out")
    return int(holdout)


def train_patch(
    model: nn.Module,
    images: Sequence[Image.Image] | Tensor,
    target: str | int,
    *,
    steps: int = 500,
    batch_size: int = 8,
    lr: float = 0.03,
    resolution: int = RESOLUTION,
    holdout: int | None = None,
    seed: int = 0,
    eot: EOT = EOT(),
    eval_fraction: float = 0.10,
    window: int = 20,
) -> Iterator[PatchProgress]:
    """Train a targeted patch on a seeded training split of `images` (photos or (N,3,S,S) inputs).

    Adam on the patch pixels (clamped to [0,1] after each step) minimising the target's cross-entropy over EOT
    views of mini-batches; the model stays frozen (its parameters need no grad). Starts from mid-grey + seeded
    noise. Yields after every step (the patch so far, so a Stop keeps it) and a last item with done=True and the
    held-out success at eval_fraction. Deterministic under `seed` on one machine.
    """
    t = resolve_target(target)
    x = as_inputs(model, images)  # (N, 3, S, S) uint8
    holdout = check_training(len(x), steps, batch_size, holdout, resolution, lr)
    check_fraction(eval_fraction, "eval_fraction")
    if eot.scale[0] > eot.scale[1]:
        raise AttackError(f"EOT scale range must be (low, high), got {eot.scale}")
    for s in eot.scale:
        check_fraction(s, "EOT scale")
    train_ids, held_ids = split_indices(len(x), holdout, seed)
    settings: dict[str, Any] = {"steps": steps, "batch_size": batch_size, "lr": lr, "resolution": resolution}
    settings |= {"holdout": holdout, "seed": seed, "eot": eot.to_json(), "eval_fraction": eval_fraction}
    x_train = x[list(train_ids)]  # (T, 3, S, S) -- the only images the patch learns from
    x_held = x[list(held_ids)]  # (H, 3, S, S) -- seen only under no_grad, by evaluate
    gen = torch.Generator().manual_seed(seed)
    patch = (0.5 + 0.1 * torch.randn(3, resolution, resolution, generator=gen)).clamp(0, 1)  # (3, P, P)
    patch.requires_grad_(True)
    opt = torch.optim.Adam([patch], lr=lr)
    target_batch = torch.full((batch_size,), t, dtype=torch.long, device=_device(model))
    recent: list[float] = []
    start = time.perf_counter()
    loss_value = float("nan")

    def progress(step: int, held: float | None = None, done: bool = False, why: str = "") -> PatchProgress:
        return PatchProgress(
            step=step,
            steps=steps,
            loss=loss_value,
            train_success=sum(recent) / len(recent) if recent else 0.0,
            heldout_success=held,
            train_ids=train_ids,
            heldout_ids=held_ids,
            target=t,
            patch=patch.detach().cpu().clone(),
            seconds=time.perf_counter() - start,
            done=done,
            stop_reason=why,
            settings=settings,
        )

    for step in range(1, steps + 1):
        ids = torch.randint(0, len(x_train), (batch_size,), generator=gen)  # (B,)
        batch = _float(x_train[ids]).to(_device(model))  # (B, 3, S, S)
        with torch.enable_grad():
            logits = model(transformed(batch, patch, eot, gen))  # (B, K)
            loss = F.cross_entropy(logits, target_batch[: len(ids)])
            opt.zero_grad(set_to_none=True)
            loss.backward()
        opt.step()
        with torch.no_grad():
            patch.clamp_(0.0, 1.0)
        loss_value = float(loss.detach())
        recent = [*recent, float((logits.argmax(1) == t).float().mean())][-window:]
        yield progress(step)
    held = None
    if holdout:
        held = evaluate(model, x_held, quantize(patch.detach()), eval_fraction, t, seed).rate
    yield progress(steps, held, done=True, why="last step")


# --- saving, loading ------------------------------------------------------------------------------------------


def to_uint8(patch: Tensor | np.ndarray) -> np.ndarray:
    """(3,P,P) in [0,1] -> (P,P,3) uint8, the PNG's pixels; a (P,P,3) uint8 array is returned as is."""
    if isinstance(patch, np.ndarray) and patch.dtype == np.uint8 and patch.ndim == 3 and patch.shape[2] == 3:
        return patch
    p = torch.as_tensor(patch, dtype=torch.float32)
    return (quantize(p) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()  # (P, P, 3)


def from_uint8(pixels: np.ndarray) -> Tensor:
    """(P,P,3) uint8 -> (3,P,P) float in [0,1]."""
    return torch.from_numpy(np.array(pixels, dtype=np.uint8)).permute(2, 0, 1).float() / 255.0  # (3, P, P)


def save_patch(path: str | os.PathLike[str], patch: Tensor | np.ndarray, meta: dict[str, Any]) -> dict[str, Path]:
    """Write the patch as `<stem>.png` (8-bit: what is printed and judged) and `meta` as `<stem>.json`."""
    png = Path(path).with_suffix(".png")
    png.parent.mkdir(parents=True, exist_ok=True)
    pixels = to_uint8(patch)
    Image.fromarray(pixels).save(png)
    side = png.with_suffix(".json")
    side.write_text(json.dumps({**meta, "shape": [3, *pixels.shape[:2]]}, indent=2, allow_nan=False) + "\n")
    return {"png": png, "json": side}


def read_patch(data: bytes, name: str = "the file") -> Tensor:
    """An image file's bytes -> a patch (3,P,P); one ImageError/AttackError line when it is not a usable patch."""
    try:
        image = load_image(data)
    except ImageError as err:
        raise ImageError(f"{name} is not a usable image: {err}") from None
    w, h = image.size
    if w != h or w < 8:
        raise AttackError(f"{name} is not a square patch of at least 8x8 pixels (it is {w}x{h})")
    if w > 1024:
        image = image.resize((RESOLUTION, RESOLUTION), Image.Resampling.BOX)
    return from_uint8(np.asarray(image.convert("RGB")))


def load_patch(path: str | os.PathLike[str]) -> tuple[Tensor, dict[str, Any]]:
    """A saved patch (3,P,P) and its JSON sidecar ({} when there is none)."""
    png = Path(path).with_suffix(".png")
    if not png.is_file():
        raise AttackError(f"no patch file {str(png)!r}")
    patch = read_patch(png.read_bytes(), str(png))
    side = png.with_suffix(".json")
    return patch, json.loads(side.read_text()) if side.exists() else {}


def load_inputs(model: nn.Module, name: str) -> tuple[list[str], Tensor]:
    """An image set ("samples" or a folder) -> (ids, (N,3,S,S) uint8 model inputs)."""
    ids, photos = load_image_set(name)
    return ids, as_inputs(model, photos)


# --- printing and the camera ----------------------------------------------------------------------------------


def print_sheet(patch: Tensor | np.ndarray, cm: float, dpi: int = 300, caption: str = "") -> Image.Image:
    """The patch at `cm` x `cm` when printed at `dpi` (nearest-neighbour enlargement keeps its pixels sharp), on
    a white sheet with a dashed cut line 1 mm outside it and a caption; save with dpi=(dpi, dpi)."""
    check_number("printed size (cm)", cm, 1.0, 50.0)
    check_number("dpi", dpi, 72, 1200, integer=True)
    side = round(cm / 2.54 * dpi)
    margin = round(1.0 / 2.54 * dpi)  # 1 cm of white around
    gap = max(1, round(0.1 / 2.54 * dpi))  # the cut line sits 1 mm outside the patch
    img = Image.fromarray(to_uint8(patch)).resize((side, side), Image.Resampling.NEAREST)
    sheet = Image.new("RGB", (side + 2 * margin, side + 2 * margin + margin), "white")
    sheet.paste(img, (margin, margin))
    draw = ImageDraw.Draw(sheet)
    lo, hi = margin - gap, margin + side + gap - 1
    dash = max(4, round(0.2 / 2.54 * dpi))
    width = max(1, dpi // 150)
    for a in range(lo, hi, 2 * dash):  # dashed square: the cut line
        b = min(a + dash, hi)
        for line in (((a, lo), (b, lo)), ((a, hi), (b, hi)), ((lo, a), (lo, b)), ((hi, a), (hi, b))):
            draw.line(line, fill=(90, 90, 90), width=width)
    text = caption or f"adversarial patch, {cm:g} cm - cut along the dashed line"
    while len(text) > 8 and draw.textlength(text) > sheet.width - margin:  # a small sheet: shorten, never overflow
        text = text[:-2]
    draw.text((margin, margin + side + 2 * gap + margin // 4), text, fill=(60, 60, 60))
    return sheet


def sheet_png(sheet: Image.Image, dpi: int) -> bytes:
    buf = io.BytesIO()
    sheet.save(buf, format="PNG", dpi=(dpi, dpi))
    return buf.getvalue()


def sheet_pdf(sheet: Image.Image, dpi: int) -> bytes:
    """The sheet as a one-page PDF whose page is the sheet's physical size (print at 100%, no fit-to-page)."""
    buf = io.BytesIO()
    sheet.save(buf, format="PDF", resolution=float(dpi))
    return buf.getvalue()


def _perspective_coeffs(dst: Sequence[tuple[float, float]], src: Sequence[tuple[float, float]]) -> list[float]:
    """PIL's 8 PERSPECTIVE coefficients mapping each output point dst[i] to the input point src[i]."""
    rows, rhs = [], []
    for (u, v), (x, y) in zip(dst, src, strict=True):
        rows += [[u, v, 1, 0, 0, 0, -x * u, -x * v], [0, 0, 0, u, v, 1, -y * u, -y * v]]
        rhs += [x, y]
    return np.linalg.solve(np.asarray(rows, float), np.asarray(rhs, float)).tolist()


def simulate_photo(
    scene: Image.Image,
    printed: Image.Image,
    *,
    area: float = 0.2,
    centre: tuple[float, float] = (0.7, 0.35),
    tilt: float = 0.12,
    light: float = 0.8,
    warmth: float = 1.08,
    seed: int = 0,
    quality: int = 85,
) -> Image.Image:
    """What a camera might return for the printed patch held in a scene: the printed image (cut out) warped
    into a tilted quadrilateral covering about `area` of the frame, the whole frame darker (`light`) and warmer
    (red up, blue down), sensor noise, then a JPEG round trip. Why: a print-and-photograph trial is out of reach
    here; this checks the camera path (perspective, lighting, resampling, compression) end to end."""
    scene = scene.convert("RGB")
    w, h = scene.size
    side = math.sqrt(area * w * h)
    cx, cy = centre[0] * w, centre[1] * h
    rng = np.random.default_rng(seed)
    quad = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
    # a tilted card: one side shorter (perspective) and a random jitter of each corner
    dst = [
        (cx + qx * side / 2 * (1 - tilt * (qy > 0)) + rng.normal(0, tilt * side / 8), cy + qy * side / 2)
        for qx, qy in quad
    ]
    pw, ph = printed.size
    src = [(0, 0), (pw, 0), (pw, ph), (0, ph)]
    coeffs = _perspective_coeffs(dst, src)
    warped = printed.convert("RGB").transform((w, h), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC)
    mask = Image.new("L", printed.size, 255).transform((w, h), Image.Transform.PERSPECTIVE, coeffs)
    photo = scene.copy()
    photo.paste(warped, (0, 0), mask)
    photo = ImageEnhance.Brightness(photo).enhance(light)
    arr = np.asarray(photo).astype(np.float32)
    arr[..., 0] *= warmth
    arr[..., 2] /= warmth
    arr += rng.normal(0, 2.0, arr.shape)
    photo = Image.fromarray(arr.clip(0, 255).round().astype(np.uint8))
    buf = io.BytesIO()
    photo.save(buf, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


# --- for the page: numpy in and out, so Streamlit code needs no torch ---------------------------------------------


def classify(model: nn.Module, photo: Image.Image) -> np.ndarray:
    """A photo through the model's preprocess, 8-bit -> (K,) probabilities (the camera and upload path)."""
    x = as_inputs(model, [photo])  # (1, 3, S, S)
    with torch.no_grad():
        return model(_float(x).to(_device(model))).softmax(1)[0].cpu().numpy()


def patched(
    model: nn.Module,
    photo: Image.Image,
    patch: np.ndarray | Tensor,
    x: float,
    y: float,
    size_fraction: float,
    angle: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The photo as the model sees it with the patch placed, rounded to 8 bits: ((S,S,3) uint8, (K,) probs)."""
    p = from_uint8(patch) if isinstance(patch, np.ndarray) else patch
    xin = _float(as_inputs(model, [photo])).to(_device(model))  # (1, 3, S, S)
    out = quantize(apply_patch(xin, p, x, y, size_fraction, angle))  # (1, 3, S, S)
    with torch.no_grad():
        probs = model(out).softmax(1)[0].cpu().numpy()
    return to_uint8(out[0]), probs
