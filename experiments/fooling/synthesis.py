"""Fooling images grown from nothing: white-box gradient synthesis, black-box evolution, and class visualisation.

Seed 004 sec. 3.2 (Robinson & Graham): the relabelling descent started from a random Gaussian image reaches a
confident label at an RMS distortion of about 0.03. Seed 001 (Nguyen et al. 2015, "Deep Neural Networks are Easily
Fooled", arXiv:1412.1897): unrecognisable images classified with >= 99% confidence, found either with gradients or
by evolution that only queries the network. Feature visualisation (Yosinski et al. 2015, arXiv:1506.06579;
Olah et al. 2017, distill.pub/2017/feature-visualization) is the positive use of the same gradient ascent: with
jitter, blur and total-variation regularisers the image shows what the model associates with a class.

Every method is a generator of `Progress`, one per step or generation, so a page can draw the image as it grows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attacks import CONFIDENCE, AttackError, Goal, Param
from attacks.metrics import quantize, rms
from attacks.relabel import Relabel
from attacks.runner import drive
from experiments.common import check_choice, query_probabilities

INITS: tuple[str, ...] = ("gaussian", "uniform", "grey")
METHODS: tuple[str, ...] = ("gradient", "evolution", "visualize")
ENCODINGS: tuple[str, ...] = ("tile", "grid")
#: Steps (gradient, visualize) or generations (evolution) when none are given; evolution: chain mail needs ~110-130.
DEFAULT_STEPS: dict[str, int] = {"gradient": 300, "evolution": 250, "visualize": 100}
GAUSSIAN_STD = 0.2  # std of the Gaussian start around mid-grey: visible noise, rarely clipped at 0 or 1

METHOD_TITLES: dict[str, str] = {
    "gradient": "Gradient descent from noise (white-box)",
    "evolution": "Evolution strategy (black-box, queries only)",
    "visualize": "Class visualisation (regularised gradient ascent)",
}


@dataclass
class Progress:
    """One step (gradient methods) or generation (evolution) of a synthesis, for a batch of N targets.

    images: (N,3,H,W) the current (evolution: best so far) image on the 8-bit grid, exactly as it would be saved.
    probs: (N,K) probabilities of those 8-bit images. distortion: (N,) RMS from the start image.
    queries: images the model has classified so far, per target (gradient methods: forward+backward passes).
    success: (N,) the target is the top class with at least the requested confidence.
    """

    index: int
    images: Tensor
    probs: Tensor
    targets: Tensor
    distortion: Tensor
    queries: int
    done: bool
    success: Tensor

    @property
    def target_probability(self) -> Tensor:
        return self.probs.gather(1, self.targets[:, None])[:, 0]  # (N,)


def start_image(init: str, size: int, *, n: int = 1, seed: int = 0) -> Tensor:
    """(n,3,size,size) starting images on the 8-bit grid: Gaussian noise, uniform noise, or flat mid-grey."""
    check_choice("init", init, INITS)
    gen = torch.Generator().manual_seed(seed)
    shape = (n, 3, size, size)
    if init == "gaussian":
        x = 0.5 + GAUSSIAN_STD * torch.randn(shape, generator=gen)
    elif init == "uniform":
        x = torch.rand(shape, generator=gen)
    else:
        x = torch.full(shape, 0.5)
    return quantize(x)  # (n, 3, size, size)


def _targets(model: nn.Module, targets: Sequence[int]) -> Tensor:
    if not targets:
        raise AttackError("choose at least one target class")
    k = len(getattr(model, "categories", ())) or 1000
    for t in targets:
        if not 0 <= int(t) < k:
            raise AttackError(f"target class {t} is out of range 0..{k - 1}")
    return torch.tensor([int(t) for t in targets], dtype=torch.long)


def _device(model: nn.Module) -> torch.device:
    return next(iter(model.buffers()), next(iter(model.parameters()), torch.empty(0))).device


def _met(probs: Tensor, targets: Tensor, confidence: float) -> Tensor:
    return Goal(probs.argmax(1), targets, confidence).met(probs)  # (N,)


def synthesize_gradient(
    model: nn.Module,
    targets: Sequence[int],
    *,
    init: str = "gaussian",
    confidence: float = 0.99,
    steps: int = 300,
    step_size: float = 1.0,
    seed: int = 0,
    start: Tensor | None = None,
) -> Iterator[Progress]:
    """White-box: the paper's relabelling descent (sign gradient of the target's cross-entropy, 8-bit checked)
    started from noise, with no RMS cap, until p(target) >= confidence on the 8-bit image or `steps` run out.

    Reuses attacks.relabel.Relabel unchanged, so the page shows exactly the engine's iteration. One row per target.
    """
    confidence = CONFIDENCE.validate(confidence)
    tgt = _targets(model, targets)
    attack = Relabel(step_size=step_size, steps=steps, max_rms=1.0)
    size = int(getattr(model, "input_size", 224))
    dev = _device(model)
    x0 = (start if start is not None else start_image(init, size, n=len(tgt), seed=seed)).to(dev)  # (N, 3, S, S)
    if x0.shape[0] != len(tgt):
        x0 = x0[:1].expand(len(tgt), -1, -1, -1).contiguous()
    tgt = tgt.to(dev)
    source = query_probabilities(model, x0).argmax(1)  # (N,)
    goal = Goal(source, tgt, confidence)
    for step in drive(attack, model, x0, goal, seeds=seed):
        yield Progress(
            index=step.index,
            images=step.x_adv,
            probs=step.probs,
            targets=tgt,
            distortion=step.distortion,
            queries=step.index + 1,
            done=bool(step.done.all()),
            success=step.success,
        )


def _gaussian_kernel(sigma: float, device: torch.device) -> Tensor:
    radius = max(1, int(3 * sigma + 0.5))
    coords = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()  # (2r+1,)


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of (N,3,H,W), reflect-padded so the borders do not darken."""
    if sigma <= 0:
        return x
    g = _gaussian_kernel(sigma, x.device)
    r = len(g) // 2
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def total_variation(x: Tensor) -> Tensor:
    """(N,3,H,W) -> (N,) mean absolute difference of neighbouring pixels: small for smooth images."""
    dh = (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().flatten(1).mean(1)
    dw = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().flatten(1).mean(1)
    return dh + dw


def visualize_class(
    model: nn.Module,
    targets: Sequence[int],
    *,
    init: str = "grey",
    steps: int = 100,
    step_size: float = 3.0,
    jitter: int = 8,
    blur_sigma: float = 0.6,
    blur_every: int = 4,
    tv_weight: float = 1.0,
    decay: float = 0.002,
    seed: int = 0,
) -> Iterator[Progress]:
    """Gradient ascent on the target's logit with the image priors of feature visualisation.

    jitter: random roll of up to this many pixels before each forward, so no single pixel pattern is rewarded;
    blur: a Gaussian blur (sigma) every `blur_every` steps removes high frequencies the model loves and we cannot
    see; tv_weight: total-variation penalty (per unit of the normalised logit gradient); decay: pulls pixels toward
    grey. With all of them at 0 this is plain logit ascent, i.e. another fooling image.
    Why the logit and not the probability: raising p(target) can be done by lowering every other class; the logit
    has to be earned by the class's own evidence.
    """
    steps = Param("steps", 1, 1, 10000, integer=True).validate(steps)
    step_size = Param("step_size", 0.01, 0.01, 64.0).validate(step_size)
    jitter = Param("jitter", 0, 0, 64, integer=True).validate(jitter)
    blur_sigma = Param("blur_sigma", 0.0, 0.0, 5.0).validate(blur_sigma)
    blur_every = Param("blur_every", 0, 0, 1000, integer=True).validate(blur_every)
    tv_weight = Param("tv_weight", 0.0, 0.0, 1000.0).validate(tv_weight)
    decay = Param("decay", 0.0, 0.0, 0.5).validate(decay)
    tgt = _targets(model, targets)
    size = int(getattr(model, "input_size", 224))
    dev = _device(model)
    tgt = tgt.to(dev)
    x0 = start_image(init, size, n=len(tgt), seed=seed).to(dev)  # (N, 3, S, S)
    x = x0.clone()
    gen = torch.Generator().manual_seed(seed)
    for i in range(steps + 1):
        shown = quantize(x)
        probs = query_probabilities(model, shown)  # (N, K)
        done = i == steps
        yield Progress(i, shown, probs, tgt, rms(shown, x0), i, done, _met(probs, tgt, 0.0))
        if done:
            return
        dy, dx = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=gen)) if jitter else (0, 0)
        xr = x.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = model(torch.roll(xr, shifts=(dy, dx), dims=(2, 3)))  # (N, K)
            logit = logits.gather(1, tgt[:, None])[:, 0]  # (N,)
            (g_logit,) = torch.autograd.grad(logit.sum(), xr)
            tv = total_variation(xr)  # (N,)
            (g_tv,) = torch.autograd.grad(tv.sum(), xr) if tv_weight else (torch.zeros_like(xr),)
        scale = g_logit.abs().flatten(1).mean(1).clamp_min(1e-12).view(-1, 1, 1, 1)  # (N, 1, 1, 1)
        tv_scale = g_tv.abs().flatten(1).mean(1).clamp_min(1e-12).view(-1, 1, 1, 1)
        direction = g_logit / scale - tv_weight * g_tv / tv_scale  # (N, 3, S, S)
        x = x + step_size / 255.0 * direction
        x = 0.5 + (x - 0.5) * (1.0 - decay)
        if blur_every and blur_sigma and (i + 1) % blur_every == 0:
            x = gaussian_blur(x, blur_sigma)
        x = x.clamp(0.0, 1.0).detach()


