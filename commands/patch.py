"""`cli.py patch`: train a targeted adversarial patch (experiments.patch, Brown et al. 2017) on an image set and
report its held-out targeted success; or, with --apply, the targeted success of a saved patch PNG on an image set,
beside a random-noise and a plain grey patch of the same size at the same places."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from commands.common import add_model, add_output, emit


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("patch", help="train a printable targeted patch (or --apply one)")
    add_model(p)
    p.add_argument("--target", default="toaster", help="class name or index the patch makes the model answer")
    p.add_argument("--images", default="samples", help="'samples' (the packaged images) or a folder of images")
    p.add_argument("--max-images", type=int, help="use only the first N images of the set (default: all)")
    p.add_argument(
        "--size", type=_fraction, default=0.10, help="patch area as a share of the image: 0.1 or 10%% (1-50%%)"
    )
    p.add_argument("--steps", type=int, default=200, help="training steps (mini-batches of random placements)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--holdout", type=int, help="images kept out of training (default: 30%% of them)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, the training draws and the placements")
    p.add_argument("--apply", metavar="PNG", help="evaluate this saved patch image instead of training one")
    add_output(p, "output folder (patch.png, patch.json, result.json); not with --apply", required=False)
    p.set_defaults(func=run)
    return p


def _fraction(text: str) -> float:
    """0.1 or 10%: both are how people give a share of the image area. The 1-50% range is the engine's check."""
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a share of the image area such as 0.1 or 10%, got {text!r}") from None


def _inputs(args: argparse.Namespace, model: Any) -> tuple[list[str], Any]:
    from attacks import AttackError
    from experiments.patch.patch import load_inputs

    names, x = load_inputs(model, args.images)
    if args.max_images is not None:
        if args.max_images < 1:
            raise AttackError(f"--max-images must be at least 1, got {args.max_images}")
        names, x = names[: args.max_images], x[: args.max_images]
    return names, x


def run(args: argparse.Namespace) -> int:
    from attacks import AttackError
    from experiments.patch.patch import check_fraction, resolve_target
    from models import get_spec

    get_spec(args.model)
    resolve_target(args.target)
    check_fraction(args.size, "--size")
    if args.apply:
        return _apply(args)
    if not args.out:
        raise AttackError("--out DIR is required to train a patch (or give --apply PATCH.png)")
    return _build(args)


def _build(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from experiments.patch import patch as engine
    from models import load_model

    model = load_model(args.model)
    names, x = _inputs(args, model)
    engine.check_training(len(x), args.steps, args.batch_size, args.holdout, engine.RESOLUTION, 0.03)
    work = engine.train_patch(
        model,
        x,
        args.target,
        steps=args.steps,
        batch_size=args.batch_size,
        holdout=args.holdout,
        seed=args.seed,
        eval_fraction=args.size,
    )
    last = None
    with tqdm(desc=f"patch {args.target} on {args.model}", unit="step", total=args.steps) as bar:
        for last in work:
            bar.update(last.step - bar.n)
            bar.set_postfix_str(f"loss {last.loss:.2f}, train {last.train_success:.0%}")
    assert last is not None
    out = Path(args.out)
    data = last.to_json(args.model)
    data |= {"images": args.images, "heldout_images": [names[i] for i in last.heldout_ids]}
    data["train_images"] = [names[i] for i in last.train_ids]
    paths = engine.save_patch(out / "patch", last.patch, data)
    saved, _ = engine.load_patch(paths["png"])  # the figure is the saved 8-bit PNG's
    held = x[list(last.heldout_ids)]  # (H, 3, S, S)
    score = engine.evaluate(model, held, saved, args.size, last.target, args.seed) if len(held) else None
    data["heldout"] = {"size": args.size, **(score.to_json() if score else {"hits": 0, "n": 0, "rate": None})}
    data["files"] = {k: str(p) for k, p in paths.items()}
    (out / "result.json").write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    rate = "-" if score is None or not score.n else f"{score.rate:.1%} ({score.hits}/{score.n})"
    text = (
        f"patch for {args.model} -> {data['target']}: held-out targeted success at {args.size:.0%} of the image "
        f"{rate}, trained on {last.n_train} images ({last.step} steps, {last.seconds:.0f} s)\n"
        f"written to {out}/ (patch.png, patch.json, result.json)"
    )
    emit(data, args.json, text)
    return 0


def _apply(args: argparse.Namespace) -> int:
    from attacks import AttackError
    from experiments.patch import patch as engine
    from models import load_model

    path = Path(args.apply)
    if not path.is_file():
        raise AttackError(f"--apply needs an existing patch image file, got {args.apply!r}")
    patch = engine.read_patch(path.read_bytes(), str(path))
    side = path.with_suffix(".json")
    meta = json.loads(side.read_text()) if side.exists() else {}
    target = engine.resolve_target(meta.get("target_index", args.target))
    model = load_model(args.model)
    names, x = _inputs(args, model)
    clean = engine.predict(model, x)
    controls = {"noise": engine.noise_patch(patch.shape, 1), "grey": engine.grey_patch(patch.shape)}
    score = engine.evaluate(model, x, patch, args.size, target, args.seed, clean)
    others = {k: engine.evaluate(model, x, p, args.size, target, args.seed, clean) for k, p in controls.items()}
    hits = engine.success_mask(model, x, patch, args.size, target, args.seed) & (clean != target)
    data = {
        "patch": str(path),
        "built_for": meta.get("model"),
        "model": args.model,
        "target": engine.target_name(target),
        "images": args.images,
        "size": args.size,
        "seed": args.seed,
        "n_images": len(names),
        "n_counted": score.n,
        "n_hits": score.hits,
        "targeted_success": score.rate if score.n else None,
        "controls": {k: s.to_json() for k, s in others.items()},
        "hit_images": [n for n, h in zip(names, hits.tolist(), strict=True) if h],
        "success": engine.SUCCESS_RULE,
    }
    if not score.n:
        raise AttackError(f"every image is already classified as {data['target']!r}: nothing to measure")
    text = (
        f"{path} on {args.model} at {args.size:.0%} of the image: {score.hits}/{score.n} images become "
        f"{data['target']} ({score.rate:.1%}); noise patch {others['noise'].rate:.1%}, grey patch "
        f"{others['grey'].rate:.1%} at the same places"
    )
    emit(data, args.json, text)
    return 0
