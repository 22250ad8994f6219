"""A small susceptibility sweep with the tiny network, run as a real process by tests/test_sweep.py (which kills it
with SIGKILL at random moments and resumes it). Also the home of the tiny labelled image set the sweep tests use.

    python tests/sweep_worker.py DB [--chunk N] [--pause SECONDS]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from dataclasses import astuple, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

from tinynet import TinyClassifier  # noqa: E402

from experiments.study.store import Row  # noqa: E402
from experiments.study.sweep import Study  # noqa: E402
from images.imagesets import ImageItem, ImageSet, Selection  # noqa: E402

#: Relabel settings that make the tiny sweep fast and give both successes and failures.
ATTACK_PARAMS = {"step_size": 1.0, "steps": 40}
MAX_RMS = 0.03


def tiny_image_set(model: TinyClassifier, n: int = 6, wrong: int = 1, seed: int = 3) -> ImageSet:
    """n random 16x16 images held in memory, labelled with the tiny model's own top-1 except for the last `wrong`
    ones, whose label is another class (the study must leave those out)."""
    rng = np.random.default_rng(seed)
    arrays = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(n)]
    x = torch.stack([torch.from_numpy(a).permute(2, 0, 1) for a in arrays]).float() / 255.0  # (n, 3, 16, 16)
    top = model.probabilities(x).argmax(dim=1).tolist()
    labels = [t if i < n - wrong else (t + 1) % 10 for i, t in enumerate(top)]
    pictures = {f"img{i}": Image.fromarray(a) for i, a in enumerate(arrays)}
    items = [ImageItem(f"img{i}", labels[i], f"img{i}") for i in range(n)]
    return ImageSet("tiny", items, [], "tiny in-memory images", loader=lambda item: pictures[item.ref].copy())


def tiny_study(model: TinyClassifier, **changes: object) -> Study:
    fields: dict[str, object] = {
        "model": model.name,
        "image_set": "tiny",
        "attack": "relabel",
        "attack_params": dict(ATTACK_PARAMS),
        "selection": Selection(),
        "targets": "all",
        "max_rms": MAX_RMS,
        "seed": 0,
    }
    fields.update(changes)
    return Study(**fields)  # type: ignore[arg-type]


def one_torch_thread() -> Iterator[None]:
    """A fixture body (tests wrap it with pytest.fixture): one torch thread, as in the worker process and in Ray's
    workers, so the same float reductions give bit-identical rows to compare."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def rows_key(rows: list[Row]) -> list[tuple]:
    """Rows without their timing (the one field a rerun may change), in a fixed order."""
    return [astuple(replace(r, seconds=0.0)) for r in sorted(rows, key=lambda r: (r.image_id, r.target))]


def main() -> int:
    from experiments.study.store import SweepStore
    from experiments.study.sweep import run_sweep

    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("--chunk", type=int, default=2)
    parser.add_argument("--pause", type=float, default=0.0, help="seconds to wait after each unit (for the killer)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the same float reductions in every process, so resumed rows equal fresh ones
    model = TinyClassifier()
    study = tiny_study(model)
    with SweepStore.open(args.db, study.params()) as store:
        for progress in run_sweep(model, tiny_image_set(model), study, store, chunk=args.chunk):
            print(progress.stage, progress.done, progress.total, flush=True)
            time.sleep(args.pause)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
