"""What the subcommands share: the parser class, --json/--out, progress on stderr, the attack arguments (generated
from each attack's `params`), and the list of bad-input errors. Nothing heavy at import: torch, models and attacks
are imported inside the functions that need them."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, NoReturn


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} -h)\n")


def user_errors() -> tuple[type[Exception], ...]:
    """Exceptions that mean "bad input": one line on stderr and exit code 2, never a traceback."""
    from attacks import AttackError
    from experiments.study.store import StoreError
    from images import ImageError
    from models import UnknownClassError, UnknownModelError, WeightsUnavailable

    return (ImageError, UnknownModelError, UnknownClassError, AttackError, WeightsUnavailable, StoreError)


def add_output(parser: argparse.ArgumentParser, out: str | None = None, *, required: bool = True) -> None:
    """--json (print the result JSON on stdout) and, when `out` describes it, --out DIR."""
    if out is not None:
        parser.add_argument("--out", required=required, help=out)
    parser.add_argument("--json", action="store_true", help="print the result JSON on stdout")


def add_model(parser: argparse.ArgumentParser, help: str = "registry name (see `models`)") -> None:
    parser.add_argument("--model", default="efficientnet_lite0", help=help)


def add_attack_choice(
    parser: argparse.ArgumentParser, *, default: str | None, attack_help: str, seed_help: str
) -> None:
    """What every attacking command takes: --image, --attack (its hyperparameters come with `complete`),
    --confidence and --seed."""
    parser.add_argument("--image", required=True, help="a path or a sample id")
    parser.add_argument("--attack", default=default, help=attack_help)
    add_confidence(parser)
    parser.add_argument("--seed", type=int, default=0, help=seed_help)


def add_confidence(parser: argparse.ArgumentParser) -> None:
    """--confidence with the one default of the project (attacks.DEFAULT_CONFIDENCE, kept in step by a test)."""
    parser.add_argument(
        "--confidence",
        type=float,
        default=0.9,
        help="success also needs p(winning class) >= this on the saved 8-bit image: targeted, the target; "
        "untargeted, the new top class (default 0.9, as the pages; 0 = the paper's top-1 criterion)",
    )


def check_confidence(value: float) -> float:
    from dataclasses import replace

    from attacks import CONFIDENCE

    return replace(CONFIDENCE, name="--confidence").validate(value)


def emit(data: Any, as_json: bool, text: str) -> None:
    print(json.dumps(data, indent=2, allow_nan=False) if as_json else text)


def progress_line(text: str) -> None:
    sys.stderr.write(f"\r{text}")
    sys.stderr.flush()


def progress_bar(done: int, total: int, unit: str = "targets") -> None:
    width = 30
    fill = round(width * done / total)
    progress_line(f"[{'#' * fill}{'.' * (width - fill)}] {done}/{total} {unit}")
    if done == total:
        sys.stderr.write("\n")


# --- the attack and its hyperparameters, generated from attacks.ATTACKS -------------------------------------


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_attack_hyperparameters(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One flag per hyperparameter name of any attack (same names and ranges as the pages show), and an epilog
    listing each attack's own: default, range, unit and meaning. Ranges are checked by Param.validate. `skip`:
    names the command sets itself (the sweep's --max-rms is the study's cap)."""
    from attacks import ATTACKS

    seen: dict[str, bool] = {}
    for cls in ATTACKS.values():
        for p in cls.params:
            if p.name not in skip:
                seen[p.name] = seen.get(p.name, True) and p.integer
    for name, integer in seen.items():
        users = [a for a, cls in ATTACKS.items() if any(p.name == name for p in cls.params)]
        parser.add_argument(
            _flag(name), dest=name, type=int if integer else float, help=f"hyperparameter of {', '.join(users)}"
        )
    lines = ["hyperparameters per attack (default, range; leave one out for its default):"]
    for a, cls in ATTACKS.items():
        lines.append(f"  {a}: {cls.title}")
        for p in cls.params:
            unit = f" {p.unit}" if p.unit else ""
            lines.append(f"    {_flag(p.name):<18} {p.default:g} in [{p.low:g}, {p.high:g}]{unit}: {p.help}")
    parser.epilog = "\n".join(lines)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


def make_attack_from(
    args: argparse.Namespace, name: str, *, early_stop: bool = True, skip: tuple[str, ...] = ()
) -> Any:
    """The attack `name` with every hyperparameter given on the command line (AttackError for one it lacks);
    `skip` as in add_attack_hyperparameters."""
    from attacks import ATTACKS, make_attack

    names = {p.name for cls in ATTACKS.values() for p in cls.params} - set(skip)
    given = {n: getattr(args, n) for n in sorted(names) if getattr(args, n, None) is not None}
    return make_attack(name, early_stop=early_stop, **given)
