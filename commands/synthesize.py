"""`cli.py synthesize`: grow a fooling image from noise (white-box gradient, black-box evolution) or visualise a
class; writes start.png, synthesized.png and result.json, measured on the PNG as read back."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from commands.common import add_model, add_output, check_confidence, emit, progress_line


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "synthesize", help="grow a fooling image from noise (gradient, evolution) or visualise a class"
    )
    add_model(p)
    p.add_argument("--target", required=True, help="class index or exact class name")
    p.add_argument("--init", default="gaussian", help="start image: gaussian, uniform or grey")
    p.add_argument(
        "--method",
        default="gradient",
        help="gradient (white-box descent), evolution (black-box NES, queries only) or visualize "
        "(regularised class visualisation)",
    )
    p.add_argument("--confidence", type=float, default=0.99, help="stop once p(target) reaches this")
    p.add_argument(
        "--steps", type=int, help="steps (gradient, visualize) or generations (evolution); default 300, 250, 100"
    )
    p.add_argument("--step-size", type=float, help="gradient/visualize: change per step, 1/255 units")
    p.add_argument("--population", type=int, default=10, help="evolution: images queried per generation (even)")
    p.add_argument("--seed", type=int, default=0, help="seed of the start image and of the evolution")
    add_output(p, "output folder (start.png, synthesized.png, result.json)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from attacks.runner import save_png
    from experiments.common import check_choice, classify
    from experiments.fooling.synthesis import (
        DEFAULT_STEPS,
        INITS,
        METHODS,
        evolve,
        start_image,
        synthesize_gradient,
        visualize_class,
    )
    from models import class_index, get_spec, load_model, pil_to_tensor, tensor_to_pil

    get_spec(args.model)
    target = class_index(args.target)
    init = check_choice("--init", args.init, INITS)
    method = check_choice("--method", args.method, METHODS)
    confidence = check_confidence(args.confidence)
    steps = DEFAULT_STEPS[method] if args.steps is None else args.steps
    model = load_model(args.model)
    start = start_image(init, model.input_size, seed=args.seed).to(model.device)  # (1, 3, S, S)
    extra = {} if args.step_size is None else {"step_size": args.step_size}
    if method == "gradient":
        gen = synthesize_gradient(
            model, [target], confidence=confidence, steps=steps, seed=args.seed, start=start, **extra
        )
    elif method == "evolution":
        gen = evolve(
            model,
            target,
            confidence=confidence,
            generations=steps,
            population=args.population,
            seed=args.seed,
            start=start,
        )
    else:
        gen = visualize_class(model, [target], init=init, steps=steps, seed=args.seed, **extra)
    t0 = time.perf_counter()
    last = None
    for last in gen:
        if not args.json and (last.index % 10 == 0 or last.done):
            unit = "generation" if method == "evolution" else "step"
            progress_line(
                f"{unit} {last.index}: p({model.categories[target]}) = {float(last.target_probability[0]):.4f}"
            )
    if not args.json:
        sys.stderr.write("\n")
    if last is None:
        raise RuntimeError("the synthesis yielded no step")
    seconds = time.perf_counter() - t0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_png(tensor_to_pil(start), out / "start.png")
    saved = save_png(tensor_to_pil(last.images[:1]), out / "synthesized.png")
    probs = classify(model, [saved])[0]  # (K,) of the PNG as read back
    top = int(probs.argmax())
    p_target = float(probs[target])
    distortion = float((pil_to_tensor(saved) - start.cpu()).pow(2).mean().sqrt())
    data = {
        "model": args.model,
        "method": method,
        "init": init,
        "target": {"index": target, "label": model.categories[target]},
        "confidence": confidence,
        "success": top == target and p_target >= confidence,
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
    emit(data, args.json, text)
    return 0
