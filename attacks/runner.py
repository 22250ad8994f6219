"""Running an attack to the end and verifying its result on the 8-bit image, for one image and many targets.

The UI consumes Steps itself; the CLI, experiments and benchmarks call `attack_targets`, which batches the
targets (one forward/backward for a chunk of targets), exhausts the generators and verifies every result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from attacks.base import Attack, AttackError, Goal, Step
from attacks.metrics import linf, psnr, quantize, rms, ssim
from models.classifier import Classifier, pil_to_tensor, tensor_to_pil


@dataclass
class Verdict:
    """The classification of an image exactly as saved, and its distortion from the original."""

    index: int
    label: str
    probability: float
    target_probability: float | None
    success: bool
    rms_distortion: float
    linf: float
    l2: float
    psnr: float
    ssim: float
    max_change_255: int


@dataclass
class AttackResult:
    """One finished attack (one image, one target): what `result.json` holds, plus the images."""

    model: str
    attack: str
    parameters: dict[str, Any]
    source: dict[str, Any]
    target: dict[str, Any] | None
    final: dict[str, Any]
    success: bool
    iterations: int
    rms_distortion: float
    linf: float
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)
    original: Image.Image | None = field(default=None, repr=False)
    adversarial: Image.Image | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "attack": self.attack,
            "parameters": self.parameters,
            "source": self.source,
            "target": self.target,
            "final": self.final,
            "success": self.success,
            "iterations": self.iterations,
            "rms_distortion": self.rms_distortion,
            "linf": self.linf,
            "seconds": self.seconds,
            "metrics": self.metrics,
        }


def verify(
    model: Classifier,
    original: Image.Image,
    adversarial: Image.Image,
    *,
    source: int,
    target: int | None,
    confidence: float = 0.0,
) -> Verdict:
    """Classify the 8-bit adversarial image (as loaded from its PNG) and measure it against the original.

    Success: targeted - the top class is the target (with at least `confidence`); untargeted - the top class
    differs from the source.
    """
    return verify_many(model, original, [adversarial], source=source, targets=[target], confidence=confidence)[0]


def verify_many(
    model: Classifier,
    original: Image.Image,
    adversarials: list[Image.Image],
    *,
    source: int,
    targets: list[int | None],
    confidence: float = 0.0,
) -> list[Verdict]:
    """`verify` for several 8-bit images of one original (one per target), classified in one batched pass."""
    x0 = pil_to_tensor(original).to(model.device)  # (1, 3, H, W)
    xa = torch.cat([pil_to_tensor(a) for a in adversarials]).to(model.device)  # (N, 3, H, W)
    if x0.shape[1:] != xa.shape[1:]:
        raise AttackError(f"images differ in size: {tuple(x0.shape[2:])} vs {tuple(xa.shape[2:])}")
    probs = model.probabilities(xa)  # (N, K)
    top = probs.argmax(dim=1)  # (N,)
    r, li, ps, ss = rms(xa, x0), linf(xa, x0), psnr(xa, x0), ssim(xa, x0)  # (N,) each
    l2s = (xa - x0).flatten(1).norm(dim=1)  # (N,)
    verdicts = []
    for j, target in enumerate(targets):
        k = int(top[j])
        tp = float(probs[j, target]) if target is not None else None
        ok = k != source if target is None else k == target and (tp or 0.0) >= confidence
        verdicts.append(
            Verdict(
                index=k,
                label=model.categories[k],
                probability=float(probs[j, k]),
                target_probability=tp,
                success=bool(ok),
                rms_distortion=float(r[j]),
                linf=float(li[j]),
                l2=float(l2s[j]),
                psnr=float(ps[j]),
                ssim=float(ss[j]),
                max_change_255=int(torch.round(li[j] * 255)),
            )
        )
    return verdicts


def run_to_end(steps: Iterator[Step], on_step: Callable[[Step], None] | None = None) -> tuple[Step, Tensor]:
    """Exhaust an attack generator. Returns the last Step and, per sample, the index of its last active step."""
    last: Step | None = None
    finished_at: Tensor | None = None
    for step in steps:
        if finished_at is None:
            finished_at = torch.zeros_like(step.done, dtype=torch.long)
        newly = step.done & (finished_at == 0)
        finished_at[newly] = step.index
        last = step
        if on_step is not None:
            on_step(step)
    if last is None or finished_at is None:
        raise AttackError("the attack yielded no step")
    return last, finished_at


def default_chunk(device: torch.device) -> int:
    """Targets per forward/backward. CPU: per-image cost is lowest near 8 (larger batches fall out of cache)."""
    return 128 if device.type == "cuda" else 8


def attack_targets(
    model: Classifier,
    original: Image.Image,
    attack: Attack,
    targets: list[int] | None,
    *,
    seed: int = 0,
    confidence: float = 0.0,
    chunk: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[AttackResult]:
    """Attack one preprocessed image toward each target (None: one untargeted run), batched in chunks.

    `original` must already be the model input (see Classifier.preprocess). Every result is verified on its
    8-bit image. `progress(done, total)` is called after each chunk.
    """
    x0 = pil_to_tensor(original).to(model.device)  # (1, 3, H, W)
    probs0 = model.probabilities(x0)[0]  # (K,)
    source = int(probs0.argmax())
    goals: list[int | None] = list(targets) if targets else [None]
    if any(t == source for t in goals if t is not None):
        raise AttackError(f"the target equals the image's current class ({model.categories[source]})")
    chunk = chunk or default_chunk(model.device)
    results: list[AttackResult] = []
    for lo in range(0, len(goals), chunk):
        part = goals[lo : lo + chunk]
        n = len(part)
        x = x0.expand(n, -1, -1, -1).contiguous()  # (n, 3, H, W)
        src = torch.full((n,), source, device=model.device, dtype=torch.long)
        tgt = None if part[0] is None else torch.tensor(part, device=model.device, dtype=torch.long)
        goal = Goal(src, tgt, confidence)
        start = time.perf_counter()
        last, finished_at = run_to_end(attack.run(model, x, goal, seed=seed))
        seconds = (time.perf_counter() - start) / n  # batch time shared equally
        advs = [tensor_to_pil(quantize(last.x_adv[j : j + 1])) for j in range(n)]
        verdicts = verify_many(model, original, advs, source=source, targets=part, confidence=confidence)
        for j, (t, adv, v) in enumerate(zip(part, advs, verdicts, strict=True)):
            results.append(
                AttackResult(
                    model=model.name,
                    attack=attack.name,
                    parameters={**attack.hparams, "seed": seed, "confidence": confidence},
                    source={"index": source, "label": model.categories[source], "probability": float(probs0[source])},
                    target=None if t is None else {"index": t, "label": model.categories[t]},
                    final={
                        "index": v.index,
                        "label": v.label,
                        "probability": v.probability,
                        "target_probability": v.target_probability,
                    },
                    success=v.success,
                    iterations=int(finished_at[j]),
                    rms_distortion=v.rms_distortion,
                    linf=v.linf,
                    seconds=seconds,
                    metrics={"l2": v.l2, "psnr": v.psnr, "ssim": v.ssim, "max_change_255": v.max_change_255},
                    original=original,
                    adversarial=adv,
                )
            )
        if progress is not None:
            progress(min(lo + chunk, len(goals)), len(goals))
    return results


def summarize(results: list[AttackResult]) -> dict[str, Any]:
    """summary.json for a many-target run: success rate, mean iterations and distortion."""
    ok = [r for r in results if r.success]
    return {
        "count": len(results),
        "successes": len(ok),
        "success_rate": len(ok) / len(results) if results else 0.0,
        "mean_iterations": float(np.mean([r.iterations for r in results])) if results else 0.0,
        "mean_rms_distortion": float(np.mean([r.rms_distortion for r in results])) if results else 0.0,
        "mean_rms_distortion_successful": float(np.mean([r.rms_distortion for r in ok])) if ok else None,
        "seconds": float(sum(r.seconds for r in results)),
    }
