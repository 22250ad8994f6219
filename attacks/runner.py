"""Running an attack to the end and verifying its result on the 8-bit image, for one image and many targets.

The UI consumes Steps itself; the CLI, experiments and benchmarks call `attack_targets`, which batches the
targets (one forward/backward for a chunk of targets), exhausts the generators and verifies every result, and
`save_result`, which writes the PNGs and verifies the file read back.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from attacks.base import CONFIDENCE, DEFAULT_CONFIDENCE, Attack, AttackError, Goal, Step
from attacks.metrics import amplified_difference, linf, psnr, quantize, rms, ssim
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
    """One finished attack (one image, one goal), verified on its 8-bit image by the plain model.

    The one result type of the project: the CLI's result.json, the transfer and robustness experiments and the
    pages all read it. `to_json` is what result.json holds.
    """

    model: str
    attack: str
    parameters: dict[str, Any]
    categories: tuple[str, ...] = field(repr=False)
    source: int
    source_probability: float
    target: int | None
    confidence: float
    verdict: Verdict
    iterations: int
    seconds: float
    original: Image.Image = field(repr=False)
    adversarial: Image.Image = field(repr=False)
    #: Images the attack asked the model about (black-box attacks, Step.queries); None for white-box attacks.
    queries: int | None = None

    @property
    def success(self) -> bool:
        return self.verdict.success

    def to_json(self) -> dict[str, Any]:
        v = self.verdict
        return {
            "model": self.model,
            "attack": self.attack,
            "parameters": self.parameters,
            "confidence": self.confidence,
            "source": {
                "index": self.source,
                "label": self.categories[self.source],
                "probability": self.source_probability,
            },
            "target": None if self.target is None else {"index": self.target, "label": self.categories[self.target]},
            "final": {
                "index": v.index,
                "label": v.label,
                "probability": v.probability,
                "target_probability": v.target_probability,
            },
            "success": v.success,
            "iterations": self.iterations,
            "queries": self.queries,
            "rms_distortion": v.rms_distortion,
            "linf": v.linf,
            "max_change_255": v.max_change_255,
            "seconds": self.seconds,
            # PSNR of an unchanged image is infinite, which JSON cannot hold: null there.
            "metrics": {"l2": v.l2, "psnr": _finite(v.psnr), "ssim": v.ssim, "max_change_255": v.max_change_255},
        }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


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

    Success is `Goal.met`: the top class is the target (untargeted: not the source) with at least `confidence`.
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
        tgt = None if target is None else torch.tensor([target], device=probs.device)
        ok = Goal(torch.tensor([source], device=probs.device), tgt, confidence).met(probs[j : j + 1])[0]
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


def sample_seed(seed: int, *keys: object) -> int:
    """A sample's own random seed from the run's seed and what identifies the sample (image, target).

    Why: a random start drawn for a whole batch would make a pair's row depend on its place in the batch, and the
    batch size depends on free memory. Derived by hashing, so it is the same in every process and every batch.
    """
    text = repr((int(seed), *keys)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") & (2**63 - 1)


@dataclass
class Finished:
    """A batch run to its end: the last Step and, per sample, the index of the step at which it stopped."""

    last: Step
    stopped_at: Tensor  # (N,) long, on the CPU

    @property
    def x_adv(self) -> Tensor:
        """(N, 3, H, W) the images exactly as they will be saved (8-bit)."""
        return quantize(self.last.x_adv)


def drive(
    attack: Attack,
    model: nn.Module,
    x: Tensor,
    goal: Goal,
    *,
    seeds: int | Sequence[int] = 0,
    attacked: nn.Module | None = None,
    judge: nn.Module | None = None,
) -> Iterator[Step]:
    """The one place `attack.run` is called: the Steps of one batch, for a live view or `run_batch`.

    `model` is the plain classifier, the default judge of success and early stopping on the 8-bit image; the
    gradient flows through `attacked` when given (an ensemble, input diversity, an EOT view), else `model`.
    `judge` replaces `model` for deciding when a sample may stop (an EOT attack judged on fixed views, see
    EOT(fixed=True)). `seeds`: one per sample (see sample_seed), or one for all; a sample's random draws depend only
    on its own seed, never on its place in the batch.
    """
    n = x.shape[0]
    per_sample = [int(seeds)] * n if isinstance(seeds, int) else [int(s) for s in seeds]
    if len(per_sample) != n:
        raise AttackError(f"{len(per_sample)} seeds for {n} samples")
    through = model if attacked is None else attacked
    return attack.run(through, x, goal, seed=per_sample, judge=model if judge is None else judge)


def run_to_end(steps: Iterator[Step], on_step: Callable[[Step], None] | None = None) -> Finished:
    """Exhaust a Step stream; each sample's stop index is the index of the first Step that shows it done."""
    last: Step | None = None
    stopped: Tensor | None = None
    for step in steps:
        done = step.done.cpu()  # (N,)
        if stopped is None:
            stopped = torch.full(done.shape, -1, dtype=torch.long)  # (N,) -1: still running
        stopped[done & (stopped < 0)] = step.index
        last = step
        if on_step is not None:
            on_step(step)
    if last is None or stopped is None:
        raise AttackError("the attack yielded no step")
    stopped[stopped < 0] = last.index
    return Finished(last, stopped)


