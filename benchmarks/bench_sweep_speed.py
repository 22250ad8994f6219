"""What makes the susceptibility study faster on one device: the speed knobs measured side by side on the same pairs.

The issue's list, each run on the same (image, target) pairs of the shipped study's images and compared with the
float32 baseline, row for row: batch size (pairs per forward/backward), channels-last memory, bf16 autocast for the
attack's forward/backward (CUDA; every step and the final 8-bit image are still judged by the float32 model),
`torch.compile`, and one batch refilled as its pairs end (the sweep's default for gradient attacks) against one
batch per unit that shrinks as its pairs stop. Prints rows (attacks) per second, mean iterations, and how many
verdicts equal the baseline's; a knob is worth keeping only when it is faster and changes no verdict. A benchmark
that prints figures, never a test.

With --estimate it also times one forward/backward step of other ImageNet networks at random weights (the cost of
an attack step does not depend on the weights; GoogLeNet is the paper's model) and turns the measured rows per second
and mean iterations into the time of the full study: 50,000 validation images x 999 targets, on 1 and 8 GPUs.

    python benchmarks/bench_sweep_speed.py [--device cuda] [--targets 100] [--chunks 1,32,128,256,512] [--estimate]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments.study.store import SweepStore  # noqa: E402
from experiments.study.sweep import (  # noqa: E402
    Study,
    Unit,
    iter_units,
    prepare_sweep,
    run_unit,
    run_units_refilled,
)
from images.imagesets import Selection, samples_set  # noqa: E402
from models import load_model  # noqa: E402

FULL_STUDY = 50_000 * 999  # every ILSVRC2012 validation image toward every other class (seed 000)


class Autocast(nn.Module):
    """The model's forward under bf16 autocast, logits back in float32 (the gradient's path only)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
            return self.model(x).float()  # (N, K)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, units: list[Unit], work: Callable[[Unit], list]) -> tuple[float, list]:
    """(seconds, rows) for all units; the first unit runs once before, untimed (warm-up, compilation)."""
    work(units[0])
    sync(device)
    start = time.perf_counter()
    rows = [row for unit in units for row in work(unit)]
    sync(device)
    return time.perf_counter() - start, rows


