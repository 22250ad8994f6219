"""Adversarial Lab on the command line: every capability of the pages as a scriptable command with --json.

Exit codes: 0 when the command ran (a failed attack is a result, not an error); 2 with one line on stderr for
bad input or arguments. Run `python cli.py -h` or `python cli.py COMMAND -h`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from PIL import Image

from attacks import ATTACKS, AttackError, make_attack
from attacks.metrics import amplified_difference
from attacks.runner import AttackResult, attack_targets, summarize, verify
from experiments.cli_commands import add_commands
from images import ImageError, load_image
from models import (
    MODELS,
    UnknownClassError,
    UnknownModelError,
    WeightsUnavailable,
    get_spec,
    load_model,
    pil_to_tensor,
    resolve_targets,
    tensor_to_pil,
    weights_cached,
)

#: Exceptions that mean "bad input": one line on stderr and exit code 2, never a traceback.
USER_ERRORS = (ImageError, UnknownModelError, UnknownClassError, AttackError, WeightsUnavailable)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} -h)\n")


def _emit(data: Any, as_json: bool, text: str) -> None:
    print(json.dumps(data, indent=2) if as_json else text)


def cmd_models(args: argparse.Namespace) -> int:
    rows = [
        {
            "name": s.name,
            "title": s.title,
            "input_size": s.input_size,
            "offline": s.offline,
            "cached": weights_cached(s.name),
        }
        for s in MODELS.values()
    ]
    lines = [f"{'name':<20} {'input':>5}  {'source':<8} weights"]
    for r in rows:
        where = "offline" if r["offline"] else "online"
        lines.append(f"{r['name']:<20} {r['input_size']:>5}  {where:<8} {'on disk' if r['cached'] else 'not cached'}")
    _emit(rows, args.json, "\n".join(lines))
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    if not 1 <= args.top <= 1000:
        raise AttackError(f"--top must be between 1 and 1000, got {args.top}")
    get_spec(args.model)
    image = load_image(args.image)
    model = load_model(args.model)
    probs = model.probabilities(model.to_tensor(image))[0]
    values, indices = probs.topk(args.top)
    top = [
        {"index": int(i), "label": model.categories[int(i)], "probability": float(v)}
        for v, i in zip(values, indices, strict=True)
    ]
    text = "\n".join(f"{t['probability']:7.2%}  {t['index']:>4}  {t['label']}" for t in top)
    _emit({"model": args.model, "image": args.image, "top": top}, args.json, text)
    return 0


def _progress(done: int, total: int) -> None:
    width = 30
    fill = round(width * done / total)
    sys.stderr.write(f"\r[{'#' * fill}{'.' * (width - fill)}] {done}/{total} targets")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def write_result(result: AttackResult, folder: Path, gain: float = 10.0) -> dict[str, Any]:
    """Write original.png, adversarial.png, difference.png and result.json; re-verify on the saved PNG."""
    assert result.original is not None and result.adversarial is not None
    folder.mkdir(parents=True, exist_ok=True)
    result.original.save(folder / "original.png")
    result.adversarial.save(folder / "adversarial.png")
    x0 = pil_to_tensor(result.original)
    xa = pil_to_tensor(result.adversarial)
    tensor_to_pil(amplified_difference(xa, x0, gain)).save(folder / "difference.png")
    data = result.to_json()
    (folder / "result.json").write_text(json.dumps(data, indent=2))
    return data


def cmd_attack(args: argparse.Namespace) -> int:
    get_spec(args.model)
    params = {
        k: v
        for k, v in (("steps", args.steps), ("step_size", args.step_size), ("eps", args.eps), ("max_rms", args.max_rms))
        if v is not None
    }
    attack = make_attack(args.attack, **params)
    if not 0.0 <= args.confidence < 1.0:
        raise AttackError(f"--confidence must be in [0, 1), got {args.confidence}")
    image = load_image(args.image)
    model = load_model(args.model)
    original = model.preprocess(image)
    x0 = pil_to_tensor(original).to(model.device)
    probs0 = model.probabilities(x0)[0]
    source, least = int(probs0.argmax()), int(probs0.argmin())
    targets: list[int] | None = None
    if args.target:
        targets = []
        for spec in args.target:
            for t in resolve_targets(spec, source=source, least_likely=least, seed=args.seed):
                if t == source:
                    raise AttackError(f"the target equals the image's current class ({model.categories[source]})")
                if t not in targets:
                    targets.append(t)
    attack.check_targeted(targets is not None)
    many = targets is not None and len(targets) > 1
    start = time.perf_counter()
    results = attack_targets(
        model,
        original,
        attack,
        targets,
        seed=args.seed,
        confidence=args.confidence,
        progress=_progress if many else None,
    )
    out = Path(args.out)
    rows = []
    for r in results:
        folder = out / str(r.target["index"]) if many and r.target else out
        write_result(r, folder, args.gain)
        # Honest check on the file itself: reload the saved PNG and classify it again.
        with Image.open(folder / "adversarial.png") as saved:
            v = verify(
                model,
                r.original,
                saved.convert("RGB"),
                source=source,
                target=r.target["index"] if r.target else None,
                confidence=args.confidence,
            )
        if v.success != r.success or v.index != r.final["index"]:
            raise RuntimeError("the saved PNG classifies differently from the in-memory 8-bit image")
        rows.append(r.to_json())
    if many:
        summary = {
            **summarize(results),
            "model": args.model,
            "attack": args.attack,
            "image": args.image,
            "wall_seconds": time.perf_counter() - start,
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        text = (
            f"{summary['successes']}/{summary['count']} targets reached "
            f"(mean {summary['mean_iterations']:.1f} steps, mean RMS {summary['mean_rms_distortion']:.4f}); "
            f"written to {out}/"
        )
        _emit({**summary, "results": rows}, args.json, text)
        return 0
    r = results[0]
    goal = f"-> {r.target['label']}" if r.target else "(untargeted)"
    verdict = "SUCCESS" if r.success else "FAILED"
    text = (
        f"{verdict}: {r.source['label']} {goal}; saved image classified as {r.final['label']} "
        f"({r.final['probability']:.1%}) after {r.iterations} steps, RMS distortion {r.rms_distortion:.4f}, "
        f"max change {r.metrics['max_change_255']}/255; written to {out}/"
    )
    _emit(rows[0], args.json, text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="cli.py", description="Adversarial Lab: fool image classifiers, honestly.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    m = sub.add_parser("models", help="list the classifiers, their input size and whether they work offline")
    m.add_argument("--json", action="store_true", help="print JSON")
    m.set_defaults(func=cmd_models)

    c = sub.add_parser("classify", help="top-K classes of an image")
    c.add_argument("--model", default="efficientnet_lite0", help="registry name (see `models`)")
    c.add_argument("--image", required=True, help="a path or a sample id (chelsea, coffee, imagenet_00, ...)")
    c.add_argument("--top", type=int, default=5, help="how many classes to show")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(func=cmd_classify)

    a = sub.add_parser("attack", help="attack an image and save the 8-bit result with its verification")
    a.add_argument("--model", default="efficientnet_lite0", help="registry name (see `models`)")
    a.add_argument("--image", required=True, help="a path or a sample id")
    a.add_argument("--attack", default="relabel", help=f"one of: {', '.join(ATTACKS)}")
    a.add_argument(
        "--target",
        action="append",
        help="class index, exact name, least-likely, random, random:N or all; repeatable; "
        "leave out for an untargeted attack",
    )
    a.add_argument("--steps", type=int, help="maximum number of steps (attack default if left out)")
    a.add_argument("--step-size", type=float, help="step size (1/255 units for L-inf attacks, L2 for pgd_l2)")
    a.add_argument("--eps", type=float, help="budget (1/255 units for L-inf attacks, L2 for pgd_l2)")
    a.add_argument("--max-rms", type=float, help="relabel: stop before the RMS distortion exceeds this")
    a.add_argument("--confidence", type=float, default=0.0, help="also require p(target) >= this")
    a.add_argument("--seed", type=int, default=0, help="seed for random starts and random targets")
    a.add_argument("--gain", type=float, default=10.0, help="amplification of difference.png")
    a.add_argument("--out", required=True, help="output folder")
    a.add_argument("--json", action="store_true", help="print the result JSON on stdout")
    a.set_defaults(func=cmd_attack)

    add_commands(sub)  # synthesize, transfer, robustness
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