def run_batch(
    attack: Attack,
    model: nn.Module,
    x: Tensor,
    goal: Goal,
    *,
    seeds: int | Sequence[int] = 0,
    attacked: nn.Module | None = None,
    judge: nn.Module | None = None,
    on_step: Callable[[Step], None] | None = None,
) -> Finished:
    """`drive` a batch to its end: what every experiment that attacks many images or pairs at once calls."""
    return run_to_end(drive(attack, model, x, goal, seeds=seeds, attacked=attacked, judge=judge), on_step)


def default_chunk(device: torch.device) -> int:
    """Targets per forward/backward. CPU: per-image cost is lowest near 8 (larger batches fall out of cache).

    CUDA: the step's fixed cost is spread over the batch, so as large as memory allows: Lite0 relabel on an H100 gave
    119 / 133 / 203 / 241 rows/s at 32 / 128 / 256 / 512 pairs (same verdicts; benchmarks/bench_sweep_speed.py) and
    1024 ran out of its 80 GB. So a power of two with ~128 MiB of free memory per pair, 8 to 512 (512 on an 80 GB
    card, 128 on 24 GB); 256 when the GPU is not on this machine (a Ray driver planning for its workers).
    """
    if device.type != "cuda":
        return 8
    if not torch.cuda.is_available():
        return 256
    free, _ = torch.cuda.mem_get_info(device)
    return int(min(512, max(8, 2 ** int(math.log2(max(free, 1) / 2**27)))))


