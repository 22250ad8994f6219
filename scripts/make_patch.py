"""Train a shipped adversarial patch for EfficientNet-Lite0 on a seeded split of the 999 ImageNet photos in
../shared/photos/imagen/ and measure it honestly on the held-out photos: success by patch size beside a
random-noise and a plain grey patch of the same size at the same seeded places, all judged by
experiments.patch.patch.evaluate on the saved 8-bit PNG (reloaded), plus a simulated camera trial.

    python scripts/make_patch.py --images ../shared/photos/imagen --target toaster

Writes data/patch/<model>_<target>.{png,json} and copies the first --ship held-out photos into
data/patch/heldout/ (the page's and the tests' held-out set; a fresh clone lacks ../shared).
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

from experiments.patch import patch as P  # noqa: E402
from images.imagesets import folder_set  # noqa: E402
from models import load_model  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "data" / "patch"
CAMERA = {"area": 0.2, "cm": 5.0, "dpi": 150}  # the simulated camera trial's settings


def camera_trial(model, photos, patch, target: int) -> dict:
    """The printed sheet's cut-out pasted into each photo with perspective and lighting (simulate_photo)."""
    sheet = P.print_sheet(patch, CAMERA["cm"], CAMERA["dpi"])
    margin = round(1.0 / 2.54 * CAMERA["dpi"]) - round(0.1 / 2.54 * CAMERA["dpi"])
    side = round(CAMERA["cm"] / 2.54 * CAMERA["dpi"]) + 2 * round(0.1 / 2.54 * CAMERA["dpi"])
    cut = sheet.crop((margin, margin, margin + side, margin + side))  # along the cut line
    hits = [
        int(P.classify(model, P.simulate_photo(p, cut, area=CAMERA["area"], seed=i)).argmax()) == target
        for i, p in enumerate(photos)
    ]
    return {**CAMERA, "hits": sum(hits), "n": len(hits), "rate": sum(hits) / len(hits)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", default="../shared/photos/imagen", help="folder of photos")
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--target", default="toaster")
    p.add_argument("--holdout", type=int, default=199, help="photos held out (never trained on)")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=0.03)
    p.add_argument("--resolution", type=int, default=P.RESOLUTION)
    p.add_argument("--seed", type=int, default=0, help="seed of the split, the EOT draws and the placements")
    p.add_argument("--noise-seed", type=int, default=1, help="seed of the random-noise control")
    p.add_argument("--ship", type=int, default=16, help="held-out photos copied into data/patch/heldout/")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    target = P.resolve_target(args.target)

    image_set = folder_set(args.images)
    items = image_set.items
    photos = [image_set.load(item) for item in tqdm(items, desc="reading photos", unit="img")]
    model = load_model(args.model)
    x = P.as_inputs(model, photos)  # (N, 3, S, S) uint8
    work = P.train_patch(
        model,
        x,
        target,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        resolution=args.resolution,
        holdout=args.holdout,
        seed=args.seed,
    )
    start = time.perf_counter()
    last = None
    with tqdm(desc=f"patch {args.target} on {args.model}", unit="step", total=args.steps) as bar:
        for last in work:
            bar.update(last.step - bar.n)
            bar.set_postfix_str(f"loss {last.loss:.2f}, train {last.train_success:.0%}")
    assert last is not None
    seconds = time.perf_counter() - start
    stem = OUT / f"{args.model}_{P.target_name(target).replace(' ', '_')}"
    names = [item.id for item in items]
    P.save_patch(stem, last.patch, last.to_json(args.model))
    patch, _ = P.load_patch(stem)  # judge what was saved (8-bit PNG), not the float iterate
    held = x[list(last.heldout_ids)]  # (H, 3, S, S)
    table = P.heldout_table(model, held, patch, target, seed=args.seed, noise_seed=args.noise_seed)
    shipped = [names[i] for i in last.heldout_ids[: args.ship]]
    ship_dir = OUT / "heldout"
    ship_dir.mkdir(parents=True, exist_ok=True)
    for name in shipped:
        if not (ship_dir / Path(name).name).exists():
            shutil.copy(Path(args.images) / name, ship_dir / Path(name).name)
    ship_x = P.as_inputs(model, [photos[i] for i in last.heldout_ids[: args.ship]])
    ship_table = P.heldout_table(
        model, ship_x, patch, target, sizes=(0.10, 0.20), seed=args.seed, noise_seed=args.noise_seed
    )
    camera = camera_trial(model, [photos[i] for i in last.heldout_ids[: args.ship]], patch, target)
    meta = last.to_json(args.model)
    meta |= {
        "source_images": "../shared/photos/imagen (999 ImageNet photos, ajschumacher/imagen)",
        "split": {"seed": args.seed, "n_train": last.n_train, "n_heldout": last.n_heldout, "rule": "split_indices"},
        "heldout": table,
        "success": P.SUCCESS_RULE,
        "controls": {"noise": f"uniform random 8-bit pixels, seed {args.noise_seed}", "grey": "plain 128/255"},
        "training_seconds": round(seconds, 1),
        "threads": args.threads,
        "shipped_heldout": {"folder": "data/patch/heldout", "files": [Path(n).name for n in shipped], **ship_table},
        "camera_trial": {**camera, "photos": "the shipped held-out photos", "how": "experiments.patch.simulate_photo"},
        "heldout_images": [names[i] for i in last.heldout_ids],
        "command": "python scripts/make_patch.py " + " ".join(sys.argv[1:]),
    }
    P.save_patch(stem, patch, meta)
    i10, i20 = table["sizes"].index(0.10), table["sizes"].index(0.20)
    print(
        f"{args.target}: held-out success (n={table['n']}) at 10%: patch {table['patch'][i10]:.1%}, noise "
        f"{table['noise'][i10]:.1%}, grey {table['grey'][i10]:.1%}; at 20%: patch {table['patch'][i20]:.1%}, "
        f"noise {table['noise'][i20]:.1%}, grey {table['grey'][i20]:.1%}; camera trial {camera['hits']}/"
        f"{camera['n']}; trained {seconds:.0f} s on {last.n_train} photos -> {stem}.png"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
