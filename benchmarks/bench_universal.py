"""Universal perturbations on the packaged sample images: held-out fooling ratio and CPU time per method.

Builds v on the training part of a seeded split of `images.SAMPLES` (the Foolbox 20 ImageNet images plus the
scikit-image / scikit-learn photos) and reports the fooling ratio on the held-out part, each method timed alone.
--save writes the perturbation of --save-method (experiments.universal.universal.save_perturbation) with this command
line in its JSON sidecar; --cross also builds one (SGD) for every other offline model and prints the cross-model table.
Run: python benchmarks/bench_universal.py [--model efficientnet_lite0] [--norm inf --xi 10] [--threads 2]
     [--deepfool-passes 2] [--sgd-passes 10] [--holdout 8] [--seed 0] [--budget-s SECONDS] [--verbose]
     [--save data/universal/NAME] [--cross]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments.universal.universal import (  # noqa: E402
    compute_universal,
    cross_model_table,
    fooling_ratio,
    load_image_set,
    model_inputs,
    save_perturbation,
)
from models import OFFLINE_MODELS, load_model  # noqa: E402


def build(model, images, method: str, passes: int, args: argparse.Namespace):
    """Consume one run, printing a line per pass (and per image with --verbose), stopping early once it has used
    --budget-s seconds of CPU (what finished is kept, as Stop does on the page). Returns the last progress, its
    CPU seconds and, when stopped early, the fooling ratios of that v recounted (train, held-out)."""
    start_cpu = time.process_time()
    last = None
    stopped = None
    for prog in compute_universal(
        model,
        images,
        norm=args.norm,
        xi=args.xi,
        method=method,
        holdout=args.holdout,
        passes=passes,
        seed=args.seed,
        deepfool_steps=args.deepfool_steps,
    ):
        last = prog
        cpu = time.process_time() - start_cpu
        if not prog.last_images or args.verbose:
            held = "-" if prog.heldout_fooling is None else f"{prog.heldout_fooling:.3f}"
            print(
                f"  {model.name} {method} pass {prog.pass_index}: visited {prog.visited}, updated {prog.updated}, "
                f"train {prog.train_fooling:.3f}, held-out {held}, {prog.seconds:.0f} s wall, {cpu:.0f} s CPU",
                flush=True,
            )
        if args.budget_s and cpu > args.budget_s and not prog.done:
            x = model_inputs(model, images)  # (N, 3, S, S)
            stopped = tuple(fooling_ratio(model, x[list(ids)], prog.v) for ids in (prog.train_ids, prog.heldout_ids))
            break
    assert last is not None
    return last, time.process_time() - start_cpu, stopped


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--norm", default="inf", choices=["inf", "2"])
    ap.add_argument("--xi", type=float, default=10.0)
    ap.add_argument("--holdout", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--methods", default="deepfool,sgd")
    ap.add_argument("--deepfool-passes", type=int, default=2)
    ap.add_argument("--sgd-passes", type=int, default=10)
    ap.add_argument("--deepfool-steps", type=int, default=10)
    ap.add_argument("--budget-s", type=float, default=0.0, help="stop a method after this much CPU time (0: never)")
    ap.add_argument("--verbose", action="store_true", help="a line per update of v")
    ap.add_argument("--save", default="", help="path stem for the .npy/.json/.png of --save-method")
    ap.add_argument("--save-method", default="sgd")
    ap.add_argument("--cross", action="store_true", help="3x3 cross-model table over the offline models (SGD)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    ids, images = load_image_set("samples")
    model = load_model(args.model, device="cpu")
    print(
        f"{args.model}, {len(images)} sample images, holdout {args.holdout}, L{args.norm} xi={args.xi:g}, "
        f"torch threads {torch.get_num_threads()}"
    )
    results = {}
    for method in args.methods.split(","):
        passes = args.deepfool_passes if method == "deepfool" else args.sgd_passes
        last, cpu, stopped = build(model, images, method, passes, args)
        results[method] = last
        train, held = stopped or (last.train_fooling, last.heldout_fooling)
        why = f"stopped by --budget-s after {last.visited} images visited" if stopped else last.stop_reason
        print(
            f"{method}: held-out fooling {held:.3f} on {last.n_heldout} images "
            f"(train {train:.3f} on {last.n_train}), {last.pass_index} passes, "
            f"{last.seconds:.1f} s wall, {cpu:.1f} s CPU; {why}",
            flush=True,
        )
        if args.save and method == args.save_method:
            meta = last.to_json(args.model) | {
                "train_images": [ids[i] for i in last.train_ids],
                "heldout_images": [ids[i] for i in last.heldout_ids],
                "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
            }
            print("saved", save_perturbation(args.save, last.v, meta))
    if args.cross:
        perts = {args.model: results[args.save_method].v}
        held = [images[i] for i in results[args.save_method].heldout_ids]
        models = [load_model(n, device="cpu") for n in OFFLINE_MODELS]
        for other in models:
            if other.name != args.model:
                last, cpu, _ = build(other, images, "sgd", args.sgd_passes, args)
                perts[other.name] = last.v
                print(f"{other.name} sgd: held-out {last.heldout_fooling:.3f}, {cpu:.1f} s CPU", flush=True)
        table = cross_model_table(models, perts, held)
        print(f"cross-model fooling ratio on the {table.n_images} held-out images (rows: v of, columns: model)")
        print(" " * 20 + "".join(f"{c:>20}" for c in table.columns))
        for name, row in zip(table.rows, table.ratio, strict=True):
            print(f"{name:>20}" + "".join(f"{r:>20.3f}" for r in row))


if __name__ == "__main__":
    main()
