"""`cli.py patch`: one-line refusals of bad input before any work, a tiny real build whose PNG --apply reads back,
and --apply of the shipped toaster patch agreeing with its sidecar's figure on the shipped held-out photos."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_checks import refused

import cli

ROOT = Path(__file__).resolve().parents[1]
TOASTER = ROOT / "data/patch/efficientnet_lite0_toaster.png"


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--size", "0.6"], "1-50% of the image area"),
        (["--size", "0.5%"], "1-50% of the image area"),
        (["--size", "big"], "such as 0.1 or 10%"),
        (["--target", "not a class"], "not a class"),
        (["--steps", "0"], "steps"),
        (["--model", "nonet"], "nonet"),
    ],
)
def test_bad_settings_are_one_line(capsys, tmp_path: Path, extra: list[str], words: str) -> None:
    refused(capsys, ["patch", "--images", "samples", "--out", str(tmp_path), *extra], words)
    assert not any(tmp_path.iterdir()), "nothing is written for refused input"


def test_bad_files_are_one_line(capsys, tmp_path: Path) -> None:
    refused(capsys, ["patch", "--images", "samples"], "--out")
    refused(capsys, ["patch", "--apply", str(tmp_path / "missing.png")], "existing patch image")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    refused(capsys, ["patch", "--apply", str(text)], "is not a usable image")


def test_apply_the_shipped_patch_agrees_with_its_sidecar(capsys) -> None:
    meta = json.loads(TOASTER.with_suffix(".json").read_text())
    here = meta["shipped_heldout"]
    argv = ["patch", "--apply", str(TOASTER), "--images", str(ROOT / here["folder"]), "--size", "10%", "--json"]
    assert cli.main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["target"] == "toaster" and data["n_counted"] == here["n"]
    assert data["targeted_success"] == here["patch"][here["sizes"].index(0.10)]
    assert data["controls"]["grey"]["rate"] == here["grey"][here["sizes"].index(0.10)]
    assert len(data["hit_images"]) == data["n_hits"]


def test_a_tiny_build_writes_a_patch_that_apply_reads(capsys, tmp_path: Path) -> None:
    argv = ["patch", "--images", "samples", "--max-images", "6", "--holdout", "2", "--steps", "2"]
    assert cli.main([*argv, "--batch-size", "2", "--out", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["steps_run"] == 2 and data["n_train"] == 4 and data["n_heldout"] == 2
    assert data["heldout"]["size"] == 0.10 and data["heldout"]["n"] <= 2
    assert (tmp_path / "patch.png").exists() and (tmp_path / "result.json").exists()
    assert cli.main(["patch", "--apply", str(tmp_path / "patch.png"), "--images", "samples", "--max-images", "3"]) == 0
    assert "images become toaster" in capsys.readouterr().out
