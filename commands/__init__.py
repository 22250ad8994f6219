"""The subcommands of `cli.py`, one module each.

Adding a command (sweep, report, universal, defend, detect...) is one line: write `commands/NAME.py` with

    def register(subparsers) -> argparse.ArgumentParser:
        p = subparsers.add_parser("NAME", help="...")
        p.add_argument(...)                       # shared helpers: commands.common.add_output, add_attack_choice
        p.set_defaults(func=run)
        return p

    def run(args) -> int:                         # import torch, models and attacks here, not at module level
        ...
        emit(data, args.json, text)               # commands.common.emit: --json prints the JSON, else the text
        return 0

and add "NAME" to COMMANDS below. Optional `complete(parser)` adds arguments that need the heavy imports (the
attack hyperparameters); it runs only when that command is the one on the command line, so `cli.py --help` and
argument errors stay instant. A command raises the engine's own errors for bad input (AttackError, ImageError,
UnknownClassError, UnknownModelError, WeightsUnavailable): `main` turns them into exit code 2 and one line on
stderr. A failed attack is a result (exit 0), not an error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from commands.common import Parser, user_errors

#: Module names under commands/, in the order `cli.py --help` lists them.
COMMANDS: tuple[str, ...] = (
    "catalog",
    "classify",
    "attack",
    "synthesize",
    "transfer",
    "robustness",
    "sweep",
    "report",
    "defend",
    "detect",
    "universal",
    "patch",
)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; `command`'s module also gets its `complete` (heavy, lazily generated) arguments."""
    parser = Parser(prog="cli.py", description="Adversarial Lab: fool image classifiers, honestly.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name in COMMANDS:
        module = importlib.import_module(f"commands.{name}")
        p = module.register(sub)
        if p.prog.split()[-1] == command and hasattr(module, "complete"):
            module.complete(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if not {"-h", "--help"} & set(argv):
        build_parser().parse_known_args(argv)  # light first: a missing or malformed argument is refused at once
    args = build_parser(command).parse_args(argv)
    try:
        return int(args.func(args))
    except Exception as err:
        if isinstance(err, user_errors()):
            print(f"error: {err}", file=sys.stderr)
            return 2
        raise
