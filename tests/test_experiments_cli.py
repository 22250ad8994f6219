"""The synthesize / transfer / robustness commands: files written, numbers measured on the saved PNGs, and every
bad input answered with exit code 2 and one line on stderr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

import cli
from experiments.common import classify
from images import SAMPLES
from models import load_model

UMBRELLA = 879
IMAGE = "imagenet_16" if "imagenet_16" in SAMPLES else "chelsea"


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run `python cli.py ARGV` in-process through cli.main, returning (exit code, stdout, stderr)."""
    try:
        code = cli.main(argv)
    except SystemExit as stop:  # argparse's own errors exit 2 with one line
        code = int(stop.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def _png(path: Path) -> Image.Image:
    with Image.open(path) as im:
        assert im.mode == "RGB"
        return im.convert("RGB")


def test_synthesize_gradient_writes_a_99_percent_png(tmp_path, capsys) -> None:
    code, out, err = run_cli(
        ["synthesize", "--target", "umbrella", "--init", "gaussian", "--out", str(tmp_path), "--json"], capsys
    )
    assert code == 0, err
    data = json.loads(out)
    assert json.loads((tmp_path / "result.json").read_text()) == data
    assert data["target"] == {"index": UMBRELLA, "label": "umbrella"} and data["method"] == "gradient"
    saved = _png(tmp_path / "synthesized.png")
    assert saved.size == (224, 224) and _png(tmp_path / "start.png").size == (224, 224)
    probs = classify(load_model("efficientnet_lite0"), [saved])[0]
    assert int(probs.argmax()) == UMBRELLA and float(probs[UMBRELLA]) >= 0.99
    assert data["success"] and data["final"]["target_probability"] == pytest.approx(float(probs[UMBRELLA]), abs=1e-6)
    assert data["steps"] >= 1 and 0 < data["rms_distortion_from_start"] < 0.1


def test_synthesize_evolution_counts_queries(tmp_path, capsys) -> None:
    code, out, err = run_cli(
        [
            "synthesize",
            "--target",
            "chain mail",
            "--init",
            "grey",
            "--method",
            "evolution",
            "--steps",
            "2",
            "--population",
            "4",
            "--out",
            str(tmp_path),
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["generations"] == 2 and data["queries"] == 1 + 2 * 5
    probs = classify(load_model("efficientnet_lite0"), [_png(tmp_path / "synthesized.png")])[0]
    assert data["final"]["target_probability"] == pytest.approx(float(probs[data["target"]["index"]]), abs=1e-6)


def test_synthesize_visualize_text_output(tmp_path, capsys) -> None:
    code, out, err = run_cli(
        [
            "synthesize",
            "--target",
            "goldfish",
            "--init",
            "uniform",
            "--method",
            "visualize",
            "--steps",
            "2",
            "--out",
            str(tmp_path),
        ],
        capsys,
    )
    assert code == 0, err
    assert "goldfish" in out and f"written to {tmp_path}/" in out and "after 2 steps" in out
    assert (tmp_path / "synthesized.png").exists()


@pytest.fixture(scope="module")
def transferred(tmp_path_factory) -> tuple[Path, dict]:
    """One targeted relabel transfer run from Lite0, evaluated on Lite0 and Lite1."""
    folder = tmp_path_factory.mktemp("transfer")
    assert (
        cli.main(
            [
                "transfer",
                "--image",
                IMAGE,
                "--target",
                "umbrella",
                "--eval-models",
                "efficientnet_lite0,efficientnet_lite1",
                "--out",
                str(folder),
            ]
        )
        == 0
    )
    return folder, json.loads((folder / "transfer.json").read_text())


def test_transfer_evaluates_the_saved_png_on_every_model(transferred) -> None:
    folder, data = transferred
    evals = data["evaluations"]
    assert [e["model"] for e in evals] == ["efficientnet_lite0", "efficientnet_lite1"]
    assert evals[0]["attacked"] and not evals[1]["attacked"]
    assert data["attack"]["success"] and evals[0]["fooled"] and evals[0]["predicted"]["index"] == UMBRELLA
    for model, e in zip(("efficientnet_lite0", "efficientnet_lite1"), evals, strict=True):
        probs = classify(load_model(model), [_png(folder / "adversarial.png")])[0]
        assert e["p_target"] == pytest.approx(float(probs[UMBRELLA]), abs=1e-6)
        assert e["fooled"] == (int(probs.argmax()) == UMBRELLA)
    assert _png(folder / "original.png").size == (224, 224)


def test_untargeted_transfer_text_output(tmp_path, capsys) -> None:
    code, out, err = run_cli(
        [
            "transfer",
            "--image",
            IMAGE,
            "--attack",
            "fgsm",
            "--eps",
            "8",
            "--eval-models",
            "efficientnet_lite0",
            "--out",
            str(tmp_path),
        ],
        capsys,
    )
    assert code == 0, err
    assert "(untargeted)" in out and "efficientnet_lite0 *" in out
    data = json.loads((tmp_path / "transfer.json").read_text())
    assert data["evaluations"][0]["p_target"] is None and data["attack"]["target"] is None


def test_robustness_on_the_attack_output(transferred, tmp_path, capsys) -> None:
    folder, _ = transferred
    code, out, err = run_cli(
        [
            "robustness",
            "--original",
            str(folder / "original.png"),
            "--adversarial",
            str(folder / "adversarial.png"),
            "--transforms",
            "mirror,jpeg",
            "--out",
            str(tmp_path),
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["adversarial"]["index"] == UMBRELLA and data["untransformed"]["still_fooled"]
    rows = data["rows"]
    assert [r["transform"] for r in rows] == ["mirror"] + ["jpeg"] * 6
    assert rows[0]["reverted"] and not rows[0]["still_fooled"]  # seed 004 sec. 3.1: the mirror undoes it
    assert data["summary"]["transforms"] == 7 and (tmp_path / "jpeg_75.png").exists()
    code, out, _ = run_cli(
        [
            "robustness",
            "--original",
            str(folder / "original.png"),
            "--adversarial",
            str(folder / "adversarial.png"),
            "--transforms",
            "shift",
        ],
        capsys,
    )
    assert code == 0 and "Translation 4 px" in out and "still fooled" in out.splitlines()[-1]


def _two_sizes(tmp_path: Path) -> tuple[str, str]:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    Image.new("RGB", (224, 224), (120, 20, 30)).save(a)
    Image.new("RGB", (200, 224), (120, 20, 30)).save(b)
    return str(a), str(b)


BAD = [
    (["synthesize", "--target", "not a class"], "unknown class name"),
    (["synthesize", "--target", "umbrella", "--init", "pink"], "unknown --init"),
    (["synthesize", "--target", "umbrella", "--method", "magic"], "unknown --method"),
    (["synthesize", "--target", "umbrella", "--model", "nope"], "unknown model"),
    (["synthesize", "--target", "umbrella", "--confidence", "1.5"], "--confidence"),
    (["synthesize", "--target", "umbrella", "--method", "evolution", "--population", "5"], "even"),
    (["synthesize", "--target", "umbrella", "--steps", "0"], "steps must be between"),
    (["transfer", "--image", "no_such_file.png", "--target", "umbrella"], "no such file"),
    (["transfer", "--image", "chelsea", "--eval-models", "nope"], "unknown model"),
    (["transfer", "--image", "chelsea", "--target", "all"], "must name one class"),
    (["transfer", "--image", "chelsea", "--attack", "relabel"], "needs a target"),
    (["transfer", "--image", "chelsea", "--attack", "pgd", "--eps", "-3"], "eps must be between"),
    (["transfer", "--image", "chelsea", "--diversity", "2"], "input diversity"),
    (["robustness", "--original", "no_such.png", "--adversarial", "no_such.png"], "no such file"),
    (["robustness", "--original", "A", "--adversarial", "B", "--transforms", "sepia"], "unknown transform"),
    (["robustness", "--original", "A", "--adversarial", "B"], "differ|is 224x224 but"),
    (["synthesize", "--target", "umbrella"], "--out"),
]


@pytest.mark.parametrize("argv,fragment", BAD, ids=[" ".join(a[:3]) + f"-{i}" for i, (a, _) in enumerate(BAD)])
def test_bad_input_is_exit_2_and_one_line(argv: list[str], fragment: str, tmp_path, capsys) -> None:
    a, b = _two_sizes(tmp_path)
    argv = [a if v == "A" else b if v == "B" else v for v in argv]
    if "--out" not in argv and argv != ["synthesize", "--target", "umbrella"]:
        argv += ["--out", str(tmp_path / "out")]
    code, out, err = run_cli(argv, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert any(f in lines[0] for f in fragment.split("|")), lines[0]
    assert "Traceback" not in err and out == ""
