"""Universal perturbations on TinyNet (16x16): the ball, 8-bit honest fooling ratios, the engine's DeepFool inside,
determinism, held-out images kept out, save/load, and one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from tinynet import TinyClassifier
from torch import Tensor

from attacks import AttackError, Goal
from attacks.deepfool import DeepFool
from attacks.metrics import quantize
from experiments.common import exhaust
from experiments.universal.universal import (
    apply_perturbation,
    compute_universal,
    cross_model_table,
    evaluate,
    load_perturbation,
    resize_perturbation,
    save_perturbation,
    sign_noise,
    split_indices,
)
from models import pil_to_tensor


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def images(n: int = 16, seed: int = 1) -> Tensor:
    """n smooth 8-bit 16x16 images (low-frequency noise, so TinyNet gives them varied labels)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=g)  # (n, 3, 4, 4)
    return quantize(torch.nn.functional.interpolate(coarse, size=16, mode="bilinear"))  # (n, 3, 16, 16)


def run(method: str, norm: str = "inf", xi: float = 12.0, **kw) -> list:
    kw = {"holdout": 4, "passes": 3, "seed": 0} | kw
    return list(compute_universal(TinyClassifier(0), kw.pop("x", images()), norm=norm, xi=xi, method=method, **kw))


def recount(model, x: Tensor, v: Tensor) -> float:
    """Fooling ratio by hand: labels of the saved 8-bit x+v against those of x."""
    with torch.no_grad():
        clean = model(quantize(x)).argmax(1)
        pert = torch.round((x + v).clamp(0, 1) * 255) / 255
        return float((model(pert).argmax(1) != clean).float().mean())


@pytest.mark.parametrize("method", ["deepfool", "sgd"])
@pytest.mark.parametrize(("norm", "xi"), [("inf", 12.0), ("2", 80.0)])
def test_v_in_ball_pixels_in_range_and_ratios_recounted(method: str, norm: str, xi: float) -> None:
    x = images()
    steps = run(method, norm, xi, x=x)
    for p in steps:
        size = p.v.abs().max() if norm == "inf" else p.v.norm()
        assert float(size) <= xi / 255 + 1e-6
        out = apply_perturbation(x, p.v)
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
        assert torch.equal(out, torch.round(out * 255) / 255)  # on the 8-bit grid
    last = steps[-1]
    assert last.done and float(last.v.abs().max()) > 0  # something was learnt
    model = TinyClassifier(0)
    assert last.train_fooling == pytest.approx(recount(model, x[list(last.train_ids)], last.v))
    assert last.heldout_fooling == pytest.approx(recount(model, x[list(last.heldout_ids)], last.v))
    assert (last.n_train, last.n_heldout) == (12, 4)


def test_first_deepfool_update_is_the_engines_deepfool() -> None:
    """With a ball too large to bind, v after the first update equals the engine's DeepFool step from that image."""
    x = images()
    steps = run("deepfool", "inf", 255.0, x=x, passes=1)
    first = next(p for p in steps if p.updated)
    (i,) = first.last_images
    model = TinyClassifier(0)
    label = model(x[i : i + 1]).argmax(1)
    last = exhaust(DeepFool(steps=10, overshoot=0.02, candidates=10).run(model, x[i : i + 1], Goal(label)))
    assert bool(last.success[0])
    assert torch.allclose(first.v, (last.x_adv - x[i : i + 1])[0], atol=1e-7)


@pytest.mark.parametrize("method", ["deepfool", "sgd"])
def test_deterministic_under_seed(method: str) -> None:
    a, b, c = run(method), run(method), run(method, seed=1)
    assert all(torch.equal(p.v, q.v) for p, q in zip(a, b, strict=True))
    assert [p.train_fooling for p in a] == [p.train_fooling for p in b]
    assert c[-1].heldout_ids != a[-1].heldout_ids or not torch.equal(c[-1].v, a[-1].v)


class NoNanGradients(TinyClassifier):
    """Refuses any input that carries NaN into a forward pass that builds a graph (i.e. reaches a gradient)."""

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled() and x.requires_grad and bool(torch.isnan(x).any()):
            raise AssertionError("a held-out image reached a gradient")
        return super().forward(x)


