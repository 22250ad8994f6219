"""Universal adversarial perturbations: one image-agnostic pattern v, small enough to be near invisible, that changes
the model's label on most natural images (seed 003; Moosavi-Dezfooli, Fawzi, Fawzi & Frossard, CVPR 2017,
arXiv:1610.08401; reference code LTS4/universal `python/universal_pert.py`).

Fooling ratio = fraction of images whose label changes, k(x+v) != k(x), always judged by the plain model on the
8-bit image a PNG would hold: quantize(clamp(x + v)). v is built on training images only and reported on held-out
images from a seeded split. xi is given in the paper's 0-255 units (L-inf 10, L2 2000 on 224x224); v itself lives
in [0,1] pixel units, so ||v|| <= xi / 255.

Two methods, both generators yielding UniversalProgress (pages stream it, the CLI exhausts it):

* ``deepfool`` -- the paper's Algorithm 1. Passes over the shuffled training images; for each image that x+v does
  not yet fool, the engine's DeepFool (attacks.deepfool, 10 candidate classes, overshoot 0.02, 10 iterations) runs
  from the 8-bit x+v; its minimal step r = x_adv - (x+v) (a difference of two 8-bit images) is added to v only when
  DeepFool reached the other side, and v is projected back onto the ball. Stops when the training fooling ratio
  reaches 1 - delta, or after `passes` passes. Images are visited one at a time because each step starts from the
  v the previous image left; only the fooling checks are batched. Differences from the reference code: DeepFool
  here runs on the 8-bit image and clamps to [0,1], so r never pushes a pixel past 0 or 1.
* ``sgd`` -- the stochastic gradient variant of Shafahi et al. (AAAI 2020, "Universal adversarial training",
  arXiv:1812.02637, Algorithm 1; also Mummadi et al. ICCV 2019, arXiv:1812.03705): gradient ascent on v of the
  mean cross-entropy of the clean labels over shuffled mini-batches, a sign step for L-inf (a normalised step for
  L2), projected onto the ball after each step. It costs one forward+backward per mini-batch instead of about ten
  backward passes per image and iteration, so it suits a CPU classroom. It differs from the paper in using every
  image (fooled or not) and the loss rather than the distance to the nearest boundary; unlike Shafahi et al. it
  starts from v = 0 and does not cap the per-image loss.

Public API (no Streamlit; the CLI and the page are thin calls):

    compute_universal(model, images, *, norm, xi, method, holdout, passes, delta, seed, ...)
        -> Iterator[UniversalProgress]
    split_indices(n, holdout, seed) -> (train_ids, heldout_ids)
    project(v, norm, xi) -> v on the ball               fooled_mask / fooling_ratio(model, images, v, labels=None)
    apply_perturbation(x, v) -> 8-bit x + v             resize_perturbation(v, (H, W))
    save_perturbation(path, v, meta) / load_perturbation(path) -> (v, meta)     amplified(v) -> (PIL image, gain)
    cross_model_table(models, perturbations, images) -> CrossModelTable        load_image_set(name)
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from attacks import AttackError, Goal
from attacks.deepfool import DeepFool
from attacks.metrics import amplified_difference, quantize, quantize_ste
from attacks.runner import run_batch
from experiments.common import check_choice, check_number, resize_input
from models import pil_to_tensor, tensor_to_pil

NORMS = ("inf", "2")
METHODS = ("deepfool", "sgd")
#: The paper's radius per norm, 0-255 pixel units (L2 for 224x224 inputs).
DEFAULT_XI = {"inf": 10.0, "2": 2000.0}
#: The reference code's DeepFool settings inside the algorithm.
DEEPFOOL_SETTINGS = {"steps": 10, "overshoot": 0.02, "candidates": 10}
_BATCH = 32  # images per no-grad forward in the fooling checks


@dataclass
class UniversalProgress:
    """Where a universal-perturbation run stands; the last one (done=True) is the result.

    pass_index: 1-based pass over the training images (0: before the first). visited: training images processed
    so far over all passes. last_images: indices (into the given images) used for the latest update of v -- one
    image for DeepFool, a mini-batch for SGD, () for an evaluation-only row. train_fooling: the latest batched
    count on the training images; heldout_fooling: the latest on the held-out ones (None if there are none).
    v: (3,H,W) the current perturbation in [0,1] pixel units.
    """

    method: str
    pass_index: int
    visited: int
    last_images: tuple[int, ...]
    updated: bool
    train_fooling: float
    heldout_fooling: float | None
    train_ids: tuple[int, ...]
    heldout_ids: tuple[int, ...]
    v: Tensor = field(repr=False)
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
        """The JSON sidecar / result.json: settings, image counts and fooling ratios (v itself goes to .npy)."""
        return {
            "model": model,
            **self.settings,
            "passes_run": self.pass_index,
            "images_visited": self.visited,
            "n_train": self.n_train,
            "n_heldout": self.n_heldout,
            "train_ids": list(self.train_ids),
            "heldout_ids": list(self.heldout_ids),
            "train_fooling": self.train_fooling,
            "heldout_fooling": self.heldout_fooling,
            "linf_255": float(self.v.abs().max()) * 255.0,
            "l2_255": float(self.v.norm()) * 255.0,
            "seconds": self.seconds,
            "stop_reason": self.stop_reason,
        }


def split_indices(n: int, holdout: int, seed: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A seeded random split of n images into (training, held-out) index tuples, each sorted."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return tuple(sorted(perm[holdout:])), tuple(sorted(perm[:holdout]))


def project(v: Tensor, norm: str, xi: float) -> Tensor:
    """Back onto the ball of radius xi (0-255 units) around 0: clip for L-inf, rescale for L2 (proj_lp)."""
    radius = xi / 255.0
    if norm == "inf":
        return v.clamp(-radius, radius)
    return v * min(1.0, radius / max(float(v.norm()), 1e-12))


def resize_perturbation(v: Tensor, size: tuple[int, int]) -> Tensor:
    """(3,h,w) -> (3,H,W) for a model or image of another size: bilinear, antialiased when shrinking.

    Why bilinear: its weights are non-negative and sum to 1, so the resized v keeps its L-inf bound (bicubic
    would overshoot). The L2 norm scales with the pixel count (the per-pixel energy is kept), as the paper's
    xi=2000 is per 224x224 image.
    """
    if tuple(v.shape[-2:]) == tuple(size):
        return v
    return F.interpolate(v[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]  # (3, H, W)


def apply_perturbation(x: Tensor, v: Tensor) -> Tensor:
    """(N,3,H,W) model inputs + v (resized to H,W if needed) -> the 8-bit images quantize(clamp(x + v))."""
    return quantize(x + resize_perturbation(v.to(x.device), tuple(x.shape[-2:])))  # (N, 3, H, W)


def _device(model: nn.Module) -> torch.device:
    return getattr(model, "device", None) or next(iter(model.buffers()), torch.zeros(0)).device


def predict(model: nn.Module, x: Tensor) -> Tensor:
    """(N,3,H,W) -> (N,) top classes of the 8-bit images, no gradients, in chunks."""
    with torch.no_grad():
        return torch.cat([model(quantize(x[i : i + _BATCH])).argmax(1) for i in range(0, len(x), _BATCH)])


def fooled_mask(model: nn.Module, x: Tensor, v: Tensor, labels: Tensor | None = None) -> Tensor:
    """(N,) True where the 8-bit x + v gets another label than the clean label (k(x), computed if not given)."""
    labels = predict(model, x) if labels is None else labels
    return predict(model, apply_perturbation(x, v)) != labels


def fooling_ratio(model: nn.Module, x: Tensor, v: Tensor, labels: Tensor | None = None) -> float:
    """Fraction of the images x (N,3,H,W) whose label v changes, judged on the 8-bit images."""
    if not len(x):
        return float("nan")
    return int(fooled_mask(model, x, v, labels).sum()) / len(x)  # an exact count, not a float32 mean


#: How "fooled" is decided everywhere (the sidecar, the page, the CLI, the cross-model table).
FOOLED_RULE = (
    "label change: the plain model's top-1 on the 8-bit image quantize(clamp(x + v)) differs from its top-1 on the "
    "8-bit clean x (its own prediction, not the ImageNet label), x = the model's preprocess of the photo"
)


def evaluate(
    model: nn.Module, images: Sequence[Image.Image] | Tensor, v: Tensor | np.ndarray, labels: Tensor | None = None
) -> float:
    """THE fooling ratio of v on images (photos or (N,3,S,S) inputs): the one function the run, the page's status,
    its cross-model table, the CLI and scripts/make_universal.py call, so their figures cannot disagree."""
    x = model_inputs(model, images)  # (N, 3, S, S)
    return fooling_ratio(model, x, torch.as_tensor(v, dtype=torch.float32).to(x.device), labels)


def sign_noise(shape: Sequence[int], xi: float, seed: int) -> Tensor:
    """The control: random +-xi/255 signs (the L-inf ball's corners, so the same L-inf as a saturated v), seeded."""
    gen = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 2, tuple(shape), generator=gen).float() * 2 - 1  # (3, H, W)
    return signs * (xi / 255.0)


