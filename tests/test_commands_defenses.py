"""The defend and detect commands: bad input is exit code 2 and one line on stderr; one small real run of each on a
folder of shipped samples (two jeep photos and a few others), with numbers that follow from the JSON itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import cli
from commands.defend import DEFENSE_NAMES
from experiments.defenses.defenses import DEFENSES
from images import SAMPLES
from images.samples import load_sample

JEEP = 609
FAST = ["--step-size", "1", "--steps", "40"]  # relabel: 1/255 a step, at most 40 steps


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = cli.main(argv)
    except SystemExit as stop:  # argparse's own errors
        code = int(stop.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """<class index>/<id>.png: the two jeeps and three photos of other classes."""
    for sid in ("imagenet_06", "imagenet_07", "imagenet_00", "imagenet_14", "imagenet_16"):
        label = SAMPLES[sid].label
        (tmp_path / str(label)).mkdir(exist_ok=True)
        load_sample(sid).save(tmp_path / str(label) / f"{sid}.png")
    return tmp_path


def test_defense_names_match_the_registry() -> None:
    assert tuple(DEFENSES) == DEFENSE_NAMES


@pytest.mark.parametrize(
    "argv,fragment",
    [
        (["defend", "--defense", "nope"], "unknown defense 'nope'"),
        (["defend", "--defense", "jpeg", "--param", "quality=500"], "quality"),
        (["defend", "--defense", "jpeg", "--param", "quality"], "expected name=number"),
        (["defend", "--defense", "bits", "--param", "size=3"], "has no parameter size"),
        (["defend", "--defense", "bits", "--images", "/no/such/folder"], "no image set or folder named"),
        (["defend", "--defense", "bits", "--attack", "nope"], "nope"),
        (["defend", "--defense", "jpeg", "--blackbox", "--blackbox-eps", "0"], "eps must be between"),
        (["defend", "--defense", "jpeg", "--blackbox", "--blackbox-queries", "0"], "queries must be between"),
        (["detect", "--target", "no such class"], "no such class"),
        (["detect", "--method", "other"], "invalid choice"),
        (["detect", "--splits", "0"], "--splits"),
    ],
)
def test_bad_input_is_exit_2_and_one_line(argv: list[str], fragment: str, capsys) -> None:
    code, out, err = run_cli(argv, capsys)
    assert code == 2 and not out
    assert fragment in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.slow
def test_defend_bits_on_a_small_folder(folder: Path, capsys) -> None:
    argv = ["defend", "--defense", "bits", "--param", "bits=4", "--images", str(folder), "--adaptive", "--json"]
    code, out, err = run_cli(argv + FAST, capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["images_total"] == 5 and 1 <= data["images"] <= 5
    (row,) = data["rows"]
    assert row["defense"] == "bits" and row["params"] == {"bits": 4} and row["adaptive_method"] == "BPDA"
    assert row["images"] == data["images"] and 0 <= row["clean_correct"] <= row["images"]
    assert 0 <= row["nonadaptive_fooled"] <= row["clean_correct"] and row["adaptive_fooled"] is not None
    assert data["attack_params"]["steps"] == 40 and data["bare_fooled"] == row["bare_fooled"]
    code, out, err = run_cli(argv[:-2] + FAST, capsys)  # text, without the adaptive attacker
    assert code == 0, err
    assert "bits bits=4" in out and out.rstrip().endswith("BPDA") and " - " in out


@pytest.mark.slow
def test_detect_svm_on_a_small_folder(folder: Path, capsys) -> None:
    argv = ["detect", "--images", str(folder), "--target", "jeep", "--train", "1", "--test", "1", "--splits", "3"]
    code, out, err = run_cli([*argv, "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["target"] == {"index": JEEP, "label": "jeep"}
    assert data["exemplars"] == 2 and data["exemplar_photos"] == 2 and data["impostor_attempts"] <= 3
    acc = data["accuracy"]
    assert acc["splits"] == 3 and acc["train_per_class"] == 1 and acc["test_per_class"] == 1
    assert all(a in (0.0, 0.5, 1.0) for a in acc["accuracies"])  # 1+1 test items per split


def test_detect_folder_too_small_for_the_papers_design(folder: Path, capsys) -> None:
    code, out, err = run_cli(["detect", "--images", str(folder), "--target", "jeep", "--splits", "1"], capsys)
    assert code == 2 and "too few" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_detect_squeeze_on_a_small_folder(folder: Path, capsys) -> None:
    """Feature squeezing from the command line: per attack an AUC in [0, 1], a threshold set on 2 of the 5 clean
    images and its false-positive rate measured on the other 3, and counts of the attempts that really fooled."""
    code, out, err = run_cli(["detect", "--method", "squeeze", "--images", str(folder), "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["images"] == 5 and {"fgsm", "pgd"} <= set(data["attacks"])
    for result in data["attacks"].values():
        assert 0.0 <= result["auc"] <= 1.0 and 0 <= result["adversarial"] <= result["attempts"] <= 5
        assert result["calibration"] == 2 and result["held_out"] == 3
        assert round(result["fpr"] * 3) == pytest.approx(result["fpr"] * 3)  # a count of the 3 held-out images


@pytest.mark.slow
def test_defend_jpeg_with_the_black_box_attacker(folder: Path, capsys) -> None:
    """Square querying JPEG-defended Lite0: its count and median queries are in the JSON row and the table."""
    argv = ["defend", "--defense", "jpeg", "--images", str(folder), "--attack", "fgsm", "--eps", "2"]
    bb = ["--blackbox", "--blackbox-eps", "8", "--blackbox-queries", "40"]
    code, out, err = run_cli([*argv, *bb, "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["blackbox_attack"] == "square" and data["blackbox_params"]["queries"] == 40
    assert 0 <= data["blackbox_bare_fooled"] <= data["images"]
    (row,) = data["rows"]
    assert 0 <= row["blackbox_fooled"] <= row["clean_correct"]
    if row["blackbox_fooled"]:
        assert 1 <= row["blackbox_queries_median"] <= 40
    code, out, err = run_cli([*argv, *bb], capsys)
    assert code == 0 and "black-box" in out and "med q" in out, err