@pytest.mark.parametrize("method", ["deepfool", "sgd"])
def test_heldout_images_never_build_v(method: str) -> None:
    """Held-out images poisoned with NaN: no gradient ever sees them, no update uses them, and v is unchanged."""
    x = images()
    train, held = split_indices(len(x), 4, 0)
    poisoned = x.clone()
    poisoned[list(held)] = float("nan")
    clean = run(method, x=x)
    steps = list(
        compute_universal(NoNanGradients(0), poisoned, norm="inf", xi=12.0, method=method, holdout=4, passes=3)
    )
    assert steps[-1].heldout_ids == held and steps[-1].train_ids == train
    assert all(set(p.last_images) <= set(train) for p in steps)
    assert all(torch.equal(p.v, q.v) for p, q in zip(steps, clean, strict=True))


def test_save_load_round_trip_exact(tmp_path) -> None:
    last = run("sgd")[-1]
    paths = save_perturbation(tmp_path / "pert", last.v, last.to_json("tiny0"))
    v, meta = load_perturbation(paths["npy"])
    assert v.dtype == torch.float32 and float((v - last.v).abs().max()) < 1e-4  # float16 on disk: small files
    assert float(v.abs().max()) <= 12 / 255  # rounded toward 0, never out of the ball
    assert meta["model"] == "tiny0" and meta["norm"] == "inf" and meta["xi"] == 12.0
    assert meta["heldout_fooling"] == last.heldout_fooling and meta["n_train"] == 12
    png = np.asarray(Image.open(paths["png"]))
    assert png.shape == (16, 16, 3) and (png.min() == 0 or png.max() == 255)  # amplified to full range


def test_resize_keeps_linf_bound_and_cross_table() -> None:
    v = run("sgd")[-1].v
    big = resize_perturbation(v, (40, 40))
    assert big.shape == (3, 40, 40) and float(big.abs().max()) <= float(v.abs().max()) + 1e-7
    photos = [Image.fromarray(np.random.default_rng(i).integers(0, 256, (16, 16, 3), dtype=np.uint8)) for i in range(6)]
    models = [TinyClassifier(0), TinyClassifier(1)]
    table = cross_model_table(models, {"tiny0": v, "zero": torch.zeros_like(v)}, photos)
    assert table.columns == ["tiny0", "tiny1"] and table.n_images == 6
    assert table.ratio[1] == [0.0, 0.0]  # the zero perturbation fools nothing
    x = torch.cat([pil_to_tensor(p) for p in photos])  # (6, 3, 16, 16)
    assert table.ratio[0][1] == pytest.approx(recount(models[1], x, v))


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"xi": 0.0}, "xi must be greater than 0"),
        ({"xi": -3.0}, "xi must be greater than 0"),
        ({"norm": "1"}, "unknown norm '1'"),
        ({"method": "pgd"}, "unknown method 'pgd'"),
        ({"holdout": 15}, "need at least 2 training images"),
        ({"x": images(1)}, "need at least 2 training images"),
        ({"passes": 0}, "passes must be between"),
    ],
)
def test_bad_parameters_one_clear_line(kw: dict, words: str) -> None:
    with pytest.raises(AttackError, match=words) as err:
        run(kw.pop("method", "sgd"), **kw)
    assert "\n" not in str(err.value)


def test_run_status_cross_model_row_and_evaluate_are_one_figure() -> None:
    """The run's held-out figure, the cross-model row and evaluate() on the same held-out images are equal."""
    x = images()
    last = run("sgd", x=x)[-1]
    model = TinyClassifier(0)
    held = x[list(last.heldout_ids)]  # (4, 3, 16, 16)
    table = cross_model_table([model], {"tiny0": last.v}, held)  # type: ignore[arg-type]
    assert table.ratio[0][0] == evaluate(model, held, last.v) == last.heldout_fooling
    noise = sign_noise(last.v.shape, 12.0, 1)  # (3, 16, 16)
    assert float(noise.abs().min()) == float(noise.abs().max()) == pytest.approx(12 / 255)
    assert torch.equal(noise, sign_noise(last.v.shape, 12.0, 1))
