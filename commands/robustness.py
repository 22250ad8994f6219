"""`cli.py robustness`: mirror, shift, crop, rotate, JPEG... an adversarial image and its original alike: does the
label revert? Both files go through the model's own preprocessing (a saved model input is taken whole)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from commands.common import add_model, add_output, emit


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "robustness", help="mirror, shift, crop, rotate, JPEG... an adversarial image: does the label revert?"
    )
    add_model(p)
    p.add_argument("--original", required=True, help="the original image (e.g. original.png from `attack`)")
    p.add_argument("--adversarial", required=True, help="the adversarial image (e.g. adversarial.png)")
    p.add_argument("--target", help="the adversarial class (default: the model's top class on the adversarial)")
    p.add_argument("--transforms", help="comma-separated subset of the transforms (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the added noise")
    add_output(p, "also write every transformed image and robustness.json here", required=False)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from attacks import AttackError
    from experiments.robustness.robustness import TRANSFORMS, evaluate_robustness
    from images import load_image
    from models import class_index, get_spec, load_model

    get_spec(args.model)
    names = [n.strip() for n in args.transforms.split(",") if n.strip()] if args.transforms else None
    for n in names or []:
        if n not in TRANSFORMS:
            raise AttackError(f"unknown transform {n!r}; choose from: {', '.join(TRANSFORMS)}")
    original = load_image(args.original)
    adversarial = load_image(args.adversarial)
    if original.size != adversarial.size:
        raise AttackError(
            f"the original is {original.width}x{original.height} but the adversarial image is "
            f"{adversarial.width}x{adversarial.height}; give the two files written by one attack"
        )
    model = load_model(args.model)
    report = evaluate_robustness(
        model,
        model.preprocess(original),
        model.preprocess(adversarial),
        transforms=names,
        adversarial_class=None if args.target is None else class_index(args.target),
        seed=args.seed,
        keep_images=bool(args.out),
    )
    data = {"original_file": args.original, "adversarial_file": args.adversarial, **report.to_json()}
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for r in report.rows[1:]:
            assert r.image is not None
            r.image.save(out / f"{r.transform}_{r.strength:g}.png")
        (out / "robustness.json").write_text(json.dumps(data, indent=2))
    base = report.rows[0]
    lines = [
        f"{report.model}: original {report.original_label}, adversarial {report.adversarial_label} "
        f"(untransformed: {base.label}, {base.probability:.1%})",
        f"{'transform':<32} {'predicted':<24} {'':<13} control (original under the same transform)",
    ]
    for r in report.rows[1:]:
        verdict = "still fooled" if r.still_fooled else "reverted" if r.reverted else "other class"
        control = "kept" if r.clean_kept else f"changed to {r.clean_label}"
        lines.append(f"{r.title:<32} {r.label[:23]:<24} {verdict:<13} {control}")
    s = data["summary"]
    lines.append(f"still fooled {s['still_fooled']}/{s['transforms']}, reverted {s['reverted']}/{s['transforms']}")
    emit(data, args.json, "\n".join(lines))
    return 0
