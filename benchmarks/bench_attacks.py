"""Attack speed, measured side by side in one run (a benchmark that prints figures, never a timed test).

Reports, on the default device (CUDA when present, else CPU) with EfficientNet-Lite0 and chelsea:
  (a) a bare forward+backward w.r.t. the input (the floor for any gradient attack),
  (b) our relabel and PGD per-iteration time, 8-bit success check included,
  (c) torchattacks' PGD per-iteration time on the same model, input and steps (if installed),
  (d) a many-targets relabel of one image: all targets batched vs one target at a time.
Run: python benchmarks/bench_attacks.py [--steps 20] [--targets 64] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from attacks import Goal, make_attack  # noqa: E402
from attacks.runner import attack_targets, default_chunk, run_batch  # noqa: E402
from images import load_image  # noqa: E402
from models import default_device, load_model, pil_to_tensor  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--targets", type=int, default=0, help="many-target count (default: 999 on GPU, 64 on CPU)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    device = default_device()
    model = load_model("efficientnet_lite0", device=device)
    original = model.preprocess(load_image("chelsea"))
    x = pil_to_tensor(original).to(device)  # (1, 3, 224, 224)
    source = model(x).argmax(1)
    target = torch.tensor([879], device=device)
    steps = args.steps
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(
        f"device: {name}; torch {torch.__version__}; model efficientnet_lite0; image chelsea 224x224; "
        f"timer time.perf_counter (resolution {time.get_clock_info('perf_counter').resolution:.0e} s)"
    )

    def bare() -> None:
        for _ in range(steps):
            xr = x.detach().requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(model(xr), target)
            torch.autograd.grad(loss, xr)

    def ours(attack_name: str, **kw) -> None:
        attack = make_attack(attack_name, steps=steps, early_stop=False, **kw)
        last = run_batch(attack, model, x, Goal(source, target)).last
        assert last.index == steps

    contenders = {
        "bare forward+backward": bare,
        "ours: relabel": lambda: ours("relabel", max_rms=1.0),
        "ours: pgd (eps 8/255)": lambda: ours("pgd", eps=8.0, step_size=1.0, random_start=0),
    }
    try:
        import torchattacks

        def theirs() -> None:
            atk = torchattacks.PGD(model, eps=8 / 255, alpha=1 / 255, steps=steps, random_start=False)
            atk.set_mode_targeted_by_label(quiet=True)
            atk(x, target)

        contenders["torchattacks: PGD (eps 8/255)"] = theirs
    except ImportError:
        print("torchattacks not installed (pip install --no-deps -r requirements-peers.txt): (c) skipped")

    bare()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(args.repeats):  # interleaved rounds, so load changes hit every contender alike
        for key, fn in contenders.items():
            times[key].append(timed(fn, device) / steps)  # per update; ours includes its final 8-bit check
    floor = statistics.median(times["bare forward+backward"])
    print(f"\nper-iteration time, median of {args.repeats} runs of {steps} steps:")
    for key, ts in times.items():
        med = statistics.median(ts)
        print(f"  {key:<32} {med * 1000:8.1f} ms   {med / floor:5.2f} x bare")

    count = args.targets or (999 if device.type == "cuda" else 64)
    targets = [t for t in range(1000) if t != int(source)][:: max(1, 999 // count)][:count]
    relabel = make_attack("relabel")
    t_batch = timed(lambda: attack_targets(model, original, relabel, targets, confidence=0.0), device)
    batched = attack_targets(model, original, relabel, targets, confidence=0.0)
    t_loop = timed(lambda: [attack_targets(model, original, relabel, [t], confidence=0.0) for t in targets], device)
    ok = sum(r.success for r in batched)
    print(f"\nmany-target relabel, {len(targets)} targets of one image (8-bit verified):")
    print(
        f"  batched (chunks of {default_chunk(device)}): {t_batch:7.1f} s   "
        f"one by one: {t_loop:7.1f} s   speed-up {t_loop / t_batch:4.2f} x   success {ok}/{len(targets)}"
    )


if __name__ == "__main__":
    main()
