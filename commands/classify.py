"""`cli.py classify`: the top classes of an image (a saved model input is taken whole, see models.is_model_input)."""

from __future__ import annotations

import argparse

from commands.common import add_model, add_output, emit


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("classify", help="top-K classes of an image")
    add_model(p)
    p.add_argument("--image", required=True, help="a path or a sample id (chelsea, coffee, imagenet_00, ...)")
    p.add_argument("--top", type=int, default=5, help="how many classes to show")
    add_output(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from attacks import Param
    from images import load_image
    from models import get_spec, load_model

    top_k = Param("--top", 5, 1, 1000, integer=True).validate(args.top)
    get_spec(args.model)
    image = load_image(args.image)
    model = load_model(args.model)
    probs = model.probabilities(model.to_tensor(image))[0]
    values, indices = probs.topk(int(top_k))
    top = [
        {"index": int(i), "label": model.categories[int(i)], "probability": float(v)}
        for v, i in zip(values, indices, strict=True)
    ]
    text = "\n".join(f"{t['probability']:7.2%}  {t['index']:>4}  {t['label']}" for t in top)
    emit({"model": args.model, "image": args.image, "top": top}, args.json, text)
    return 0