def attack_targets(
    model: Classifier,
    original: Image.Image,
    attack: Attack,
    targets: Sequence[int | None] | None,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    attacked: nn.Module | None = None,
    judge: nn.Module | None = None,
    seed: int = 0,
    seed_keys: tuple[object, ...] = (),
    chunk: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_step: Callable[[Step], None] | None = None,
) -> list[AttackResult]:
    """Attack the 8-bit model input `original` toward each target ([None] or None: one untargeted run), batched
    in chunks; the one way to run an attack to the end on an image.

    `model` is the plain classifier: it gives the source class, judges success and early stopping on the 8-bit
    image, and verifies every result. The gradient flows through `attacked` when given (a MeanLogitEnsemble, input
    diversity or an EOT wrapper), else through `model`. `judge` replaces `model` only for deciding when a sample
    may stop (an EOT attack stops when its fixed-view estimate of the expectation is met, see EOT(fixed=True));
    the verdict is still the plain model's on the saved image. `original` must already be the model input (see
    Classifier.preprocess). `progress(done, total)` is called after each chunk, `on_step(step)` at every Step.
    Each target's random draws come from `sample_seed(seed, *seed_keys, target)` (a study passes its image id), so
    a result never depends on the chunk it ran in.
    """
    confidence = CONFIDENCE.validate(confidence)
    goals: list[int | None] = list(targets) if targets else [None]
    if None in goals and len(goals) > 1:
        raise AttackError("an untargeted run takes no other target")
    attack.check_targeted(goals[0] is not None)
    x0 = pil_to_tensor(original).to(model.device)  # (1, 3, H, W)
    probs0 = model.probabilities(x0)[0]  # (K,)
    source = int(probs0.argmax())
    if source in goals:
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
        seeds = [sample_seed(seed, *seed_keys, t) for t in part]
        end = run_batch(attack, model, x, goal, seeds=seeds, attacked=attacked, judge=judge, on_step=on_step)
        seconds = (time.perf_counter() - start) / n  # batch time shared equally
        x_adv = end.x_adv  # (n, 3, H, W)
        queries = None if end.last.queries is None else end.last.queries.cpu()  # (n,) final counts
        advs = [tensor_to_pil(x_adv[j : j + 1]) for j in range(n)]
        verdicts = verify_many(model, original, advs, source=source, targets=part, confidence=confidence)
        for j, (t, adv, v) in enumerate(zip(part, advs, verdicts, strict=True)):
            results.append(
                AttackResult(
                    model=getattr(attacked, "name", model.name) if attacked is not None else model.name,
                    attack=attack.name,
                    parameters={**attack.hparams, "seed": seed, "early_stop": attack.early_stop},
                    categories=tuple(model.categories),
                    source=source,
                    source_probability=float(probs0[source]),
                    target=t,
                    confidence=confidence,
                    verdict=v,
                    iterations=int(end.stopped_at[j]),
                    seconds=seconds,
                    original=original,
                    adversarial=adv,
                    queries=None if queries is None else int(queries[j]),
                )
            )
        if progress is not None:
            progress(min(lo + chunk, len(goals)), len(goals))
    return results


def save_png(image: Image.Image, path: Path) -> Image.Image:
    """Save an 8-bit image as PNG and return it as read back from the file, refusing a file that differs."""
    image.save(path)
    with Image.open(path) as saved:
        back = saved.convert("RGB")
    if back.tobytes() != image.convert("RGB").tobytes():
        raise RuntimeError(f"{path} does not read back as the image written")
    return back


def save_result(result: AttackResult, model: Classifier, folder: Path, *, gain: float = 10.0) -> dict[str, Any]:
    """Write original.png, adversarial.png, difference.png and result.json, and verify the verdict again on the
    adversarial PNG as read back from disk (the one honest check: the file is what a user gets)."""
    folder.mkdir(parents=True, exist_ok=True)
    original = save_png(result.original, folder / "original.png")
    saved = save_png(result.adversarial, folder / "adversarial.png")
    again = verify(model, original, saved, source=result.source, target=result.target, confidence=result.confidence)
    if again.success != result.success or again.index != result.verdict.index:
        raise RuntimeError("the saved PNG classifies differently from the in-memory 8-bit image")
    x0, xa = pil_to_tensor(original), pil_to_tensor(saved)  # (1, 3, H, W) each
    tensor_to_pil(amplified_difference(xa, x0, gain)).save(folder / "difference.png")
    data = result.to_json()
    (folder / "result.json").write_text(json.dumps(data, indent=2, allow_nan=False))
    return data


def summarize(results: list[AttackResult]) -> dict[str, Any]:
    """summary.json for a many-target run: success rate, mean iterations and distortion."""
    ok = [r for r in results if r.success]
    queries = [r.queries for r in results if r.queries is not None]
    return {
        "count": len(results),
        "successes": len(ok),
        "success_rate": len(ok) / len(results) if results else 0.0,
        "mean_iterations": float(np.mean([r.iterations for r in results])) if results else 0.0,
        "mean_rms_distortion": float(np.mean([r.verdict.rms_distortion for r in results])) if results else 0.0,
        "mean_rms_distortion_successful": float(np.mean([r.verdict.rms_distortion for r in ok])) if ok else None,
        "mean_queries": float(np.mean(queries)) if queries else None,
        "seconds": float(sum(r.seconds for r in results)),
    }
