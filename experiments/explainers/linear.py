"""Why tiny changes add up: seed 001's worked logistic regression, the same sum at image scale, and the first-order
(linear) prediction of a real network's logit change checked against the measured one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from attacks import AttackError
from experiments.common import check_number
from models import Classifier, pil_to_tensor

#: Seed 001's example: p = sigmoid(W.x) for a 10-dimensional input.
SEED_W = np.array([-1, -1, 1, -1, 1, -1, 1, 1, -1, 1], dtype=np.float64)
SEED_X = np.array([2, -1, 3, -2, 2, 2, 1, -4, 5, 1], dtype=np.float64)
SEED_NUDGE = 0.5

#: The image-scale slider's range: 10 numbers up to one 224x224 RGB image.
MAX_DIMS = 224 * 224 * 3


def sigmoid(z: float) -> float:
    return float(1.0 / (1.0 + np.exp(-z)))


@dataclass(frozen=True)
class LogisticNudge:
    """The seed's example for one nudge size: before/after inputs, scores and the per-dimension contributions."""

    x: np.ndarray  # (10,)
    y: np.ndarray  # (10,) x nudged along sign(W)
    contributions: np.ndarray  # (10,) w_i * dx_i, each exactly |w_i| * nudge
    score_before: float
    score_after: float
    p_before: float
    p_after: float


def logistic_nudge(nudge: float = SEED_NUDGE, *, w: np.ndarray = SEED_W, x: np.ndarray = SEED_X) -> LogisticNudge:
    """Move every input by `nudge` along sign(w): the score rises by nudge * ||w||_1, one small term per input."""
    nudge = check_number("nudge", nudge, 0.0, 10.0)
    if w.shape != x.shape or w.ndim != 1:
        raise AttackError(f"w and x must be vectors of one length, got {w.shape} and {x.shape}")
    dx = nudge * np.sign(w)
    y = x + dx
    before, after = float(w @ x), float(w @ y)
    return LogisticNudge(x, y, w * dx, before, after, sigmoid(before), sigmoid(after))


@dataclass(frozen=True)
class ScaleArgument:
    """A linear score w.x in n dimensions under a per-pixel change of eps: aligned with sign(w) vs random signs."""

    n_dims: int
    eps: float  # per-pixel change in [0,1] pixel units
    aligned_change: float  # eps * ||w||_1: grows like n
    random_change: float  # |w . (eps * random signs)|: grows like sqrt(n)
    mean_abs_w: float


def scale_argument(n_dims: int, eps_255: float, *, seed: int = 0) -> ScaleArgument:
    """The score change of a linear model with weights ~ N(0, 1) when every pixel moves by eps_255/255.

    Why two changes: the step along sign(w) adds one same-signed term per pixel (n terms), a random one of the same
    size mostly cancels (about sqrt(n)); the per-pixel change, which is what the eye sees, stays eps either way.
    """
    n = int(check_number("n_dims", n_dims, 1, MAX_DIMS, integer=True))
    eps = check_number("eps_255", eps_255, 0.0, 255.0) / 255.0
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(n)  # (n,)
    signs = rng.choice((-1.0, 1.0), size=n)  # (n,)
    return ScaleArgument(n, eps, float(eps * np.abs(w).sum()), float(abs(eps * (w @ signs))), float(np.abs(w).mean()))


def scale_curve(eps_255: float, dims: list[int] | None = None, *, seed: int = 0) -> list[ScaleArgument]:
    """scale_argument over dimensions from 10 to one 224x224x3 image (log-spaced by default)."""
    if dims is None:
        dims = sorted({int(round(d)) for d in np.geomspace(10, MAX_DIMS, 25)})
    return [scale_argument(d, eps_255, seed=seed) for d in dims]


@dataclass(frozen=True)
class FirstOrderCheck:
    """A real network's target logit under one sign step: the linear prediction grad . delta vs the measured change."""

    target: int
    logit: float
    predicted: float  # grad . delta
    measured: float  # logit(x + delta) - logit(x)
    n_dims: int
    step: float  # per-pixel step in [0,1] units
    mean_abs_grad: float


def first_order_change(model: nn.Module, x: Tensor, target: int, *, step_255: float = 1.0) -> FirstOrderCheck:
    """Take one step of step_255/255 per pixel along the sign of the target logit's gradient (clipped to [0,1])
    and compare the first-order prediction with what the network actually does: if the network were linear the two
    would be equal, and they are close, which is why a 1/255 change can move a logit by whole units."""
    if x.ndim != 4 or x.shape[0] != 1:
        raise AttackError(f"x must be one image (1, C, H, W), got {tuple(x.shape)}")
    step = check_number("step_255", step_255, 0.0, 255.0) / 255.0
    x = x.detach().clone().requires_grad_(True)  # (1, C, H, W)
    logits = model(x)  # (1, K)
    if not 0 <= target < logits.shape[1]:
        raise AttackError(f"target must be a class index in [0, {logits.shape[1] - 1}], got {target}")
    (grad,) = torch.autograd.grad(logits[0, target], x)  # (1, C, H, W)
    with torch.no_grad():
        delta = (x + step * grad.sign()).clamp(0, 1) - x  # (1, C, H, W)
        after = float(model(x + delta)[0, target])
    before = float(logits[0, target].detach())
    return FirstOrderCheck(
        target=target,
        logit=before,
        predicted=float((grad * delta).sum()),
        measured=after - before,
        n_dims=x[0].numel(),
        step=step,
        mean_abs_grad=float(grad.abs().mean()),
    )


def first_order_rows(model: Classifier, image: Any, steps_255: list[float] | tuple[float, ...]) -> list[dict[str, Any]]:
    """A table for a page: the model's top-class logit on `image` (PIL) under sign steps of several sizes, the linear
    prediction next to the measured change."""
    x = pil_to_tensor(model.preprocess(image))  # (1, 3, H, W)
    with torch.no_grad():
        top = int(model(x).argmax())
    rows = []
    for s in steps_255:
        r = first_order_change(model, x, top, step_255=s)
        rows.append(
            {
                "step per pixel": f"{s:g}/255",
                "class": model.categories[top],
                "predicted: grad · delta": round(r.predicted, 2),
                "measured change": round(r.measured, 2),
                "pixels × channels": r.n_dims,
            }
        )
    return rows