def model_inputs(model: nn.Module, images: Sequence[Image.Image] | Tensor) -> Tensor:
    """Images -> (N,3,S,S) model inputs in [0,1]: a tensor is taken as is; photos go through the model's
    preprocess (resize + centre crop) when it has one, else are resized to its input size."""
    if isinstance(images, Tensor):
        return images.to(_device(model))
    pre = getattr(model, "preprocess", None)
    size = int(model.input_size)  # type: ignore[arg-type]
    crops = [pre(im) if pre is not None else resize_input(im.convert("RGB"), size) for im in images]
    if not crops:
        return torch.zeros(0, 3, size, size, device=_device(model))
    return torch.cat([pil_to_tensor(c) for c in crops]).to(_device(model))  # (N, 3, S, S)


def check_settings(
    n: int, norm: str, xi: float | None, method: str, holdout: int | None, passes: int, delta: float
) -> tuple[float, int]:
    """(xi, holdout) with their defaults filled in, or one AttackError line for a bad setting (before any work)."""
    check_choice("norm", norm, NORMS)
    check_choice("method", method, METHODS)
    xi = DEFAULT_XI[norm] if xi is None else xi
    check_number("xi", xi, -math.inf, math.inf)
    if xi <= 0:
        raise AttackError(f"xi must be greater than 0 (0-255 pixel units), got {xi:g}")
    if norm == "inf" and xi > 255:
        raise AttackError(f"xi for the L-inf norm must be at most 255, got {xi:g}")
    check_number("passes", passes, 1, 1000, integer=True)
    check_number("delta", delta, 0.0, 1.0)
    holdout = round(0.3 * n) if holdout is None else holdout
    check_number("holdout", holdout, 0, math.inf, integer=True)
    if n - holdout < 2:
        raise AttackError(f"need at least 2 training images: got {n} images with {holdout} held out")
    return float(xi), int(holdout)


