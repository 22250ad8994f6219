"""The Universal perturbations page, headless with AppTest on Lite0: it opens on the shipped perturbation, a small
SGD run finishes with its fooling ratios, and a bad .npy upload is one error line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from models import OFFLINE_MODELS

ROOT = Path(__file__).resolve().parents[1]
K = "exp.univ."
TIMEOUT = 600  # a loaded 2-core machine


@pytest.fixture(scope="module")
def opened() -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages/universal.py"), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _shipped_meta(model: str = "efficientnet_lite0") -> dict:
    return json.loads((ROOT / f"data/universal/{model}_linf10.json").read_text())


def test_opens_on_the_shipped_perturbation_applied(opened: AppTest) -> None:
    at = opened
    assert not _errors(at)
    text = " ".join(m.value for m in at.markdown)
    meta = _shipped_meta()
    here = meta["shipped_heldout"]
    n = len(here["files"])
    assert "shipped with the app" in text
    assert f"held-out fooling ratio **{meta['heldout_fooling']:.0%}** of {meta['split']['n_heldout']} unseen" in text
    assert (
        f"**{meta['noise_heldout_fooling']:.0%}** for random" in text
        and f"trained on {meta['split']['n_train']}" in text
    )
    status = f"measured here on {n} of them: **{here['heldout_fooling']:.0%}** vs noise"
    assert status in text, text
    # the cross-model row of the shipped v on its own model: the same figure, the same photos, the same function
    heatmaps = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    cells = [t for f in heatmaps for t in f["data"] if t.get("type") == "heatmap"]
    assert cells and cells[0]["text"][0][0] == f"{here['heldout_fooling']:.0%}", cells
    # every offline model's shipped v is a row; each on its own model is its sidecar's figure (the same 24 photos)
    grid = cells[0]
    assert len(grid["y"]) == len(OFFLINE_MODELS), grid["y"]
    for i, model_name in enumerate(OFFLINE_MODELS):
        j = list(grid["x"]).index(grid["y"][i])
        assert grid["text"][i][j] == f"{_shipped_meta(model_name)['shipped_heldout']['heldout_fooling']:.0%}"
    assert "Held-out images on EfficientNet-Lite0:" in text
    assert not [b for b in at.button if b.key == "exp.univ_back"]  # already the shipped v
    captions = [c for img in at.get("image") for c in img.captions]
    assert any(c.startswith("Before:") for c in captions) and any(c.startswith("After:") for c in captions)
    assert any("amplified ×" in c for c in captions)
    assert len(at.get("plotly_chart")) >= 3  # before/after bars and the cross-model heatmap


@pytest.mark.slow
def test_small_sgd_run_finishes_with_fooling_ratios(opened: AppTest) -> None:
    at = opened
    at.session_state[K + "count"] = 4
    at.session_state[K + "holdout"] = 1
    at.session_state[K + "passes"] = 1
    at.session_state[K + "method"] = "sgd"
    at.run()
    at.button(key=K + "run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not _errors(at)
    text = " ".join(m.value for m in at.markdown)
    assert "**Pass 1 of 1**" in text and "training **" in text and "of 3, held-out **" in text, text
    captions = [c for img in at.get("image") for c in img.captions]
    assert any("from your run" in c for c in captions), captions
    job = at.session_state[K + "job"]
    assert job.status == "finished" and job.data["history"][-1][0] == 1
    assert np.abs(job.data["v"]).max() <= 10 / 255 + 1e-6
    # The cross-model table stays the shipped perturbations' (its caption says so), and one button brings the
    # shipped v back in place of the run's.
    assert any("The perturbations shipped with the app" in c.value for c in at.caption)
    at.button(key="exp.univ_back").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "shipped with the app" in " ".join(m.value for m in at.markdown)
    assert not [b for b in at.button if b.key == "exp.univ_back"]


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("notes.npy", b"this is not an array", "not a NumPy .npy file"),
        ("flat.npy", _npy(np.zeros((224, 224), np.float32)), "(3,H,W)"),
        ("huge.npy", _npy(np.full((3, 16, 16), 7.0, np.float32)), "[-1, 1]"),
    ],
    ids=["text", "flat", "too-large"],
)
def test_bad_perturbation_upload_is_one_error(name: str, content: bytes, words: str) -> None:
    at = AppTest.from_file(str(ROOT / "pages/universal.py"), default_timeout=TIMEOUT)
    at.run()
    at.get("file_uploader")[0].set_value((name, content, "application/octet-stream")).run()
    assert not at.exception, [e.value for e in at.exception]
    errors = _errors(at)
    assert len(errors) == 1 and words in errors[0], errors
    assert "shipped with the app" in " ".join(m.value for m in at.markdown)  # the shown v is unchanged


@pytest.mark.slow
def test_attack_lab_adds_the_sessions_universal_perturbation() -> None:
    """With a v from this session (here: the shipped one, as if loaded), the Attack Lab offers it under the result
    and shows what the model says for the adversarial image + v; without one it offers nothing."""
    at = AppTest.from_file(str(ROOT / "pages/attack_lab.py"), default_timeout=TIMEOUT)
    at.run()
    at.button(key="run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not [c for c in at.checkbox if c.key == "lab.univ"]
    v = np.load(ROOT / "data/universal/efficientnet_lite0_linf10.npy")
    at.session_state[K + "current"] = (v, {"model": "efficientnet_lite0"}, "loaded")
    at.run()
    box = next(c for c in at.checkbox if c.key == "lab.univ")
    box.check().run()
    assert not at.exception, [e.value for e in at.exception]
    captions = [c for img in at.get("image") for c in img.captions]
    assert any(c.startswith("Before: umbrella") for c in captions), captions
    assert any(c.startswith("After:") for c in captions), captions


@pytest.mark.parametrize("model_name", OFFLINE_MODELS)
def test_sidecar_heldout_figures_recompute_from_the_npy(model_name: str) -> None:
    """Each offline model's shipped v (the cross-model table's rows): the sidecar's figures on the shipped held-out
    photos recompute from the .npy by universal.evaluate, the split is the 999 photos' (the same for all three, so
    one held-out set measures every row) with sizes, and v beats the same-L-inf noise control on unseen photos."""
    from experiments.universal import universal
    from models import get_spec, load_model

    meta = _shipped_meta(model_name)
    split, here = meta["split"], meta["shipped_heldout"]
    assert split["n_train"] + split["n_heldout"] == 999 and len(meta["heldout_images"]) == split["n_heldout"]
    assert not set(meta["train_images"]) & set(meta["heldout_images"])
    assert meta["heldout_images"] == _shipped_meta()["heldout_images"]
    assert meta["heldout_fooling"] >= meta["noise_heldout_fooling"] + 0.3
    v, _ = universal.load_perturbation(ROOT / f"data/universal/{model_name}_linf10.npy")
    size = get_spec(model_name).input_size
    assert v.shape == (3, size, size) and float(v.abs().max()) <= 10 / 255 + 1e-4
    _, photos = universal.load_image_set(str(ROOT / "data/universal/heldout"))
    model = load_model(meta["model"])
    assert universal.evaluate(model, photos, v) == here["heldout_fooling"]
    noise = universal.sign_noise(v.shape, 10.0, meta["noise_control"]["seed"])
    assert universal.evaluate(model, photos, noise) == here["noise_heldout_fooling"]