def _encode(genes: Tensor, encoding: str, size: int) -> Tensor:
    """(P,3,r,r) genes -> (P,3,size,size) pixel offsets. tile: the r x r tile repeated over the image;
    grid: the r x r grid upsampled bilinearly (a coarse direct encoding)."""
    if encoding == "tile":
        r = genes.shape[-1]
        reps = -(-size // r)
        return genes.repeat(1, 1, reps, reps)[..., :size, :size]
    return F.interpolate(genes, size=(size, size), mode="bilinear", align_corners=False)


def evolve(
    model: nn.Module,
    target: int,
    *,
    init: str = "grey",
    confidence: float = 0.99,
    generations: int = 100,
    population: int = 10,
    sigma: float = 0.1,
    learning_rate: float = 0.05,
    encoding: str = "tile",
    resolution: int = 16,
    seed: int = 0,
    start: Tensor | None = None,
) -> Iterator[Progress]:
    """Black-box: a natural evolution strategy (NES; Wierstra et al. 2014, as used for black-box attacks by
    Ilyas et al. 2018, arXiv:1804.08598) on a direct pixel encoding. The model is only *queried*: every image is
    rounded to 8 bits and classified under torch.no_grad, and only p(target) is used - no gradient of the model.

    Each generation samples `population` antithetic mutations of the genes (N(0, sigma^2) per gene), scores them by
    log p(target) (ranked, so the step does not depend on the score's scale), estimates the search gradient from
    the scores and moves the genes `learning_rate` along it; the best image seen so far is reported. Genes are an
    r x r RGB tile repeated over the image (default; CNNs respond strongly to repeated textures, as Nguyen et al.'s
    evolved images show) or an r x r grid upsampled. Queries per generation: population + 1 (the current image).
    """
    confidence = CONFIDENCE.validate(confidence)
    generations = Param("generations", 1, 1, 100000, integer=True).validate(generations)
    population = Param("population", 2, 2, 1000, integer=True).validate(population)
    if population % 2:
        raise AttackError(f"population must be even (antithetic pairs), got {population}")
    sigma = Param("sigma", 1e-4, 1e-4, 1.0).validate(sigma)
    learning_rate = Param("learning_rate", 1e-4, 1e-4, 1.0).validate(learning_rate)
    check_choice("encoding", encoding, ENCODINGS)
    size = int(getattr(model, "input_size", 224))
    resolution = Param("resolution", 1, 1, size, integer=True).validate(resolution)
    (tgt,) = _targets(model, [target])
    dev = _device(model)
    x0 = (start if start is not None else start_image(init, size, seed=seed)).to(dev)[:1]  # (1, 3, S, S)
    gen = torch.Generator().manual_seed(seed)
    genes = torch.zeros(1, 3, resolution, resolution)
    half = population // 2
    queries = 0

    def score(g: Tensor) -> tuple[Tensor, Tensor]:
        nonlocal queries
        images = quantize(x0 + _encode(g, encoding, size).to(dev))  # (P, 3, S, S)
        probs = query_probabilities(model, images)  # (P, K)
        queries += len(images)
        return images, probs

    best_img, best_probs = score(genes)
    tgt_t = torch.tensor([int(tgt)], device=dev)
    for gen_index in range(generations + 1):
        ok = _met(best_probs, tgt_t, confidence)
        done = bool(ok[0]) or gen_index == generations
        yield Progress(gen_index, best_img, best_probs, tgt_t, rms(best_img, x0), queries, done, ok)
        if done:
            return
        noise = torch.randn((half, 3, resolution, resolution), generator=gen)  # (P/2, 3, r, r)
        candidates = torch.cat([genes + sigma * noise, genes - sigma * noise])  # (P, 3, r, r)
        cand_imgs, cand_probs = score(candidates)
        fitness = cand_probs[:, tgt].clamp_min(1e-30).log().cpu()  # (P,)
        ranks = fitness.argsort().argsort().float()
        shaped = ranks / (population - 1) - 0.5  # (P,) centred ranks in [-0.5, 0.5]
        grad = ((shaped[:half] - shaped[half:]).view(-1, 1, 1, 1) * noise).sum(0, keepdim=True) / (population * sigma)
        genes = (genes + learning_rate * grad / grad.abs().mean().clamp_min(1e-12)).clamp(-1.0, 1.0)
        cur_img, cur_probs = score(genes)
        pool_imgs = torch.cat([best_img, cand_imgs, cur_img])  # (P+2, 3, S, S)
        pool_probs = torch.cat([best_probs, cand_probs, cur_probs])  # (P+2, K)
        j = int(pool_probs[:, tgt].argmax())
        best_img, best_probs = pool_imgs[j : j + 1], pool_probs[j : j + 1]