def step_rate(net: nn.Module, device: torch.device, batch: int, bf16: bool, repeats: int = 10) -> float:
    """Images per second of one attack step (forward + input gradient) at 224x224."""
    x = torch.rand(batch, 3, 224, 224, device=device, requires_grad=True)  # (B, 3, 224, 224)
    target = torch.zeros(batch, dtype=torch.long, device=device)  # (B,)

    def once() -> None:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = nn.functional.cross_entropy(net(x).float(), target)
        torch.autograd.grad(loss, x)

    once()
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        once()
    sync(device)
    return batch * repeats / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--images", type=int, default=None, help="only this many of the packaged images")
    ap.add_argument("--targets", type=int, default=100, help="random:N target set (seed 0, as the shipped study)")
    ap.add_argument("--chunks", default="1,32,128,256,512", help="pairs per batch to compare (1: one at a time)")
    ap.add_argument("--one-at-a-time-pairs", type=int, default=64, help="pairs timed at chunk 1 (it is slow)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument(
        "--variants",
        default="refill,channels-last,bf16,compile",
        help="knobs to compare at the fastest chunk (refill: one batch kept full across units; channels-last took "
        "312 s for 2599 rows on an H100: skip it there)",
    )
    ap.add_argument("--estimate", action="store_true", help="time other networks' steps; estimate the full study")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = load_model(args.model, device=device)
    study = Study(
        model=args.model,
        image_set="samples",
        attack="relabel",
        selection=Selection(limit=args.images),
        targets=f"random:{args.targets}",
        max_rms=0.03,
    )
    image_set = samples_set()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} torch threads"
    res = time.get_clock_info("perf_counter").resolution
    print(f"{args.model} on {name}; torch {torch.__version__}; timer time.perf_counter (resolution {res:.0e} s)")
    with tempfile.TemporaryDirectory() as tmp, SweepStore.open(Path(tmp) / "plan.db", study.params()) as store:
        sweep = prepare_sweep(model, image_set, study, store)
        try:
            while True:
                progress = next(sweep)
                if progress.stage == "plan":
                    print(progress.message, f"; {progress.total} pairs")
        except StopIteration as stop:
            pairs, _ = stop.value
    attack = study.make_attack()

    def units(chunk: int, limit: int | None = None) -> list[Unit]:
        return list(iter_units(model, image_set, pairs[:limit], chunk))

    verdicts: dict[str, dict[tuple[str, int], bool]] = {}
    rates: dict[str, float] = {}

    def report(label: str, seconds: float, rows: list) -> None:
        rates[label] = len(rows) / seconds
        verdicts[label] = {(r.image_id, r.target): r.success for r in rows}
        first = next(iter(verdicts))  # the baseline: the first run (float32, chunk 128 when it is measured)
        same = sum(verdicts[first].get(k) == v for k, v in verdicts[label].items())
        iters = sum(r.iterations for r in rows) / len(rows)
        ok = sum(r.success for r in rows)
        print(
            f"{label:>34}: {len(rows):5d} rows in {seconds:7.2f} s = {rates[label]:8.2f} rows/s; "
            f"mean iterations {iters:5.2f}; successes {ok}; verdicts equal to {first}'s: {same}/{len(rows)}",
            flush=True,
        )

    chunks = [int(c) for c in args.chunks.split(",")]
    order = ([128] if 128 in chunks else []) + [c for c in chunks if c != 128]
    for chunk in order:
        limit = args.one_at_a_time_pairs if chunk == 1 else None
        seconds, rows = timed(device, units(chunk, limit), lambda u: run_unit(model, u, study, attack))
        report(f"float32, chunk {chunk}", seconds, rows)
    best = max((c for c in chunks if c > 1), key=lambda c: rates[f"float32, chunk {c}"])
    print(f"fastest float32 chunk: {best}")
    batch = units(best)

    variants = set(args.variants.split(","))
    if "refill" in variants:  # the sweep's default: a slot whose pair ends takes the next pair (attacks.refill)
        for _ in run_units_refilled(model, batch[:1], study, attack, size=best):  # warm-up, untimed
            pass
        sync(device)
        start = time.perf_counter()
        rows = [r for _, unit_rows in run_units_refilled(model, batch, study, attack, size=best) for r in unit_rows]
        sync(device)
        report(f"refilled batch of {best}", time.perf_counter() - start, rows)
    if "channels-last" in variants:
        variant = type(model)(model.spec, model.spec.build(True)).to(device).use_channels_last()
        seconds, rows = timed(device, batch, lambda u: run_unit(variant, u, study, attack))
        report(f"channels-last, chunk {best}", seconds, rows)
    if "bf16" in variants and device.type == "cuda":
        fast = Autocast(model)
        seconds, rows = timed(device, batch, lambda u: run_unit(model, u, study, attack, attacked=fast))
        report(f"bf16 attack, fp32 judge, chunk {best}", seconds, rows)
    if "compile" in variants:
        compiled = torch.compile(model, dynamic=True)
        start = time.perf_counter()
        seconds, rows = timed(device, batch, lambda u: run_unit(model, u, study, attack, attacked=compiled))
        report(f"torch.compile, fp32 judge, chunk {best}", seconds, rows)
        print(f"  (compilation and warm-up unit: {time.perf_counter() - start - seconds:.1f} s)")

    if args.estimate:
        mean_iters = sum(r.iterations for r in rows) / len(rows)
        top = max(rates.values())
        print(f"\nmeasured: {top:.1f} rows/s ({args.model}), {mean_iters:.2f} iterations per attack")
        hours = FULL_STUDY / top / 3600
        print(f"full study 50,000 x 999 with {args.model}: {hours:.1f} h on 1 GPU, {hours / 8:.1f} h on 8 (x8 assumed)")
        from torchvision.models import get_model

        own = step_rate(model, device, best, bf16=False)
        print(f"one attack step, {args.model}: {own:.0f} images/s (fp32, batch {best})")
        for arch in ("googlenet", "resnet50"):
            extra = {"aux_logits": False, "init_weights": False} if arch == "googlenet" else {}
            net = get_model(arch, weights=None, **extra).to(device).eval().requires_grad_(False)
            for bf16 in (False, True):
                rate = step_rate(net, device, best, bf16)
                scaled = rates[f"float32, chunk {best}"] * rate / own  # rows/s at the measured model's step count
                print(
                    f"one attack step, {arch} ({'bf16' if bf16 else 'fp32'}): {rate:.0f} images/s -> "
                    f"~{scaled:.0f} rows/s at {mean_iters:.1f} iterations: full study "
                    f"{FULL_STUDY / scaled / 3600:.1f} h on 1 GPU, {FULL_STUDY / scaled / 3600 / 8:.1f} h on 8"
                )


if __name__ == "__main__":
    main()
