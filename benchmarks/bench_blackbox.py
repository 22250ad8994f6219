"""Black-box attacks on EfficientNet-Lite0 over photos it has never seen, beside a peer at the same budget.

Per attack (untargeted, each image attacked alone through attacks.runner.attack_targets, verified on the saved
8-bit image): success rate, median and mean queries (failures count their whole budget), median RMS and L-inf
of the successes, seconds, queries/s; and the bare forward rate of the model (batch 1) that bounds queries/s.
Peer: torchattacks.Square (L-inf, margin loss, same eps, p_init and budget) on the same images, its float result
rounded to 8 bits and judged by the same rule (top-1 differs from the model's clean label, confidence 0 by default
because the peer stops at a bare flip).

Images: a seeded sample of --images (default ../shared/photos/imagen, ImageNet photos; the source class is the
model's own prediction, as the README there advises). Run:
  python benchmarks/bench_blackbox.py --n 20 --attacks square,simba --peer
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from attacks import make_attack  # noqa: E402
from attacks.metrics import linf, quantize, rms  # noqa: E402
from attacks.runner import attack_targets  # noqa: E402
from images import load_image  # noqa: E402
from models import load_model, pil_to_tensor  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def pick(folder: Path, n: int, seed: int) -> list[Path]:
    files = sorted(folder.glob("*.jpg"))
    random.Random(seed).shuffle(files)
    return files[:n]


def forward_rate(model, x: torch.Tensor, repeats: int = 5) -> float:
    """Images per second of a bare no-grad forward at batch 1 (what one query costs at least)."""
    with torch.no_grad():
        model(x)
        start = time.perf_counter()
        for _ in range(repeats):
            model(x)
    return repeats / (time.perf_counter() - start)


def line(name: str, rows: list[dict], budget: int) -> str:
    ok = [r for r in rows if r["success"]]
    q = [r["queries"] for r in rows]
    secs = sum(r["seconds"] for r in rows)
    med = (lambda v: f"{statistics.median(v):.4f}") if ok else (lambda v: "-")
    return (
        f"{name:<26} success {len(ok)}/{len(rows)} ({len(ok) / max(len(rows), 1):.0%})  "
        f"queries median {statistics.median(q):.0f} mean {statistics.mean(q):.1f} (budget {budget})  "
        f"median RMS {med([r['rms'] for r in ok])}  L-inf*255 {med([r['linf'] * 255 for r in ok])}  "
        f"{secs:.0f} s  {sum(q) / max(secs, 1e-9):.1f} queries/s"
    )


def peer_square(model, x: torch.Tensor, source: int, eps: float, budget: int, p_init: float, seed: int) -> dict:
    import torchattacks

    atk = torchattacks.Square(
        model, norm="Linf", eps=eps, n_queries=budget, n_restarts=1, p_init=p_init, loss="margin", seed=seed
    )
    atk.init_hyperparam(x)
    torch.random.manual_seed(seed)
    start = time.perf_counter()
    y = torch.tensor([source], device=x.device)
    n_queries, adv = atk.attack_single_run(x, y)
    seconds = time.perf_counter() - start
    adv8 = quantize(adv)  # (1, 3, H, W) the image as it would be saved
    with torch.no_grad():
        top = int(model(adv8).argmax(1)[0])
    return {
        "success": top != source,
        "queries": int(n_queries[0]),
        "rms": float(rms(adv8, x)[0]),
        "linf": float(linf(adv8, x)[0]),
        "seconds": seconds,
    }


def speed(args: argparse.Namespace) -> None:
    """Queries/s of square (whole budget, early_stop=False) and of the peer beside the bare forward rate, interleaved
    in three rounds on one image so that all three see the same load of this shared CPU; medians printed."""
    torch.set_num_threads(2)
    model = load_model("efficientnet_lite0", device="cpu")
    path = pick(Path(args.images), args.n, args.seed)[-1]
    original = model.preprocess(load_image(path))
    x = pil_to_tensor(original)  # (1, 3, H, W)
    with torch.no_grad():
        source = int(model(x).argmax(1)[0])
    q, eps = args.speed, 12.75 if args.eps is None else args.eps
    rates: dict[str, list[float]] = {"bare forward": [], "square": [], "torchattacks.Square": []}
    for _ in range(3):
        rates["bare forward"].append(forward_rate(model, x, repeats=q))
        attack = make_attack("square", eps=eps, queries=q, early_stop=False)
        (r,) = attack_targets(model, original, attack, None, confidence=args.confidence)
        rates["square"].append(r.queries / r.seconds)
        p = peer_square(model, x, source, eps / 255, q, 0.05, 0)
        rates["torchattacks.Square"].append(p["queries"] / p["seconds"])
    print(f"{path.name}, {q} queries per run, eps {eps:g}/255, medians of 3 interleaved rounds:")
    for name, v in rates.items():
        print(f"  {name:<22} {statistics.median(v):.2f} images/s  (rounds: {', '.join(f'{x:.2f}' for x in v)})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default=str(ROOT.parent / "shared" / "photos" / "imagen"))
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--attacks", default="square,simba,hopskipjump")
    ap.add_argument("--queries", type=int, default=None, help="budget for every attack (default: each one's)")
    ap.add_argument("--eps", type=float, default=None, help="eps for every attack that has one (default: each one's)")
    ap.add_argument("--confidence", type=float, default=0.0)
    ap.add_argument("--peer", action="store_true", help="also run torchattacks.Square at square's settings")
    ap.add_argument("--speed", type=int, default=0, help="only time Q queries: forward, square, peer, interleaved")
    args = ap.parse_args()
    if args.speed:
        speed(args)
        return

    torch.set_num_threads(2)
    model = load_model("efficientnet_lite0", device="cpu")
    paths = pick(Path(args.images), args.n, args.seed)
    inputs = [model.preprocess(load_image(p)) for p in paths]
    rate = forward_rate(model, pil_to_tensor(inputs[0]))
    print(
        f"Lite0 on CPU ({torch.get_num_threads()} threads), {len(paths)} photos from {args.images} (seed {args.seed})"
    )
    print(f"bare forward, batch 1: {rate:.1f} images/s; confidence {args.confidence:g}; untargeted")
    for name in args.attacks.split(","):
        extra = {} if args.queries is None else {"queries": args.queries}
        if args.eps is not None:
            extra["eps"] = args.eps
        attack = make_attack(name, **extra)
        rows = []
        for i, original in enumerate(inputs):
            (r,) = attack_targets(model, original, attack, None, confidence=args.confidence, seed=args.seed + i)
            rows.append(
                {
                    "success": r.success,
                    "queries": r.queries,
                    "rms": r.verdict.rms_distortion,
                    "linf": r.verdict.linf,
                    "seconds": r.seconds,
                }
            )
            print(
                f"  {name} {paths[i].name}: {'ok' if r.success else 'FAILED'} {r.queries} queries {r.seconds:.0f} s",
                flush=True,
            )
        settings = ", ".join(f"{k}={v:g}" for k, v in attack.hparams.items())
        print(line(f"{name}", rows, attack.budget()), f"[{settings}]", flush=True)
        if name == "square" and args.peer:
            hp = attack.hparams
            peer = []
            for i, original in enumerate(inputs):
                x = pil_to_tensor(original)  # (1, 3, H, W)
                with torch.no_grad():
                    source = int(model(x).argmax(1)[0])  # the clean label, as attack_targets takes it
                peer.append(peer_square(model, x, source, hp["eps"] / 255, int(hp["queries"]), hp["p_init"], i))
                print(f"  peer {paths[i].name}: {'ok' if peer[-1]['success'] else 'FAILED'} {peer[-1]['queries']}")
            print(line("torchattacks.Square", peer, int(hp["queries"])), flush=True)
    # The CPU is shared: the forward rate again at the end brackets the queries/s figures above.
    print(f"bare forward, batch 1, at the end: {forward_rate(model, pil_to_tensor(inputs[0])):.1f} images/s")


if __name__ == "__main__":
    main()
