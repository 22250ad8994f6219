"""Train the shipped universal perturbation (EfficientNet-Lite0, L-inf xi = 10/255) on a seeded split of the 999
ImageNet photos in ../shared/photos/imagen/ and measure it honestly: held-out fooling ratio beside a random-sign
noise control of the same L-inf, both judged by experiments.universal.universal.evaluate on the saved (float16,
reloaded) v.

    python scripts/make_universal.py --images ../shared/photos/imagen

Writes data/universal/efficientnet_lite0_linf10.{npy,png,json} and copies the first --ship held-out photos into
data/universal/heldout/ (the page's held-out set at run time; a fresh clone lacks ../shared).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from experiments.universal import universal
from images.imagesets import folder_set  # noqa: E402
from models import load_model  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "data" / "universal"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", default="../shared/photos/imagen", help="folder of photos")
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--holdout", type=int, default=199, help="photos held out (never trained on)")
    p.add_argument("--passes", type=int, default=10, help="SGD epochs over the training photos")
    p.add_argument("--delta", type=float, default=0.0, help="stop when training fooling >= 1 - delta")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--step-size", type=float, default=1.0, help="sign step, 0-255 units")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the visiting order")
    p.add_argument("--noise-seed", type=int, default=1, help="seed of the random-sign noise control")
    p.add_argument("--ship", type=int, default=24, help="held-out photos copied into data/universal/heldout/")
    args = p.parse_args()
    torch.manual_seed(args.seed)

    image_set = folder_set(args.images)
    items = image_set.items
    photos = [image_set.load(item) for item in tqdm(items, desc="reading photos", unit="img")]
    model = load_model(args.model)
    last = None
    work = universal.compute_universal(
        model,
        photos,
        norm="inf",
        xi=10.0,
        method="sgd",
        holdout=args.holdout,
        passes=args.passes,
        delta=args.delta,
        seed=args.seed,
        batch_size=args.batch_size,
        step_size=args.step_size,
    )
    start = time.perf_counter()
    with tqdm(desc=f"sgd on {args.model}", unit="img", total=args.passes * (len(photos) - args.holdout)) as bar:
        for last in work:
            bar.update(last.visited - bar.n)
            held = "-" if last.heldout_fooling is None else f"{last.heldout_fooling:.1%}"
            bar.set_postfix_str(f"pass {last.pass_index}, train {last.train_fooling:.1%}, held-out {held}")
    assert last is not None
    seconds = time.perf_counter() - start
    stem = OUT / f"{args.model}_linf10"
    names = [item.id for item in items]
    meta = last.to_json(args.model)
    meta |= {"images": "shipped held-out photos: data/universal/heldout/ (from ../shared/photos/imagen)"}
    universal.save_perturbation(stem, last.v, meta)
    v, _ = universal.load_perturbation(stem)  # judge what was saved (float16), not the float iterate
    train = [photos[i] for i in last.train_ids]
    held = [photos[i] for i in last.heldout_ids]
    noise = universal.sign_noise(v.shape, 10.0, args.noise_seed)  # (3, S, S)
    figures = {
        "train_fooling": universal.evaluate(model, train, v),
        "heldout_fooling": universal.evaluate(model, held, v),
        "noise_heldout_fooling": universal.evaluate(model, held, noise),
    }
    shipped = [names[i] for i in last.heldout_ids[: args.ship]]
    ship_dir = OUT / "heldout"
    shutil.rmtree(ship_dir, ignore_errors=True)
    ship_dir.mkdir(parents=True)
    for name in shipped:
        shutil.copy(Path(args.images) / name, ship_dir / Path(name).name)
    shipped_photos = [photos[i] for i in last.heldout_ids[: args.ship]]
    meta |= figures
    meta |= {
        "source_images": "../shared/photos/imagen (999 ImageNet photos, ajschumacher/imagen)",
        "split": {"seed": args.seed, "n_train": last.n_train, "n_heldout": last.n_heldout, "rule": "split_indices"},
        "noise_control": {"kind": "random +-xi/255 signs (same L-inf as v)", "seed": args.noise_seed},
        "fooled": universal.FOOLED_RULE,
        "training_seconds": round(seconds, 1),
        "train_images": [names[i] for i in last.train_ids],
        "heldout_images": [names[i] for i in last.heldout_ids],
        "shipped_heldout": {
            "folder": "data/universal/heldout",
            "files": [Path(n).name for n in shipped],
            "heldout_fooling": universal.evaluate(model, shipped_photos, v),
            "noise_heldout_fooling": universal.evaluate(model, shipped_photos, noise),
        },
        "command": "python scripts/make_universal.py " + " ".join(sys.argv[1:]),
    }
    del meta["train_ids"], meta["heldout_ids"]
    universal.save_perturbation(stem, v, meta)
    print(
        f"train {figures['train_fooling']:.1%} of {last.n_train}, held-out {figures['heldout_fooling']:.1%} of "
        f"{last.n_heldout}, noise control {figures['noise_heldout_fooling']:.1%}; {seconds:.0f} s -> {stem}.npy"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
