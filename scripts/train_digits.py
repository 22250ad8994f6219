"""Train the 8x8-digits CNN the "How it works" page ships with, and record its accuracy.

    python scripts/train_digits.py                 # standard training -> data/digits/standard.pt
    python scripts/train_digits.py --adversarial   # PGD adversarial training -> data/digits/robust.pt

Seeded and single-threaded, so the same command makes the same weights. data/digits/metrics.json keeps, per
network, the command, the test accuracy, the PGD accuracy curve and the training time on this machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments.explainers import digits as D  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adversarial", action="store_true", help="train on PGD examples (the robust network)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # determinism, and a fair "on one CPU thread" training time
    kind, recipe = ("robust", D.ROBUST) if args.adversarial else ("standard", D.STANDARD)
    bar = tqdm(total=1.0, desc=f"training the {kind} network", bar_format="{l_bar}{bar}| {elapsed}", mininterval=1.0)

    def shown(p: D.TrainProgress) -> D.TrainProgress:
        bar.update(p.fraction - bar.n)
        bar.set_postfix(epoch=p.epoch, loss=f"{p.loss:.3f}", acc=f"{p.accuracy:.2f}", refresh=False)
        return p

    last = D.exhaust(shown(p) for p in D.train(**recipe))
    bar.close()
    net = D.frozen(last.net)
    D.DATA_DIR.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), D.WEIGHTS[kind])
    split = D.digits_split()
    started = time.perf_counter()
    curve = D.accuracy_curve(net)
    metrics = D.committed_metrics()
    metrics[kind] = {
        "command": "python scripts/train_digits.py" + (" --adversarial" if args.adversarial else ""),
        "recipe": recipe,
        "test_accuracy": round(D.accuracy(net, split.x_test, split.y_test), 4),
        "test_size": len(split.y_test),
        "pgd_accuracy": {f"{e:g}": round(a, 4) for e, a in curve},
        "pgd": "L-inf PGD, 20 steps of 2.5*eps/20, random start, seed 0, checked on the 8-bit image",
        "train_seconds": round(last.elapsed, 1),
        "torch": torch.__version__,
    }
    D.METRICS_FILE.write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics[kind], indent=2))
    print(f"curve measured in {time.perf_counter() - started:.1f} s; wrote {D.WEIGHTS[kind]} and {D.METRICS_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
