"""The CLI package: instant help, hyperparameter flags generated from the attacks' params, one confidence default."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import cli
from attacks import ATTACKS, DEFAULT_CONFIDENCE
from commands.common import make_attack_from

ROOT = Path(__file__).resolve().parents[1]


def test_help_and_argument_errors_import_no_torch() -> None:
    """`cli.py --help` and a missing argument are answered without importing torch, models or attacks."""
    code = (
        "import sys, cli\n"
        "for argv in (['--help'], ['attack', '--image', 'chelsea'], ['transfer', '--image', 'x', '--out', 'y', "
        "'--diversity', 'abc']):\n"
        "    try:\n"
        "        cli.main(argv)\n"
        "    except SystemExit as stop:\n"
        "        assert stop.code in (0, 2), stop.code\n"
        "print(sorted(m for m in ('torch', 'models', 'attacks', 'experiments') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_attack_help_lists_every_hyperparameter_of_every_attack(capsys) -> None:
    with pytest.raises(SystemExit):
        cli.main(["attack", "--attack", "cw", "--help"])
    text = capsys.readouterr().out
    for name, cls in ATTACKS.items():
        assert f"  {name}: {cls.title}" in text
        for p in cls.params:
            assert f"--{p.name.replace('_', '-')}" in text and f"[{p.low:g}, {p.high:g}]" in text
    flat = " ".join(text.split())  # argparse wraps help text to the terminal's width
    assert "default 0.9" in flat and "0 = the paper's top-1 criterion" in flat


@pytest.mark.parametrize("name", list(ATTACKS))
def test_every_hyperparameter_reaches_the_attack(name: str) -> None:
    """Each flag sets the parameter of the same name (the page's names and ranges): here, each one's upper bound."""
    params = ATTACKS[name].params
    argv = ["attack", "--image", "x", "--out", "y", "--attack", name]
    for p in params:
        argv += [f"--{p.name.replace('_', '-')}", str(int(p.high) if p.integer else p.high)]
    args = cli.build_parser("attack").parse_args(argv)
    attack = make_attack_from(args, name)
    assert attack.hparams == {p.name: p.high for p in params}


def test_one_confidence_default() -> None:
    """Regression (issue 7 bug 6): the CLI's attack and transfer default to the pages' confidence."""
    for command in ("attack", "transfer"):
        args = cli.build_parser(command).parse_args([command, "--image", "x", "--out", "y"])
        assert args.confidence == DEFAULT_CONFIDENCE == 0.9
