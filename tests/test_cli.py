"""The command-line contract: outputs, JSON fields, honest success on the saved PNG, exit 2 on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

import cli
from images import load_image
from models import load_model, pil_to_tensor

ROOT = Path(__file__).resolve().parents[1]


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_models_json(capsys) -> None:
    code, out, _ = run(["models", "--json"], capsys)
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0
    assert rows["efficientnet_lite0"]["offline"] and rows["efficientnet_lite0"]["cached"]
    assert rows["efficientnet_lite0"]["input_size"] == 224 and rows["efficientnet_lite2"]["input_size"] == 260
    assert {"alexnet", "googlenet", "resnet50", "vgg16", "mobilenet_v3_large", "vit_b_16"} <= set(rows)
    assert not rows["resnet50"]["offline"]


def test_classify_json(capsys) -> None:
    code, out, _ = run(
        ["classify", "--model", "efficientnet_lite0", "--image", "coffee", "--top", "3", "--json"], capsys
    )
    data = json.loads(out)
    assert code == 0 and len(data["top"]) == 3 and data["top"][0]["label"] == "espresso"


def test_relabel_chelsea_to_umbrella_is_verified_on_the_png(tmp_path, capsys, lite0) -> None:
    out_dir = tmp_path / "out"
    code, out, _ = run(
        [
            "attack",
            "--model",
            "efficientnet_lite0",
            "--image",
            "chelsea",
            "--attack",
            "relabel",
            "--target",
            "umbrella",
            "--out",
            str(out_dir),
            "--json",
        ],
        capsys,
    )
    assert code == 0
    result = json.loads(out)
    assert result == json.loads((out_dir / "result.json").read_text())
    for key in (
        "model",
        "attack",
        "parameters",
        "source",
        "target",
        "final",
        "success",
        "iterations",
        "rms_distortion",
        "linf",
        "seconds",
    ):
        assert key in result
    assert result["success"] and result["target"] == {"index": 879, "label": "umbrella"}
    assert result["rms_distortion"] <= 0.01
    # Independently: load the PNG, classify it, recompute the distortion.
    original = Image.open(out_dir / "original.png")
    adversarial = Image.open(out_dir / "adversarial.png")
    assert original.size == adversarial.size == (224, 224)
    assert original.tobytes() == lite0.preprocess(load_image("chelsea")).tobytes()
    x0, xa = pil_to_tensor(original), pil_to_tensor(adversarial)
    assert lite0.categories[int(lite0(xa).argmax())] == "umbrella"
    assert float(((xa - x0) ** 2).mean().sqrt()) == pytest.approx(result["rms_distortion"], abs=1e-6)
    diff = pil_to_tensor(Image.open(out_dir / "difference.png"))
    assert torch.allclose(diff, (0.5 + 10 * (xa - x0)).clamp(0, 1), atol=1 / 255)
    # What a newcomer does next: `cli.py classify` on the saved file takes it whole (no second resize and crop).
    code, out, _ = run(["classify", "--image", str(out_dir / "adversarial.png"), "--top", "1", "--json"], capsys)
    assert code == 0 and json.loads(out)["top"][0]["label"] == "umbrella"


def test_several_targets_write_subfolders_and_a_summary(tmp_path, capsys) -> None:
    out_dir = tmp_path / "many"
    code, out, err = run(
        [
            "attack",
            "--image",
            "coffee",
            "--target",
            "umbrella",
            "--target",
            "random:2",
            "--steps",
            "60",
            "--out",
            str(out_dir),
            "--json",
        ],
        capsys,
    )
    assert code == 0
    data = json.loads(out)
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["count"] == 3 == len(data["results"])
    assert 0 <= summary["success_rate"] <= 1 and "mean_iterations" in summary and "mean_rms_distortion" in summary
    for r in data["results"]:
        folder = out_dir / str(r["target"]["index"])
        assert {p.name for p in folder.iterdir()} == {
            "original.png",
            "adversarial.png",
            "difference.png",
            "result.json",
        }
    assert "3/3 targets" in err  # progress bar on stderr


def test_untargeted_pgd(tmp_path, capsys) -> None:
    code, out, _ = run(
        [
            "attack",
            "--image",
            "chelsea",
            "--attack",
            "pgd",
            "--eps",
            "2",
            "--steps",
            "10",
            "--out",
            str(tmp_path),
            "--json",
        ],
        capsys,
    )
    data = json.loads(out)
    assert code == 0 and data["target"] is None
    assert data["linf"] <= 2 / 255 + 1e-6
    assert data["success"] == (data["final"]["index"] != data["source"]["index"])


def test_untargeted_success_is_a_confident_flip_not_a_random_start(tmp_path, capsys) -> None:
    """Regression (issue 7, README's PGD example): chelsea is a near tie (tiger cat / Egyptian cat), so PGD's random
    start alone flipped it and the CLI reported success at iteration 0. Success now needs the new top class at the
    default confidence, stated in the JSON."""
    code, out, _ = run(
        ["attack", "--image", "chelsea", "--attack", "pgd", "--eps", "4", "--steps", "20", "--out", str(tmp_path)]
        + ["--json"],
        capsys,
    )
    data = json.loads(out)
    assert code == 0 and data["confidence"] == 0.9 and data["parameters"]["random_start"] == 1
    assert data["iterations"] >= 1  # the random start (iteration 0) is not an attack
    assert data["success"] == (
        data["final"]["index"] != data["source"]["index"] and data["final"]["probability"] >= 0.9
    )


def test_targeted_success_needs_the_default_confidence(tmp_path, capsys) -> None:
    """Regression (issue 7 bug 6): `attack --target umbrella` printed SUCCESS at p(umbrella) = 18%. The CLI's default
    is the pages' 0.9, in the JSON; `--confidence 0` is the paper's top-1 criterion."""
    code, out, _ = run(
        ["attack", "--image", "chelsea", "--target", "umbrella", "--steps", "40", "--out", str(tmp_path), "--json"],
        capsys,
    )
    data = json.loads(out)
    assert code == 0 and data["confidence"] == 0.9
    assert data["success"] == (data["final"]["index"] == 879 and data["final"]["target_probability"] >= 0.9), data[
        "final"
    ]
    code, out, _ = run(
        ["attack", "--image", "chelsea", "--target", "umbrella", "--steps", "40", "--confidence", "0"]
        + ["--out", str(tmp_path / "top1"), "--json"],
        capsys,
    )
    top1 = json.loads(out)
    assert code == 0 and top1["confidence"] == 0.0 and top1["success"] == (top1["final"]["index"] == 879)


def test_classify_and_robustness_read_a_square_photo_alike(tmp_path, capsys) -> None:
    """Regression (issue 7 bug 7): robustness took any square image whole, classify only one of the input size.
    One rule (models.is_model_input): the two commands now see the same pixels of a 300x300 photo."""
    squares = []
    for sample in ("chelsea", "coffee"):
        photo = load_image(sample)
        side = min(photo.size)
        squares.append(tmp_path / f"{sample}.png")
        photo.crop((0, 0, side, side)).resize((300, 300)).save(squares[-1])
    code, out, _ = run(["classify", "--image", str(squares[0]), "--top", "1", "--json"], capsys)
    top = json.loads(out)["top"][0]
    argv = ["robustness", "--original", str(squares[1]), "--adversarial", str(squares[0]), "--transforms", "mirror"]
    code2, out2, _ = run([*argv, "--json"], capsys)
    assert code == 0 and code2 == 0
    base = json.loads(out2)["untransformed"]
    assert base["index"] == top["index"] and base["probability"] == pytest.approx(top["probability"], abs=1e-5)


BAD = [
    (["attack", "--model", "resnet5", "--image", "chelsea", "--target", "1", "--out", "X"], "unknown model"),
    (["attack", "--image", "chelsea", "--target", "umbrela", "--out", "X"], "unknown class name 'umbrela'"),
    (["attack", "--image", "no/such/file.png", "--target", "1", "--out", "X"], "no such file or sample"),
    (["attack", "--image", "chelsea", "--target", "1", "--step-size", "0", "--out", "X"], "step_size must be"),
    (["attack", "--image", "chelsea", "--target", "1", "--steps", "-3", "--out", "X"], "steps must be"),
    (["attack", "--image", "chelsea", "--attack", "nope", "--target", "1", "--out", "X"], "unknown attack"),
    (["attack", "--image", "chelsea", "--attack", "relabel", "--out", "X"], "needs a target"),
    (["attack", "--image", "chelsea", "--target", "tiger cat", "--out", "X"], "equals the image's current class"),
    (["attack", "--image", "chelsea", "--target", "random:1000", "--out", "X"], "random:N"),
    (["attack", "--image", "chelsea", "--attack", "fgsm", "--max-rms", "0.1", "--out", "X"], "no parameter max_rms"),
    (["classify", "--image", "chelsea", "--top", "0"], "--top must be"),
]


@pytest.mark.parametrize("argv,fragment", BAD, ids=[b[1] for b in BAD])
def test_bad_input_exits_2_with_one_line(argv: list[str], fragment: str, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(argv, capsys)
    assert code == 2
    assert err.count("\n") == 1 and fragment in err, err
    assert not (tmp_path / "X").exists()


def test_missing_argument_is_one_line(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["attack", "--image", "chelsea"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1 and "required" in err


def test_corrupt_image_file_and_real_entry_point(tmp_path) -> None:
    bad = tmp_path / "broken.png"
    good = tmp_path / "ok.png"
    Image.new("RGB", (64, 64), (200, 10, 10)).save(good)
    bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    proc = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "classify", "--image", str(bad)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:") and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr


def test_saved_png_reclassified_not_float(lite0) -> None:
    """The JSON's verdict equals a fresh classification of the saved 8-bit file (guards verify())."""
    from attacks import make_attack
    from attacks.runner import attack_targets

    original = lite0.preprocess(load_image("coffee"))
    (r,) = attack_targets(lite0, original, make_attack("relabel"), [879], confidence=0.0)
    probs = load_model("efficientnet_lite0", device="cpu").probabilities(pil_to_tensor(r.adversarial))[0]
    assert int(probs.argmax()) == r.verdict.index
    assert r.success == (r.verdict.index == 879)
