"""`cli.py sweep`: the susceptibility study (every chosen image toward every target class) into one SQLite file.

Resumable: Ctrl-C or kill at any moment and run the same command again; nothing finished is recomputed and a file
holding another study is refused (exit 2). `--engine ray` runs the same units on Ray actors
(experiments.study.ray_engine); `cli.py report --db FILE` reads the result.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

from commands import common
from commands.common import add_model, add_output, emit

if TYPE_CHECKING:
    from experiments.study.sweep import Study


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("sweep", help="the susceptibility study: every image toward every target, resumable")
    add_model(p)
    p.add_argument("--images", required=True, help="samples | imagenette | a folder of ImageNet-labelled images")
    p.add_argument("--per-class", type=int, help="at most this many (correctly classified) images per class")
    p.add_argument("--limit", type=int, help="at most this many images in all (a seeded random subset)")
    p.add_argument("--seed", type=int, default=0, help="seed of the image subset and of random:N targets")
    p.add_argument("--keep-wrong", action="store_true", help="keep images the model already gets wrong")
    p.add_argument("--targets", default="all", help="all | random:N (one fixed seeded set) | a,b,c class names")
    p.add_argument(
        "--attack",
        default="relabel",
        help="the attack (default relabel, as in the paper); white-box or score-based black-box (square, square_l2, "
        "simba: rows then hold their queries); its hyperparameters are flags (`sweep --help` lists them)",
    )
    p.add_argument(
        "--max-rms",
        type=float,
        default=0.01,
        help="RMS distortion cap of a success (default 0.01; an L-inf attack's eps/255 bounds its RMS, so raise it "
        "for square: --eps 8 can reach RMS 0.031)",
    )
    p.add_argument("--db", required=True, help="the SQLite file (created, or resumed when it holds this study)")
    p.add_argument("--engine", choices=("local", "ray"), default="local", help="run here, or on Ray actors")
    p.add_argument("--ray-address", help="a running Ray cluster (auto, HOST:6379); default: a local one")
    p.add_argument("--workers", type=int, help="Ray actors (default: one per GPU, else one per CPU)")
    add_output(p)
    p.set_defaults(func=run)
    return p


def complete(parser: argparse.ArgumentParser) -> None:
    common.add_attack_hyperparameters(parser, skip=("max_rms",))


def study_from(args: argparse.Namespace) -> Study:
    from experiments.study.sweep import Study
    from images.imagesets import Selection

    given = common.make_attack_from(args, args.attack, skip=("max_rms",)).hparams  # checked; --max-rms is the cap
    selection = Selection(per_class=args.per_class, limit=args.limit, seed=args.seed, drop_wrong=not args.keep_wrong)
    return Study(
        model=args.model,
        image_set=args.images,
        attack=args.attack,
        attack_params={k: v for k, v in given.items() if k != "max_rms"},
        selection=selection,
        targets=args.targets,
        max_rms=args.max_rms,
        seed=args.seed,
    )


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from experiments.study.ray_engine import run_sweep_ray
    from experiments.study.store import SweepStore
    from experiments.study.sweep import run_sweep
    from images.imagesets import open_image_set
    from models import get_spec, load_model

    get_spec(args.model)
    study = study_from(args)
    image_set = open_image_set(args.images)
    model = load_model(args.model)
    study.target_classes(model.categories)  # an unknown class name is refused before any work
    start = time.perf_counter()
    with SweepStore.open(args.db, study.params()) as store:
        before = store.count()
        if args.engine == "ray":
            work = run_sweep_ray(args.model, image_set, study, store, address=args.ray_address, workers=args.workers)
        else:
            work = run_sweep(model, image_set, study, store)
        bar, plan, total = None, "", 0
        try:
            for progress in work:
                if progress.stage == "plan":  # screening is over: one bar for the pairs, from those already done
                    plan, total = progress.message, progress.total
                    if bar is not None:
                        bar.close()
                    tqdm.write(f"{plan}; {progress.done}/{total} pairs already done", file=sys.stderr)
                    bar = tqdm(total=total, initial=progress.done, desc="attack", unit="pair", file=sys.stderr)
                    continue
                if bar is None:
                    bar = tqdm(total=progress.total, desc="screen", unit="image", file=sys.stderr)
                bar.update(progress.done - bar.n)
        except KeyboardInterrupt:
            work.close()
            print(
                f"\ninterrupted: {store.count()} rows kept in {args.db}; run the same command to resume",
                file=sys.stderr,
            )
            return 130
        finally:
            if bar is not None:
                bar.close()
        rows = store.count()
        data = {
            "db": args.db,
            "study": store.params,
            "images": plan,
            "pairs": total,
            "rows": rows,
            "new_rows": rows - before,
            "seconds": round(time.perf_counter() - start, 3),
        }
    text = f"{store.describe()}\n{plan}\n{rows}/{total} pairs in {args.db} ({rows - before} new)"
    emit(data, args.json, text)
    return 0
