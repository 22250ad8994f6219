"""`cli.py attack`: attack an image toward one or many targets (or untargeted), write the 8-bit PNGs and the
result JSON, verified on the PNG as read back. Every hyperparameter of the chosen attack is a flag (generated from
the attack's `params`); `cli.py attack --help` lists them per attack."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from commands import common


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("attack", help="attack an image and save the 8-bit result with its verification")
    common.add_model(p)
    common.add_attack_choice(
        p,
        default="relabel",
        attack_help="registry name; `--help` lists them with their hyperparameters",
        seed_help="seed for random starts and random targets",
    )
    p.add_argument(
        "--target",
        action="append",
        help="class index, exact name, least-likely, random, random:N or all; repeatable; "
        "leave out for an untargeted attack",
    )
    p.add_argument("--gain", type=float, default=10.0, help="amplification of difference.png")
    common.add_output(p, "output folder")
    p.set_defaults(func=run)
    return p


def complete(parser: argparse.ArgumentParser) -> None:
    common.add_attack_hyperparameters(parser)


def run(args: argparse.Namespace) -> int:
    attack = common.make_attack_from(args, args.attack)  # hyperparameters first: they need attacks (torch) only
    confidence = common.check_confidence(args.confidence)

    from attacks.runner import attack_targets, save_result, summarize
    from images import load_image
    from images.imagesets import starting_images
    from models import get_spec, load_model, pil_to_tensor, resolve_targets

    get_spec(args.model)
    image = load_image(args.image)
    model = load_model(args.model)
    original = model.preprocess(image)
    probs0 = model.probabilities(pil_to_tensor(original))[0]
    source, least = int(probs0.argmax()), int(probs0.argmin())
    targets: list[int] | None = None
    if args.target:
        targets = []
        for spec in args.target:
            for t in resolve_targets(spec, source=source, least_likely=least, seed=args.seed):
                if t not in targets:
                    targets.append(t)
    many = targets is not None and len(targets) > 1
    if getattr(attack, "decision_based", False) and attack.starts is None:
        attack.starts = starting_images(model, targets, attack.name, skip=args.image)
    start = time.perf_counter()
    results = attack_targets(
        model,
        original,
        attack,
        targets,
        confidence=confidence,
        seed=args.seed,
        progress=common.progress_bar if many else None,
    )
    out = Path(args.out)
    rows = [save_result(r, model, out / str(r.target) if many else out, gain=args.gain) for r in results]
    if many:
        summary = {
            **summarize(results),
            "model": args.model,
            "attack": args.attack,
            "image": args.image,
            "confidence": confidence,
            "wall_seconds": time.perf_counter() - start,
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        text = (
            f"{summary['successes']}/{summary['count']} targets reached "
            f"(mean {summary['mean_iterations']:.1f} steps, mean RMS {summary['mean_rms_distortion']:.4f}); "
            f"written to {out}/"
        )
        common.emit({**summary, "results": rows}, args.json, text)
        return 0
    r = rows[0]
    goal = f"-> {r['target']['label']}" if r["target"] else "(untargeted)"
    spent = "" if r["queries"] is None else f" ({r['queries']} queries)"
    text = (
        f"{'SUCCESS' if r['success'] else 'FAILED'}: {r['source']['label']} {goal}; saved image classified as "
        f"{r['final']['label']} ({r['final']['probability']:.1%}, needed {confidence:.0%}) after {r['iterations']} "
        f"steps{spent}, RMS distortion {r['rms_distortion']:.4f}, max change {r['max_change_255']}/255; "
        f"written to {out}/"
    )
    common.emit(r, args.json, text)
    return 0