def compute_universal(
    model: nn.Module,
    images: Sequence[Image.Image] | Tensor,
    *,
    norm: str = "inf",
    xi: float | None = None,
    method: str = "deepfool",
    holdout: int | None = None,
    passes: int = 5,
    delta: float = 0.2,
    seed: int = 0,
    batch_size: int = 8,
    step_size: float | None = None,
    deepfool_steps: int = 10,
    eval_every: int = 1,
) -> Iterator[UniversalProgress]:
    """Build a universal perturbation for `model` from images (photos or (N,3,S,S) model inputs in [0,1]).

    holdout: images kept out of the building of v (default 30%), chosen by a seeded split. passes: at most this
    many passes (DeepFool) or epochs (SGD). delta: stop once the training fooling ratio reaches 1 - delta.
    batch_size, step_size (0-255 units; default 1 for L-inf, xi/10 for L2): SGD only. deepfool_steps: DeepFool
    iterations per image. eval_every: held-out fooling ratio every this many passes (and at the end).
    Yields after every update of v and once per pass; deterministic under `seed`.
    """
    x = model_inputs(model, images)  # (N, 3, S, S)
    xi, holdout = check_settings(len(x), norm, xi, method, holdout, passes, delta)
    check_number("batch_size", batch_size, 1, 4096, integer=True)
    check_number("deepfool_steps", deepfool_steps, 1, 1000, integer=True)
    check_number("eval_every", eval_every, 1, 1000, integer=True)
    if step_size is None:
        step_size = 1.0 if norm == "inf" else xi / 10.0
    check_number("step_size", step_size, 1e-6, 1e6)
    train_ids, held_ids = split_indices(len(x), holdout, seed)
    settings: dict[str, Any] = {"norm": norm, "xi": xi, "method": method, "holdout": holdout, "passes": passes}
    settings |= {"delta": delta, "seed": seed}
    if method == "sgd":
        settings |= {"batch_size": batch_size, "step_size": step_size}
    else:
        settings |= {"deepfool": {**DEEPFOOL_SETTINGS, "steps": deepfool_steps}}
    x_train = x[list(train_ids)]  # (T, 3, S, S) -- the only images v is built from
    x_held = x[list(held_ids)]  # (H, 3, S, S) -- only ever seen under no_grad, by the fooling count
    y_train = predict(model, x_train)  # (T,) clean labels k(x)
    y_held = predict(model, x_held)  # (H,)
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    v = torch.zeros_like(x[0])  # (3, S, S)
    state = {"train": 0.0, "held": None if holdout == 0 else 0.0, "visited": 0}

    def progress(pass_index: int, used: tuple[int, ...], updated: bool, done: bool = False, why: str = ""):
        return UniversalProgress(
            method=method,
            pass_index=pass_index,
            visited=int(state["visited"]),
            last_images=used,
            updated=updated,
            train_fooling=float(state["train"]),
            heldout_fooling=state["held"],
            train_ids=train_ids,
            heldout_ids=held_ids,
            v=v.detach().cpu().clone(),
            seconds=time.perf_counter() - start,
            done=done,
            stop_reason=why,
            settings=settings,
        )

    attack = DeepFool(**{**DEEPFOOL_SETTINGS, "steps": deepfool_steps})
    for p in range(1, passes + 1):
        order = torch.randperm(len(train_ids), generator=gen)  # (T,)
        if method == "deepfool":
            for j in order.tolist():
                xj = x_train[j : j + 1]  # (1, 3, S, S)
                state["visited"] += 1
                if bool(fooled_mask(model, xj, v, y_train[j : j + 1])[0]):
                    continue  # already fooled: nothing to add
                r, converged = deepfool_step(model, apply_perturbation(xj, v), y_train[j : j + 1], attack, seed)
                if converged:
                    v = project(v + r[0], norm, xi)
                yield progress(p, (train_ids[j],), converged)
        else:
            for b in range(0, len(order), batch_size):
                ids = order[b : b + batch_size]  # (B,)
                state["visited"] += len(ids)
                v = sgd_step(model, x_train[ids], y_train[ids], v, norm=norm, xi=xi, step_size=step_size)
                yield progress(p, tuple(train_ids[j] for j in ids.tolist()), True)
        state["train"] = evaluate(model, x_train, v, y_train)
        reached = state["train"] >= 1.0 - delta
        last = reached or p == passes
        if holdout and (last or p % eval_every == 0):
            state["held"] = evaluate(model, x_held, v, y_held)
        why = "" if not last else (f"training fooling ratio reached 1 - delta = {1 - delta:g}" if reached else "")
        yield progress(p, (), False, done=last, why=why or ("last pass" if last else ""))
        if last:
            return


