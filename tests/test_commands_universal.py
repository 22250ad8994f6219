"""`cli.py universal`: one-line refusals of bad input before any work, and one real (small) run on Lite0 whose
saved perturbation is read back by --apply with the same fooling count."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_checks import refused

import cli
from images import load_sample


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--norm", "1"], "invalid choice: '1'"),
        (["--xi", "300"], "at most 255"),
        (["--xi", "0"], "greater than 0"),
        (["--norm", "2", "--xi", "-5"], "greater than 0"),
        (["--method", "fgsm"], "invalid choice: 'fgsm'"),
        (["--passes", "0"], "passes"),
        (["--holdout", "27"], "at least 2 training images"),
        (["--holdout", "0.97"], "at least 2 training images"),
        (["--holdout", "2.5"], "a fraction below 1"),
        (["--max-images", "0"], "--max-images"),
        (["--model", "nonet"], "nonet"),
    ],
)
def test_bad_settings_are_one_line(capsys, tmp_path: Path, extra: list[str], words: str) -> None:
    refused(capsys, ["universal", "--images", "samples", "--out", str(tmp_path), *extra], words)
    assert not any(tmp_path.iterdir()), "nothing is written for refused input"


def test_bad_files_and_sets_are_one_line(capsys, tmp_path: Path) -> None:
    refused(capsys, ["universal", "--images", str(tmp_path / "nowhere"), "--out", str(tmp_path)], "image set")
    refused(capsys, ["universal", "--images", "samples"], "--out")
    refused(capsys, ["universal", "--apply", str(tmp_path / "missing.npy")], "existing .npy")
    text = tmp_path / "notes.npy"
    text.write_text("not an array")
    refused(capsys, ["universal", "--apply", str(text)], "cannot read perturbation")
    flat = tmp_path / "flat.npy"
    np.save(flat, np.zeros((224, 224), np.float32))
    refused(capsys, ["universal", "--apply", str(flat)], "(3,H,W) perturbation")
    nan = tmp_path / "nan.npy"
    np.save(nan, np.full((3, 8, 8), np.nan, np.float32))
    refused(capsys, ["universal", "--apply", str(nan)], "finite")


@pytest.mark.slow
def test_small_sgd_run_writes_its_files_and_apply_recounts_it(capsys, tmp_path: Path) -> None:
    """Lite0, three sample photos from a folder, one SGD pass: the files exist, v is in its ball, and --apply on the
    same images finds the same number of fooled images as the run reported (train + held-out)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("chelsea", "coffee", "rocket"):
        load_sample(name).save(folder / f"{name}.png")
    out = tmp_path / "out"
    argv = ["universal", "--images", str(folder), "--method", "sgd", "--passes", "1", "--holdout", "1"]
    assert cli.main([*argv, "--xi", "8", "--out", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    files = {"perturbation.npy", "perturbation.json", "perturbation.png", "result.json"}
    assert {p.name for p in out.iterdir()} == files
    assert json.loads((out / "result.json").read_text()) == data
    assert (data["n_train"], data["n_heldout"], data["passes_run"]) == (2, 1, 1)
    assert sorted(data["train_images"] + data["heldout_images"]) == ["chelsea.png", "coffee.png", "rocket.png"]
    v = np.load(out / "perturbation.npy")
    assert v.shape == (3, 224, 224) and np.abs(v).max() <= 8 / 255 + 1e-6
    assert json.loads((out / "perturbation.json").read_text())["train_images"] == data["train_images"]

    assert cli.main(["universal", "--apply", str(out / "perturbation.npy"), "--images", str(folder), "--json"]) == 0
    applied = json.loads(capsys.readouterr().out)
    fooled = round(data["train_fooling"] * 2) + round(data["heldout_fooling"] * 1)
    assert (applied["n_images"], applied["n_fooled"]) == (3, fooled)
    assert applied["n_unseen"] == 1 and applied["unseen_fooling_ratio"] == data["heldout_fooling"]


def test_holdout_is_a_count_or_a_fraction() -> None:
    """--holdout's help says count or fraction, and both are taken: 0.2 of 28 is 6, 200 is 200."""
    from commands.universal import _holdout, holdout_count

    assert holdout_count(_holdout("0.2"), 28) == 6 and holdout_count(_holdout("200"), 999) == 200
    assert holdout_count(None, 28) is None and holdout_count(_holdout("0"), 28) == 0
