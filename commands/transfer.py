"""`cli.py transfer`: attack on one model (or an ensemble, optionally through input diversity), then classify the
saved PNG with every evaluation model at its own input size; writes the attack's files and transfer.json."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from commands import common


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("transfer", help="attack on one model (or an ensemble), classify with the others")
    p.add_argument(
        "--model",
        default="efficientnet_lite0",
        help="source model; several, comma-separated, attack their ensemble (mean logits)",
    )
    common.add_attack_choice(
        p,
        default=None,
        attack_help="registry name (default: relabel if --target, else pgd); see `--help`",
        seed_help="seed for random starts, targets and input diversity",
    )
    p.add_argument("--target", help="class index, exact name, least-likely or random; leave out for untargeted")
    p.add_argument("--eval-models", help="comma-separated evaluation models (default: every model on this disk)")
    p.add_argument(
        "--diversity",
        type=float,
        default=0.0,
        help="input diversity: probability of a random resize-and-pad per step (0 = off; Xie et al.: 0.5)",
    )
    p.add_argument(
        "--full-budget",
        action="store_true",
        help="keep attacking after the first success (the attack's early_stop=False: larger margin, better transfer)",
    )
    common.add_output(p, "output folder (original.png, adversarial.png, difference.png, result.json, transfer.json)")
    p.set_defaults(func=run)
    return p


def complete(parser: argparse.ArgumentParser) -> None:
    common.add_attack_hyperparameters(parser)


def _model_names(text: str, flag: str) -> list[str]:
    from attacks import AttackError
    from models import get_spec

    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise AttackError(f"{flag} needs at least one model name")
    for n in names:
        get_spec(n)
    return list(dict.fromkeys(names))


def available_models() -> list[str]:
    """Models whose weights are on this disk: the offline ones and any online one already downloaded."""
    from models import MODELS, weights_cached

    return [n for n, s in MODELS.items() if s.offline or weights_cached(n)]


def run(args: argparse.Namespace) -> int:
    from attacks import AttackError
    from attacks.runner import save_result
    from experiments.transfer.transfer import attacked_model, evaluate_transfer, run_transfer
    from images import load_image
    from models import load_model, pil_to_tensor, resolve_targets

    sources = _model_names(args.model, "--model")
    evals = _model_names(args.eval_models, "--eval-models") if args.eval_models else available_models()
    attack = common.make_attack_from(
        args, args.attack or ("relabel" if args.target else "pgd"), early_stop=not args.full_budget
    )
    attack.check_targeted(args.target is not None)
    confidence = common.check_confidence(args.confidence)
    image = load_image(args.image)
    first = load_model(sources[0])
    probs0 = first.probabilities(pil_to_tensor(first.preprocess(image)))[0]
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
        confidence=confidence,
        seed=args.seed,
    )
    out = Path(args.out)
    o = result.outcome
    save_result(o, attacked_model([load_model(n) for n in sources]), out)  # type: ignore[arg-type]
    # Honest: every evaluation model classifies the PNG as saved and read back.
    rows = evaluate_transfer(
        load_image(str(out / "original.png")),
        load_image(str(out / "adversarial.png")),
        source=o.source,
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
    goal = f"-> {cats[target]}" if target is not None else "(untargeted)"
    lines = [
        f"{o.attack} on {result.source_name}: {cats[o.source]} {goal}, "
        f"{'SUCCESS' if o.success else 'FAILED'} on the attacked model (confidence {confidence:g}), "
        f"RMS {o.verdict.rms_distortion:.4f}, max change {o.verdict.max_change_255}/255",
        f"{'model':<22} {'clean':<22} {'adversarial':<22} {'p(target)':>9} {'p(source)':>9}  fooled",
    ]
    for r in rows:
        pt = "-" if r.p_target is None else f"{r.p_target:.2%}"
        lines.append(
            f"{r.model + (' *' if r.is_source else ''):<22} {r.clean_label[:21]:<22} {r.label[:21]:<22} "
            f"{pt:>9} {r.p_source:>9.2%}  {'yes' if r.fooled else 'no'}{' +' if r.took_source_label else ''}"
        )
    lines.append(f"fooled: {result.fooled_rule}; (* attacked model)")
    if any(r.took_source_label for r in rows):
        lines.append(f"(+ its new label is the attacked model's clean label, {cats[o.source]}: it now agrees with it)")
    lines.append(f"written to {out}/")
    common.emit(data, args.json, "\n".join(lines))
    return 0