def deepfool_step(model: nn.Module, x: Tensor, label: Tensor, attack: DeepFool, seed: int = 0) -> tuple[Tensor, bool]:
    """The engine's DeepFool from the 8-bit image x (1,3,S,S) against its clean label: (r (1,3,S,S), converged).

    r = x_adv - x, the difference of two 8-bit images; converged: the 8-bit x_adv gets another label.
    """
    done = run_batch(attack, model, x, Goal(label), seeds=seed)
    return done.x_adv - x, bool(done.last.success[0])


def sgd_step(
    model: nn.Module, x: Tensor, labels: Tensor, v: Tensor, *, norm: str, xi: float, step_size: float
) -> Tensor:
    """One ascent step on the mean CE of the clean labels of the 8-bit x + v over a mini-batch, then projection."""
    v = v.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(quantize_ste((x + v).clamp(0.0, 1.0)))  # (B, K)
        loss = F.cross_entropy(logits, labels)
        (g,) = torch.autograd.grad(loss, v)  # (3, S, S)
    step = step_size / 255.0
    d = g.sign() if norm == "inf" else g / max(float(g.norm()), 1e-12)
    return project(v.detach() + step * d, norm, xi)


# --- saving, viewing, applying ---------------------------------------------------------------------------------


def amplified(v: Tensor | np.ndarray) -> tuple[Image.Image, float]:
    """v (3,H,W) made visible: 0.5 + gain * v with gain = 0.5 / max|v| (so the largest value spans mid-grey to
    black or white); returns the 8-bit PIL image and the gain."""
    v = torch.as_tensor(v, dtype=torch.float32)
    peak = float(v.abs().max())
    gain = 0.5 / peak if peak > 0 else 1.0
    return tensor_to_pil(amplified_difference(v[None], torch.zeros_like(v[None]), gain)), gain


