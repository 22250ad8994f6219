"""The `synthesize`, `transfer` and `robustness` subcommands of cli.py (registered by `add_commands`).

Same conventions as `attack`: --json prints the result JSON, --out DIR writes the 8-bit PNGs and the JSON, and bad
input raises the engine's own errors (AttackError, ImageError, UnknownClassError, UnknownModelError,
WeightsUnavailable), which cli.main turns into exit code 2 with one line on stderr. Every reported probability is
measured on the PNG as saved and read back.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from PIL import Image

from attacks import ATTACKS, AttackError, make_attack
from experiments.common import check_choice, classify
from experiments.robustness import TRANSFORMS, evaluate_robustness
from experiments.synthesis import INITS, METHODS, evolve, start_image, synthesize_gradient, visualize_class
from experiments.transfer import evaluate_transfer, run_transfer
from images import load_image
from models import (
    MODELS,
    class_index,
    get_spec,
    load_model,
    pil_to_tensor,
    resolve_targets,
    tensor_to_pil,
    weights_cached,
)

DEFAULT_STEPS = {"gradient": 300, "evolution": 250, "visualize": 100}  # evolution: chain mail needs ~110-130


def _emit(data: Any, as_json: bool, text: str) -> None:
    print(json.dumps(data, indent=2) if as_json else text)


def _models_list(text: str, flag: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise AttackError(f"{flag} needs at least one model name")
    for n in names:
        get_spec(n)
    return list(dict.fromkeys(names))


def available_models() -> list[str]:
    """Models whose weights are on this disk: the offline ones and any online one already downloaded."""
    return [n for n, s in MODELS.items() if s.offline or weights_cached(n)]


def _reload(path: Path) -> Image.Image:
    with Image.open(path) as saved:
        return saved.convert("RGB")


def _progress(text: str) -> None:
    sys.stderr.write(f"\r{text}")
    sys.stderr.flush()


# --- synthesize ------------------------------------------------------------------------------------------------


def cmd_synthesize(args: argparse.Namespace) -> int:
    get_spec(args.model)
    target = class_index(args.target)
    init = check_choice("--init", args.init, INITS)
    method = check_choice("--method", args.method, METHODS)
    if not 0.0 <= args.confidence < 1.0:
        raise AttackError(f"--confidence must be in [0, 1), got {args.confidence}")
    steps = DEFAULT_STEPS[method] if args.steps is None else args.steps
    model = load_model(args.model)
    size = model.input_size
    start = start_image(init, size, seed=args.seed).to(model.device)  # (1, 3, S, S)
    if method == "gradient":
        extra = {} if args.step_size is None else {"step_size": args.step_size}
        gen = synthesize_gradient(
            model, [target], confidence=args.confidence, steps=steps, seed=args.seed, start=start, **extra
        )
    elif method == "evolution":
        gen = evolve(
            model,
            target,
            confidence=args.confidence,
            generations=steps,
            population=args.population,
            seed=args.seed,
            start=start,
        )
    else:
        extra = {} if args.step_size is None else {"step_size": args.step_size}
        gen = visualize_class(model, [target], init=init, steps=steps, seed=args.seed, **extra)
    t0 = time.perf_counter()
    last = None
    for last in gen:
        if not args.json and (last.index % 10 == 0 or last.done):
            unit = "generation" if method == "evolution" else "step"
            _progress(f"{unit} {last.index}: p({model.categories[target]}) = {float(last.target_probability[0]):.4f}")
    if not args.json:
        sys.stderr.write("\n")
    if last is None:
        raise AttackError("the synthesis yielded no step")
    seconds = time.perf_counter() - t0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tensor_to_pil(start).save(out / "start.png")
    tensor_to_pil(last.images[:1]).save(out / "synthesized.png")
    saved = _reload(out / "synthesized.png")
    probs = classify(model, [saved])[0]  # (K,) of the PNG as read back
    top = int(probs.argmax())
    p_target = float(probs[target])
    x_saved = pil_to_tensor(saved)
    distortion = float((x_saved - start.cpu()).pow(2).mean().sqrt())
    data = {
        "model": args.model,
        "method": method,
        "init": init,
        "target": {"index": target, "label": model.categories[target]},
        "confidence": args.confidence,
        "success": top == target and p_target >= args.confidence,
        "final": {
            "index": top,
            "label": model.categories[top],
            "probability": float(probs[top]),
            "target_probability": p_target,
        },
        "steps" if method != "evolution" else "generations": last.index,
        "queries": last.queries,
        "rms_distortion_from_start": distortion,
        "seed": args.seed,
        "seconds": seconds,
    }
    (out / "result.json").write_text(json.dumps(data, indent=2))
    verdict = "SUCCESS" if data["success"] else "NOT REACHED"
    count = f"{last.index} generations ({last.queries} queries)" if method == "evolution" else f"{last.index} steps"
    text = (
        f"{verdict}: {init} start -> {model.categories[target]}: saved image classified as "
        f"{model.categories[top]} ({float(probs[top]):.2%}), p(target) {p_target:.2%} after {count}, "
        f"RMS distortion from the start {distortion:.4f}; written to {out}/"
    )
    _emit(data, args.json, text)
    return 0


# --- transfer --------------------------------------------------------------------------------------------------


def cmd_transfer(args: argparse.Namespace) -> int:
    sources = _models_list(args.model, "--model")
    evals = _models_list(args.eval_models, "--eval-models") if args.eval_models else available_models()
    attack_name = args.attack or ("relabel" if args.target else "pgd")
    params = {
        k: v
        for k, v in (("steps", args.steps), ("step_size", args.step_size), ("eps", args.eps), ("max_rms", args.max_rms))
        if v is not None
    }
    attack = make_attack(attack_name, **params)
    attack.check_targeted(args.target is not None)
    image = load_image(args.image)
    first = load_model(sources[0])
    x0 = pil_to_tensor(first.preprocess(image)).to(first.device)
    probs0 = first.probabilities(x0)[0]
    target = None
    if args.target is not None:
        chosen = resolve_targets(
            args.target, source=int(probs0.argmax()), least_likely=int(probs0.argmin()), seed=args.seed
        )
        if len(chosen) != 1:
            raise AttackError(f"--target must name one class, {args.target!r} names {len(chosen)}")
        target = chosen[0]
    result = run_transfer(
        image,
        source_models=sources,
        eval_models=evals,
        attack=attack,
        target=target,
        diversity=args.diversity,
        full_budget=args.full_budget,
        confidence=args.confidence,
        seed=args.seed,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result.outcome.original.save(out / "original.png")
    result.outcome.adversarial.save(out / "adversarial.png")
    # Honest: every evaluation model classifies the PNG as saved and read back.
    rows = evaluate_transfer(
        result.outcome.original,
        _reload(out / "adversarial.png"),
        source=result.outcome.source,
        target=target,
        models=[load_model(n) for n in evals],
        attacked=sources,
    )
    if [r.index for r in rows] != [r.index for r in result.rows]:
        raise RuntimeError("the saved PNG classifies differently from the in-memory 8-bit image")
    result.rows = rows
    data = {"image": args.image, **result.to_json()}
    (out / "transfer.json").write_text(json.dumps(data, indent=2))
    cats = result.categories
    o = result.outcome
    goal = f"-> {cats[target]}" if target is not None else "(untargeted)"
    lines = [
        f"{o.attack} on {result.source_name}: {cats[o.source]} {goal}, "
        f"{'SUCCESS' if o.success else 'FAILED'} on the attacked model, RMS {o.verdict.rms_distortion:.4f}, "
        f"max change {o.verdict.max_change_255}/255",
        f"{'model':<22} {'clean':<22} {'adversarial':<22} {'p(target)':>9} {'p(source)':>9}  fooled",
    ]
    for r in rows:
        pt = "-" if r.p_target is None else f"{r.p_target:.2%}"
        mark = "yes" if r.fooled else "no"
        lines.append(
            f"{r.model + (' *' if r.is_source else ''):<22} {r.clean_label[:21]:<22} {r.label[:21]:<22} "
            f"{pt:>9} {r.p_source:>9.2%}  {mark}"
        )
    lines.append(f"(* attacked model) written to {out}/")
    _emit(data, args.json, "\n".join(lines))
    return 0


# --- robustness ------------------------------------------------------------------------------------------------


def _as_model_input(image: Image.Image, model: Any) -> Image.Image:
    """Square images (saved model inputs) are used whole; other images get the model's own preprocessing."""
    return image if image.width == image.height else model.preprocess(image)


