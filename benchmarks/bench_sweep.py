"""Sweep speed, measured side by side on the same pairs (a benchmark that prints figures, never a timed test).

Runs one small study three ways into fresh databases and prints rows (attacks) per second:
  (a) the local engine batched (units of `--chunk` pairs: many targets of an image in one forward/backward),
  (b) the local engine one target at a time (units of one pair),
  (c) with --ray, the Ray engine on a local cluster (--workers actors x --ray-threads torch threads), with and
      without its start-up (cluster and actors: each worker imports torch and builds its model once).
Verdicts of (b) and (c) are compared with (a) (float reductions of a batch may differ in the last bits).

    python benchmarks/bench_sweep.py [--model efficientnet_lite0|tiny] [--images 2] [--targets 8] [--ray]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from experiments.study.store import SweepStore  # noqa: E402
from experiments.study.sweep import Study, run_sweep  # noqa: E402
from images.imagesets import Selection, samples_set  # noqa: E402


def setup(name: str, images: int, targets: int):
    """(model source for Ray, model, image set, study) for a named benchmark model."""
    if name == "tiny":
        from sweep_worker import ATTACK_PARAMS, tiny_image_set
        from tinynet import TinyClassifier

        model = TinyClassifier()
        study = Study(
            model=model.name,
            image_set="tiny",
            attack="relabel",
            attack_params=dict(ATTACK_PARAMS),
            selection=Selection(limit=images),
            targets="all" if targets >= 10 else f"random:{targets}",
            max_rms=0.03,
        )
        return TinyClassifier, model, tiny_image_set(model, n=max(images + 1, 6)), study
    from models import load_model

    model = load_model(name, device="cpu")
    selection = Selection(limit=images)
    study = Study(model=name, image_set="samples", attack="relabel", selection=selection, targets=f"random:{targets}")
    return name, model, samples_set(), study


def timed_sweep(sweep, warm: int = 1) -> tuple[float, float, float, int, float]:
    """(total wall s, wall s from the plan to the end, process CPU s, rows, steady rows/s) of one sweep generator;
    the steady rate counts rows after the first `warm` units came back (Ray: one per worker, so actor start-up
    and the first wave are left out), over the time after them."""
    start, cpu = time.perf_counter(), time.process_time()
    planned = warmed = None
    rows = after = units = 0
    for progress in sweep:
        if progress.stage == "plan":
            planned = time.perf_counter()
        if progress.stage != "attack":
            continue
        units += 1
        rows += len(progress.rows)
        if warmed is not None:
            after += len(progress.rows)
        elif units == warm:
            warmed = time.perf_counter()
    end = time.perf_counter()
    steady = after / (end - warmed) if warmed is not None and after else float("nan")
    return end - start, end - (planned or start), time.process_time() - cpu, rows, steady


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--targets", type=int, default=8)
    ap.add_argument("--chunk", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the local engine")
    ap.add_argument("--ray", action="store_true", help="also run the Ray engine on a local cluster")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--ray-threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    source, model, image_set, study = setup(args.model, args.images, args.targets)
    print(
        f"model {args.model}; {args.images} images x {args.targets} targets; CPU, {args.threads} torch threads; "
        f"timer time.perf_counter (resolution {time.get_clock_info('perf_counter').resolution:.0e} s), "
        f"CPU time time.process_time (resolution {time.get_clock_info('process_time').resolution:.0e} s)"
    )
    verdicts = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = [("batched", args.chunk), ("one target at a time", 1)]
        for label, chunk in runs:
            with SweepStore.open(Path(tmp) / f"{chunk}.db", study.params()) as store:
                wall, work, cpu, n, steady = timed_sweep(run_sweep(model, image_set, study, store, chunk=chunk))
                verdicts[label] = {(r.image_id, r.target): r.success for r in store.rows()}
            print(
                f"local, {label:>20} (chunk {chunk}): {n} rows in {work:.2f} s = {n / work:.3f} rows/s "
                f"({1000 * cpu / n:.1f} ms CPU per row; {wall:.2f} s with screening); "
                f"{steady:.3f} rows/s after the first unit"
            )
        if args.ray:
            import ray

            from experiments.study.ray_engine import OBJECT_STORE_MEMORY, run_sweep_ray

            start = time.perf_counter()
            ray.init(
                num_cpus=args.workers * args.ray_threads,
                object_store_memory=OBJECT_STORE_MEMORY,
                include_dashboard=False,
                runtime_env={"env_vars": {"PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"}},
                log_to_driver=False,
            )
            boot = time.perf_counter() - start
            label = f"ray {args.workers}x{args.ray_threads} threads"
            with SweepStore.open(Path(tmp) / "ray.db", study.params()) as store:
                sweep = run_sweep_ray(
                    source, image_set, study, store, workers=args.workers, threads=args.ray_threads, chunk=args.chunk
                )
                wall, work, _, n, steady = timed_sweep(sweep, warm=args.workers)
                verdicts[label] = {(r.image_id, r.target): r.success for r in store.rows()}
            ray.shutdown()
            print(
                f"{label}, batched (chunk {args.chunk}): {n} rows in {work:.2f} s = {n / work:.3f} rows/s "
                f"including actor start-up (cluster start {boot:.1f} s more); "
                f"{steady:.3f} rows/s after the first {args.workers} units"
            )
    base = verdicts["batched"]
    for label, found in verdicts.items():
        same = sum(found.get(k) == v for k, v in base.items())
        print(f"verdicts of {label} equal to batched: {same}/{len(base)}; successes {sum(found.values())}")


if __name__ == "__main__":
    main()