def save_perturbation(path: str | os.PathLike[str], v: Tensor, meta: Mapping[str, Any]) -> dict[str, Path]:
    """Write v as `<stem>.npy` (3,H,W) float16 (small; judge it after load_perturbation reads it back), `meta`
    (+ shape, amplification) as `<stem>.json`, and an amplified `<stem>.png` for viewing. Returns the three paths."""
    npy = Path(path).with_suffix(".npy")
    npy.parent.mkdir(parents=True, exist_ok=True)
    np.save(npy, _half_inside(v.detach().cpu().float().numpy()))
    image, gain = amplified(v.detach().cpu().float())
    png = npy.with_suffix(".png")
    image.save(png)
    side = npy.with_suffix(".json")
    side.write_text(json.dumps({**meta, "shape": list(v.shape), "png_amplification": gain}, indent=2) + "\n")
    return {"npy": npy, "json": side, "png": png}


def _half_inside(v: np.ndarray) -> np.ndarray:
    """v as float16, each value rounded toward 0 where nearest rounding would grow it, so v stays in its ball."""
    half = v.astype(np.float16)
    over = np.abs(half.astype(np.float32)) > np.abs(v)
    half[over] = np.nextafter(half[over], np.float16(0))
    return half


def load_perturbation(path: str | os.PathLike[str]) -> tuple[Tensor, dict[str, Any]]:
    """Read a saved v (3,H,W) float32 and its JSON sidecar ({} when there is none); AttackError if unusable."""
    npy = Path(path).with_suffix(".npy")
    try:
        arr = np.load(npy, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise AttackError(f"cannot read perturbation {str(npy)!r}: {err}") from None
    side = npy.with_suffix(".json")
    meta = json.loads(side.read_text()) if side.exists() else {}
    return torch.from_numpy(_checked(arr, str(npy))), meta


def read_perturbation(data: bytes, name: str = "the file") -> np.ndarray:
    """An uploaded .npy's bytes -> v (3,H,W) float32, checked like load_perturbation; AttackError if unusable."""
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except (OSError, ValueError, EOFError):
        raise AttackError(f"{name} is not a NumPy .npy file") from None
    return _checked(arr, name)


def _checked(arr: Any, name: str) -> np.ndarray:
    """Why a (3,H,W) float array: v is one RGB pattern in [0,1] pixel units; anything else is refused, as is a v
    larger than any image change (|v| > 1)."""
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu":
        raise AttackError(f"{name!r} is not a numeric (3,H,W) perturbation")
    if arr.ndim != 3 or arr.shape[0] != 3 or not np.isfinite(arr).all():
        raise AttackError(f"{name!r} is not a finite (3,H,W) perturbation (shape {arr.shape})")
    if arr.shape[1] < 8 or arr.shape[2] < 8 or np.abs(arr).max() > 1.0:
        raise AttackError(f"{name!r} is not a perturbation in [-1, 1] pixel units of at least 8x8 (shape {arr.shape})")
    return arr.astype(np.float32)


# --- several models ---------------------------------------------------------------------------------------------


@dataclass
class CrossModelTable:
    """ratio[i][j]: fooling ratio on model columns[j] of the perturbation rows[i] (the paper's Table 2)."""

    rows: list[str]
    columns: list[str]
    ratio: list[list[float]]
    n_images: int

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "columns": self.columns, "ratio": self.ratio, "n_images": self.n_images}