def cmd_robustness(args: argparse.Namespace) -> int:
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
    target = None if args.target is None else class_index(args.target)
    report = evaluate_robustness(
        model,
        _as_model_input(original, model),
        _as_model_input(adversarial, model),
        transforms=names,
        adversarial_class=target,
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
    _emit(data, args.json, "\n".join(lines))
    return 0


# --- registration ----------------------------------------------------------------------------------------------


def add_commands(subparsers: Any) -> None:
    """Register synthesize, transfer and robustness on cli.py's subparsers (each sets func=cmd_...)."""
    s = subparsers.add_parser(
        "synthesize", help="grow a fooling image from noise (gradient, evolution) or visualise a class"
    )
    s.add_argument("--model", default="efficientnet_lite0", help="registry name (see `models`)")
    s.add_argument("--target", required=True, help="class index or exact class name")
    s.add_argument("--init", default="gaussian", help=f"start image: {', '.join(INITS)}")
    s.add_argument(
        "--method",
        default="gradient",
        help="gradient (white-box descent), evolution (black-box NES, queries only) or visualize "
        "(regularised class visualisation)",
    )
    s.add_argument("--confidence", type=float, default=0.99, help="stop once p(target) reaches this")
    s.add_argument(
        "--steps", type=int, help=f"steps (gradient, visualize) or generations (evolution); defaults {DEFAULT_STEPS}"
    )
    s.add_argument("--step-size", type=float, help="gradient/visualize: change per step, 1/255 units")
    s.add_argument("--population", type=int, default=10, help="evolution: images queried per generation (even)")
    s.add_argument("--seed", type=int, default=0, help="seed of the start image and of the evolution")
    s.add_argument("--out", required=True, help="output folder (start.png, synthesized.png, result.json)")
    s.add_argument("--json", action="store_true", help="print the result JSON on stdout")
    s.set_defaults(func=cmd_synthesize)

    t = subparsers.add_parser("transfer", help="attack on one model (or an ensemble), classify with the others")
    t.add_argument(
        "--model",
        default="efficientnet_lite0",
        help="source model; several, comma-separated, attack their ensemble (mean logits)",
    )
    t.add_argument("--image", required=True, help="a path or a sample id")
    t.add_argument("--target", help="class index, exact name, least-likely or random; leave out for untargeted")
    t.add_argument("--attack", help=f"one of: {', '.join(ATTACKS)} (default: relabel if --target, else pgd)")
    t.add_argument("--eval-models", help="comma-separated evaluation models (default: every model on this disk)")
    t.add_argument("--steps", type=int, help="attack steps (attack default if left out)")
    t.add_argument("--step-size", type=float, help="step size (1/255 units for L-inf attacks)")
    t.add_argument("--eps", type=float, help="budget (1/255 units for L-inf attacks)")
    t.add_argument("--max-rms", type=float, help="relabel: RMS cap")
    t.add_argument(
        "--diversity",
        type=float,
        default=0.0,
        help="input diversity: probability of a random resize-and-pad per step (0 = off; Xie et al.: 0.5)",
    )
    t.add_argument(
        "--full-budget",
        action="store_true",
        help="keep attacking after the first success (larger margin, better transfer)",
    )
    t.add_argument("--confidence", type=float, default=0.0, help="also require p(target) >= this on the source")
    t.add_argument("--seed", type=int, default=0, help="seed for random starts, targets and input diversity")
    t.add_argument("--out", required=True, help="output folder (original.png, adversarial.png, transfer.json)")
    t.add_argument("--json", action="store_true", help="print the result JSON on stdout")
    t.set_defaults(func=cmd_transfer)

    r = subparsers.add_parser(
        "robustness", help="mirror, shift, crop, rotate, JPEG... an adversarial image: does the label revert?"
    )
    r.add_argument("--model", default="efficientnet_lite0", help="registry name (see `models`)")
    r.add_argument("--original", required=True, help="the original image (e.g. original.png from `attack`)")
    r.add_argument("--adversarial", required=True, help="the adversarial image (e.g. adversarial.png)")
    r.add_argument("--target", help="the adversarial class (default: the model's top class on the adversarial)")
    r.add_argument("--transforms", help=f"comma-separated subset of: {', '.join(TRANSFORMS)} (default: all)")
    r.add_argument("--seed", type=int, default=0, help="seed of the added noise")
    r.add_argument("--out", help="also write every transformed image and robustness.json here")
    r.add_argument("--json", action="store_true", help="print the result JSON on stdout")
    r.set_defaults(func=cmd_robustness)
