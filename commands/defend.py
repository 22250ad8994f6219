"""`cli.py defend`: clean accuracy, bare attack success, and success against a defense by an attacker who does not
know it, by one who does (BPDA / EOT / exact gradients) and, with --blackbox, by a score-based black-box attacker
(Square L-inf) querying the defended classifier, on a labelled image set (experiments.defenses.defenses)."""

from __future__ import annotations

import argparse

from commands import common
from commands.common import add_model, add_output, emit

DEFENSE_NAMES = ("jpeg", "median", "gaussian", "bits", "resize-pad", "ensemble")  # kept equal to DEFENSES by a test


def add_images(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--images",
        default="samples",
        help="'samples' (the shipped labelled ImageNet images), 'imagenette', or a folder in any ImageNet layout "
        "(<class name, wnid or index>/<image>, wnid file names, the ILSVRC2012 validation folder)",
    )


def parse_params(items: list[str] | None) -> dict[str, float]:
    """--param name=value ... -> {name: value}; a malformed one is an AttackError (exit 2)."""
    from attacks import AttackError

    out: dict[str, float] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise AttackError(f"--param {item!r}: expected name=number, e.g. quality=50")
    return out


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "defend", help="a defense in front of the model: does it stop the attack, and an attacker who knows it?"
    )
    add_model(p)
    p.add_argument("--defense", required=True, help=f"one of: {', '.join(DEFENSE_NAMES)}")
    p.add_argument(
        "--param", action="append", metavar="NAME=VALUE", help="a defense parameter, e.g. quality=50 (repeatable)"
    )
    add_images(p)
    p.add_argument("--attack", default="relabel", help="a registered attack (default: the paper's relabelling)")
    p.add_argument(
        "--adaptive",
        action="store_true",
        help="also attack the defense knowingly (BPDA for JPEG/median/bits, EOT for resize-pad, exact gradients "
        "for gaussian/ensemble); without it only the attacker who ignores the defense is measured",
    )
    p.add_argument(
        "--full-budget", action="store_true", help="run every attack step instead of stopping at the first success"
    )
    p.add_argument(
        "--blackbox",
        action="store_true",
        help="also a score-based black-box attacker (Square L-inf) that only queries the defended classifier: "
        "gradient masking does not stop it (columns black-box and its median queries)",
    )
    p.add_argument("--blackbox-eps", type=float, default=8.0, help="its L-inf eps in 1/255 units (default 8)")
    p.add_argument("--blackbox-queries", type=int, default=1000, help="its query budget per image (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the targets and the attacks' randomness")
    add_output(p)
    p.set_defaults(func=run)
    return p


def complete(parser: argparse.ArgumentParser) -> None:
    common.add_attack_hyperparameters(parser)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from attacks import make_attack
    from experiments.defenses.defenses import evaluate_defenses, make_defense
    from images.imagesets import labelled_set
    from models import load_model

    params = parse_params(args.param)
    attack_params = dict(common.make_attack_from(args, args.attack).hparams)  # checked before any model loads
    blackbox = {"eps": args.blackbox_eps, "queries": args.blackbox_queries} if args.blackbox else None
    if blackbox is not None:
        make_attack("square", **blackbox)  # a bad eps or budget: one line before any model loads
    model = load_model(args.model)
    make_defense(args.defense, model, **params)  # unknown defense or bad parameter: one line before any work
    images = labelled_set(args.images, model)
    last = None
    with tqdm(desc=f"defend {args.defense}", unit="chunk", leave=False) as bar:
        for last in evaluate_defenses(
            model,
            images,
            defenses={args.defense: params},
            attack=args.attack,
            attack_params=attack_params,
            full_budget=args.full_budget,
            adaptive=args.adaptive,
            seed=args.seed,
            blackbox=blackbox,
        ):
            bar.total = last.total
            bar.set_postfix_str(last.stage)
            bar.update(last.done - bar.n)
    assert last is not None
    report = last.report
    emit(report.to_json(), args.json, report.table())
    return 0