def cross_model_table(
    models: Sequence[nn.Module], perturbations: Mapping[str, Tensor | np.ndarray], images: Sequence[Image.Image]
) -> CrossModelTable:
    """Each perturbation (by name, usually its source model) evaluated on every model, on the same photos.

    Each model sees the photos through its own preprocess, and v resized to its input size (resize_perturbation).
    """
    ratio = [[0.0] * len(models) for _ in perturbations]
    for j, model in enumerate(models):
        x = model_inputs(model, images)  # (N, 3, S, S)
        labels = predict(model, x)
        for i, v in enumerate(perturbations.values()):
            ratio[i][j] = evaluate(model, x, v, labels)
    names = [str(getattr(m, "name", f"model{j}")) for j, m in enumerate(models)]
    return CrossModelTable(list(perturbations), names, ratio, len(images))


def load_image_set(name: str) -> tuple[list[str], list[Image.Image]]:
    """Ids and images of an image set by the study's names (images.imagesets: "samples", "imagenette" or a
    folder in any layout, labelled or not); files that cannot be read are skipped there, never fatal."""
    from images.imagesets import open_image_set

    image_set = open_image_set(name)
    if not image_set.items:
        raise AttackError(f"no readable image in {name!r}")
    return [item.id for item in image_set.items], [image_set.load(item) for item in image_set.items]


# --- for the page: numpy in and out, so Streamlit code needs no torch -----------------------------------------------


@dataclass
class Applied:
    """One photo with and without v, as `model` sees it: both 8-bit images (H,W,3) uint8 and both (K,) probability
    vectors (the second on the 8-bit x + v, as a saved PNG would be classified)."""

    clean: np.ndarray
    perturbed: np.ndarray
    probs_clean: np.ndarray
    probs_perturbed: np.ndarray

    @property
    def fooled(self) -> bool:
        return int(self.probs_clean.argmax()) != int(self.probs_perturbed.argmax())


def apply_to_photos(model: nn.Module, photos: Sequence[Image.Image], v: np.ndarray | Tensor) -> list[Applied]:
    """Each photo through the model's preprocess, v (resized to its input) added and rounded to 8 bits, both
    classified: the page's before/after view, the held-out grid and an uploaded photo alike."""
    x = model_inputs(model, photos)  # (N, 3, S, S)
    xv = apply_perturbation(x, torch.as_tensor(v, dtype=torch.float32))  # (N, 3, S, S)
    with torch.no_grad():
        p0 = torch.cat([model(quantize(x[i : i + _BATCH])).softmax(1) for i in range(0, len(x), _BATCH)])  # (N, K)
        p1 = torch.cat([model(xv[i : i + _BATCH]).softmax(1) for i in range(0, len(x), _BATCH)])  # (N, K)
    c, a = _uint8(x), _uint8(xv)  # (N, S, S, 3)
    return [Applied(c[i], a[i], p0[i].cpu().numpy(), p1[i].cpu().numpy()) for i in range(len(x))]


def _uint8(x: Tensor) -> np.ndarray:
    return (quantize(x) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()  # (N, H, W, 3)
