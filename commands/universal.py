"""`cli.py universal`: build one image-agnostic perturbation v for a model (experiments.universal.universal,
Moosavi-Dezfooli et al. 2017) and report how often it changes the label on training and held-out images; or, with
--apply, the fooling ratio of a saved v on an image set."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from commands.common import add_model, add_output, emit


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("universal", help="one perturbation that fools a model on most images (or --apply one)")
    add_model(p)
    p.add_argument("--images", default="samples", help="'samples' (the packaged images) or a folder of images")
    p.add_argument("--max-images", type=int, help="use only the first N images of the set (default: all)")
    p.add_argument("--norm", choices=("inf", "2"), default="inf", help="the ball v lies in: L-inf or L2")
    p.add_argument("--xi", type=float, help="its radius, 0-255 pixel units (default: 10 for inf, 2000 for 2)")
    p.add_argument("--method", choices=("deepfool", "sgd"), default="deepfool", help="the paper's or the fast one")
    p.add_argument(
        "--holdout",
        type=_holdout,
        help="images kept out of building v: a count (200) or a fraction below 1 (0.2); default: 30%% of them",
    )
    p.add_argument("--passes", type=int, default=5, help="at most this many passes over the training images")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and of the visiting order")
    p.add_argument("--apply", metavar="NPY", help="evaluate this saved perturbation.npy instead of building one")
    add_output(p, "output folder (perturbation.npy/.json/.png, result.json); not with --apply", required=False)
    p.set_defaults(func=run)
    return p


def _holdout(text: str) -> float:
    """A count (an integer >= 0) or a fraction in (0, 1): both are how people say "hold out"."""
    value = float(text)
    if value < 0 or (value >= 1 and value != int(value)):
        raise argparse.ArgumentTypeError(f"a count (0, 1, 2, ...) or a fraction below 1, got {text!r}")
    return value


def holdout_count(value: float | None, n: int) -> int | None:
    """--holdout as the count of images it means among n (None: the engine's default, 30%)."""
    if value is None:
        return None
    return round(value * n) if 0 < value < 1 else int(value)


def _images(args: argparse.Namespace) -> tuple[list[str], list[Any]]:
    from attacks import AttackError
    from experiments.universal.universal import load_image_set

    names, photos = load_image_set(args.images)
    if args.max_images is not None:
        if args.max_images < 1:
            raise AttackError(f"--max-images must be at least 1, got {args.max_images}")
        names, photos = names[: args.max_images], photos[: args.max_images]
    return names, photos


def run(args: argparse.Namespace) -> int:
    from attacks import AttackError
    from models import get_spec

    get_spec(args.model)
    if args.apply:
        return _apply(args)
    if not args.out:
        raise AttackError("--out DIR is required to build a perturbation (or give --apply FILE.npy)")
    return _build(args)


def _build(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from experiments.universal.universal import check_settings, compute_universal, save_perturbation
    from models import load_model

    names, photos = _images(args)
    args.holdout = holdout_count(args.holdout, len(photos))
    check_settings(len(photos), args.norm, args.xi, args.method, args.holdout, args.passes, 0.2)
    model = load_model(args.model)
    work = compute_universal(
        model,
        photos,
        norm=args.norm,
        xi=args.xi,
        method=args.method,
        holdout=args.holdout,
        passes=args.passes,
        seed=args.seed,
    )
    last = None
    with tqdm(desc=f"{args.method} on {args.model}", unit="img") as bar:
        for last in work:
            if bar.total is None:
                bar.total = args.passes * last.n_train
            bar.update(last.visited - bar.n)
            held = "-" if last.heldout_fooling is None else f"{last.heldout_fooling:.0%}"
            bar.set_postfix_str(f"pass {last.pass_index}, train {last.train_fooling:.0%}, held-out {held}")
    assert last is not None
    out = Path(args.out)
    data = last.to_json(args.model)
    data |= {"images": args.images, "train_images": [names[i] for i in last.train_ids]}
    data["heldout_images"] = [names[i] for i in last.heldout_ids]
    paths = save_perturbation(out / "perturbation", last.v, data)
    data["files"] = {k: str(p) for k, p in paths.items()}
    gain = json.loads(paths["json"].read_text())["png_amplification"]
    (out / "result.json").write_text(json.dumps(data, indent=2) + "\n")
    held = "-" if last.heldout_fooling is None else f"{last.heldout_fooling:.1%}"
    text = (
        f"{args.method} universal perturbation for {args.model}, L{args.norm} xi={data['xi']:g}: "
        f"fooling ratio {last.train_fooling:.1%} on {last.n_train} training images, {held} on {last.n_heldout} "
        f"held-out images ({last.pass_index} passes, {last.seconds:.0f} s; {last.stop_reason})\n"
        f"written to {out}/ (perturbation.npy, .json, .png amplified x{gain:.1f}, result.json)"
    )
    emit(data, args.json, text)
    return 0


def _apply(args: argparse.Namespace) -> int:
    from attacks import AttackError
    from experiments.universal.universal import fooled_mask, load_perturbation, model_inputs
    from models import load_model

    path = Path(args.apply)
    if path.suffix != ".npy" or not path.is_file():
        raise AttackError(f"--apply needs an existing .npy perturbation file, got {args.apply!r}")
    v, meta = load_perturbation(path)
    names, photos = _images(args)
    model = load_model(args.model)
    fooled = fooled_mask(model, model_inputs(model, photos), v).tolist()
    seen = set(meta.get("train_images", [])) if meta.get("images", "samples") == args.images else set()
    unseen = [f for n, f in zip(names, fooled, strict=True) if n not in seen]
    data = {
        "perturbation": str(path),
        "built_for": meta.get("model"),
        "model": args.model,
        "images": args.images,
        "n_images": len(names),
        "n_fooled": int(sum(fooled)),
        "fooling_ratio": sum(fooled) / len(fooled),
        "n_unseen": len(unseen),
        "unseen_fooling_ratio": sum(unseen) / len(unseen) if unseen else None,
        "fooled_images": [n for n, f in zip(names, fooled, strict=True) if f],
    }
    text = f"{path} on {args.model}: {data['n_fooled']}/{len(names)} images change label ({data['fooling_ratio']:.1%})"
    if seen:
        ratio = "-" if not unseen else f"{data['unseen_fooling_ratio']:.1%}"
        text += f"; {ratio} on the {len(unseen)} images it was not built from"
    emit(data, args.json, text)
    return 0
