"""Defenses: each changes the input exactly as its peer library does, keeps the classifier interface, and the
adaptive attacker (BPDA / EOT) really differentiates the defended model (experiments/defenses/defenses.py)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage
from tinynet import TinyClassifier

from attacks import AttackError
from experiments.defenses.defenses import (
    BPDA,
    DEFENSES,
    evaluate_defenses,
    make_defense,
    median_filter,
)
from images.imagesets import LabelledImage
from models import pil_to_tensor, tensor_to_pil


def _image(seed: int = 0, size: int = 16, n: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g).float() / 255.0  # (n, 3, size, size), 8-bit grid


def _smooth_image(size: int = 32) -> torch.Tensor:
    """A natural-ish 8-bit image (JPEG of pure noise is a degenerate case)."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    x = torch.stack([(xx / size), (yy / size), ((xx + yy) % 7) / 7.0]).unsqueeze(0)  # (1, 3, size, size)
    return torch.round(x * 255) / 255


def _kwargs(name: str) -> dict:
    return {"members": [TinyClassifier(1), TinyClassifier(2)]} if name == "ensemble" else {}


@pytest.mark.parametrize("quality", [10, 50, 75, 95])
def test_jpeg_equals_pil_round_trip(quality: int) -> None:
    x = _smooth_image()
    buf = io.BytesIO()
    tensor_to_pil(x).save(buf, format="JPEG", quality=quality)
    expected = pil_to_tensor(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    got = make_defense("jpeg", TinyClassifier(), quality=quality).transform(x)
    assert torch.equal(got, expected)
    assert not torch.equal(got, x)


@pytest.mark.parametrize("size", [2, 3, 4, 5])
def test_median_equals_scipy(size: int) -> None:
    x = _image(size=20, n=1)
    expected = np.stack([ndimage.median_filter(c, size=size, mode="reflect") for c in x[0].numpy()])  # (3, H, W)
    got = make_defense("median", TinyClassifier(), size=size).transform(x)[0].numpy()
    np.testing.assert_array_equal(got, expected)


def test_median_equals_skimage() -> None:
    from skimage.filters import median

    x = _image(size=20, n=1)
    arr = (x[0].numpy() * 255).round().astype(np.uint8)  # (3, H, W)
    expected = np.stack([median(c, footprint=np.ones((3, 3), bool), mode="reflect") for c in arr]) / 255.0
    np.testing.assert_allclose(median_filter(x, 3)[0].numpy(), expected, atol=1e-7)


@pytest.mark.parametrize("bits", [1, 3, 5, 7])
def test_bits_equals_rounding_formula(bits: int) -> None:
    x = _image(n=1)
    levels = 2**bits - 1
    expected = np.round(x.numpy() * levels) / levels
    got = make_defense("bits", TinyClassifier(), bits=bits).transform(x)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-7)
    assert len(np.unique(got.numpy())) <= levels + 1


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0])
def test_gaussian_equals_scipy(sigma: float) -> None:
    x = _image(size=24, n=1)
    # The blur reflects without repeating the edge pixel (torch 'reflect' = scipy 'mirror') and cuts at 3 sigma.
    expected = ndimage.gaussian_filter(
        x[0].numpy().astype(np.float64), sigma=(0, sigma, sigma), mode="mirror", truncate=3.0
    )
    got = make_defense("gaussian", TinyClassifier(), sigma=sigma).transform(x)[0].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("name", list(DEFENSES))
def test_every_defense_keeps_the_classifier_interface(name: str) -> None:
    model = TinyClassifier()
    d = make_defense(name, model, **_kwargs(name))
    x = _image(n=3)
    logits = d(x)
    assert logits.shape == (3, 10) and torch.isfinite(logits).all()
    p = d.probabilities(x)
    assert p.shape == (3, 10) and torch.allclose(p.sum(1), torch.ones(3), atol=1e-5)
    assert d.categories == model.categories and d.input_size == 16 and d.device == torch.device("cpu")
    assert name in d.name or name == "ensemble"
    assert d.attackable("plain") is model
    for mode in ("adaptive", "defended"):
        attacked = d.attackable(mode)
        xi = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(attacked(xi).log_softmax(-1)[:, 0].sum(), xi)
        assert grad.shape == x.shape
        if mode == "adaptive":
            assert grad.abs().sum() > 0  # the adaptive attacker always gets a usable gradient


def test_jpeg_and_bits_mask_the_gradient_bpda_restores_it() -> None:
    """The naive attacker on the defended model gets zero gradient (obfuscated gradients); BPDA's gradient is
    the model's own gradient at the transformed image, and BPDA's forward is the defended classifier exactly."""
    model = TinyClassifier()
    x = _image(n=2)
    for name in ("jpeg", "bits"):
        d = make_defense(name, model)
        xi = x.clone().requires_grad_(True)
        (g0,) = torch.autograd.grad(d(xi)[:, 3].sum(), xi)
        assert g0.abs().sum() == 0
        bpda = d.attackable("adaptive")
        assert isinstance(bpda, BPDA)
        assert torch.allclose(bpda(x), d(x), atol=1e-5)  # x + (T(x) - x) is T(x) up to float rounding
        xi = x.clone().requires_grad_(True)
        (g1,) = torch.autograd.grad(bpda(xi)[:, 3].sum(), xi)
        t = d.transform(x).requires_grad_(True)
        (g_model,) = torch.autograd.grad(model(t)[:, 3].sum(), t)
        assert torch.allclose(g1, g_model)


def test_resize_pad_is_random_and_eot_averages_it() -> None:
    model = TinyClassifier()
    x = _image(n=2)
    d = make_defense("resize-pad", model, draws=1, seed=0)
    a, b = d.transform(x), d.transform(x)
    assert a.shape == x.shape and not torch.equal(a, b)
    assert (a == 0).any()  # the zero padding
    eot = d.attackable("adaptive", samples=8, seed=3)
    assert eot.samples == 8
    p = eot(x).softmax(-1)
    assert torch.allclose(p.sum(1), torch.ones(2), atol=1e-5)
    # Reproducible under the same seeds.
    d2 = make_defense("resize-pad", model, draws=1, seed=0)
    assert torch.equal(d2.transform(x), a)


def test_ensemble_is_the_mean_of_probabilities() -> None:
    members = [TinyClassifier(0), TinyClassifier(1), TinyClassifier(2)]
    d = make_defense("ensemble", members[0], members=members[1:])
    x = _image(n=2)
    expected = torch.stack([m(x).softmax(-1) for m in members]).mean(0)
    assert torch.allclose(d.probabilities(x), expected, atol=1e-6)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: make_defense("jpeg", m, quality=0), "quality must be between 1 and 95"),
        (lambda m: make_defense("median", m, size=2.5), "size must be a whole number"),
        (lambda m: make_defense("gaussian", m, sigma=float("nan")), "sigma must be a number"),
        (lambda m: make_defense("bits", m, bits=9), "bits must be between 1 and 7"),
        (lambda m: make_defense("resize-pad", m, max_scale=3), "max_scale must be between"),
        (lambda m: make_defense("jpeg", m, strength=2), "defense jpeg has no parameter strength"),
        (lambda m: make_defense("blur", m), "unknown defense 'blur'"),
        (lambda m: make_defense("ensemble", m, members=[]), "needs at least one other model"),
        (lambda m: make_defense("jpeg", m).attackable("magic"), "unknown attacker mode"),
        (lambda m: make_defense("jpeg", m).attackable("eot"), "cannot be attacked with eot"),
        (lambda m: make_defense("resize-pad", m).attackable("adaptive", samples=0), "EOT samples must be"),
        (lambda m: list(evaluate_defenses(m, [], attack="nope")), "unknown attack 'nope'"),
        (lambda m: list(evaluate_defenses(m, [], defenses=["nope"])), "unknown defense 'nope'"),
    ],
)
def test_bad_parameters_raise_one_clear_line(call, message: str) -> None:
    with pytest.raises(AttackError) as err:
        call(TinyClassifier())
    assert message in str(err.value) and "\n" not in str(err.value)


def test_evaluation_counts_are_consistent_on_the_tiny_model() -> None:
    model = TinyClassifier()
    x = _image(seed=4, n=6)
    labels = model(x).argmax(1).tolist()
    labels[0] = (labels[0] + 1) % 10  # one image the model gets wrong: left out
    images = [LabelledImage(f"img{i}", tensor_to_pil(x[i]), labels[i]) for i in range(6)]
    progress = list(
        evaluate_defenses(
            model,
            images,
            defenses={"bits": {"bits": 3}, "resize-pad": {}, "ensemble": {"members": [TinyClassifier(1)]}},
            attack="pgd",
            attack_params={"eps": 8, "steps": 3},
            full_budget=True,
            chunk=4,
        )
    )
    last = progress[-1]
    assert last.done == last.total == 2 * 4
    report = last.report
    assert report.images_total == 6 and report.images == 5 and len(report.rows) == 3
    for row in report.rows:
        assert row.images == 5 and 0 <= row.clean_correct <= 5
        assert 0 <= row.nonadaptive_fooled <= row.clean_correct and 0 <= row.adaptive_fooled <= row.clean_correct
    assert report.bare_fooled >= 1  # eps 8/255 on the tiny net fools some
    data = report.to_json()
    assert data["rows"][0]["defense"] == "bits" and data["rows"][2]["adaptive_method"] == "exact gradient"
    assert "5/6 images" in report.table()


def test_a_black_box_attacker_is_not_stopped_by_gradient_masking() -> None:
    """JPEG and bit-depth reduction zero the gradient of the defended classifier: PGD through it (no BPDA) cannot
    move. Square, which only queries that same defended classifier, fools most of the images it classifies right
    anyway, about as often as it fools the bare model; the row holds its count and the median queries it took."""
    from attacks import Goal, make_attack
    from experiments.defenses.defenses import attack_in_chunks

    model = TinyClassifier()
    x = _image(seed=4, n=12)
    labels = model(x).argmax(1)
    images = [LabelledImage(f"img{i}", tensor_to_pil(x[i]), int(labels[i])) for i in range(12)]
    defenses = {"jpeg": {"quality": 50}, "bits": {"bits": 3}}
    pgd = {"eps": 16, "steps": 10, "step_size": 2, "random_start": 0}
    report = list(
        evaluate_defenses(
            model, images, defenses=defenses, attack="pgd", attack_params=pgd, adaptive=False, chunk=4,
            blackbox={"eps": 16, "queries": 300},
        )
    )[-1].report  # fmt: skip
    assert report.blackbox_attack == "square" and report.blackbox_params["queries"] == 300
    assert report.blackbox_bare_fooled >= 9
    for row in report.rows:
        defense = make_defense(row.defense, model, **defenses[row.defense])
        clean_ok = defense.probabilities(x).argmax(1) == labels  # (12,)
        masked = make_attack("pgd", **pgd)
        (_, adv), *_ = attack_in_chunks(
            masked, model, x, Goal(labels), chunk=12, seed=0, attacked=defense.attackable("defended")
        )
        through_mask = int((defense.probabilities(adv).argmax(1) != labels)[clean_ok].sum())
        assert through_mask == 0, row.defense  # a zero gradient: the gradient attacker never moves
        assert row.blackbox_fooled >= 0.6 * row.clean_correct and row.blackbox_fooled > through_mask, row
        assert 1 <= row.blackbox_queries_median <= 300 and 1 <= row.blackbox_queries_mean <= 300
        data = row.to_json()
        assert data["blackbox_success_rate"] == pytest.approx(row.blackbox_fooled / row.clean_correct)
    assert "black-box" in report.table() and "med q" in report.table()
    assert report.to_json()["blackbox_bare_fooled"] == report.blackbox_bare_fooled


@pytest.mark.slow
def test_adaptive_attack_beats_the_nonadaptive_one_on_lite0() -> None:
    """JPEG q75 and 3x3 median in front of Lite0: the bare model's relabelled images stop fooling them, BPDA through
    the defense fools them more often. If `attackable('adaptive')` silently returned the plain model, the adaptive
    images would be the bare ones and both columns would be equal."""
    from images.imagesets import labelled_set
    from models import load_model

    torch.manual_seed(0)
    model = load_model("efficientnet_lite0", device="cpu")
    images = labelled_set("samples", model)[:8]
    report = list(evaluate_defenses(model, images, defenses=["jpeg", "median"], attack_params={"step_size": 1}))[
        -1
    ].report
    assert report.bare_fooled == report.images
    for row in report.rows:
        assert row.clean_correct >= 4
        assert row.adaptive_fooled > row.nonadaptive_fooled, row


def test_resize_pad_verdict_is_one_number_on_fixed_views() -> None:
    """Issue 17 item 5: the defended judge drew fresh views at every call, so one image could flip between two
    calls. Now its forward averages `draws` fixed views: the same probabilities at every call and in any batch."""
    model = TinyClassifier()
    x = _image(seed=5, n=3)
    d = make_defense("resize-pad", model, draws=3, seed=11)
    p1, p2 = d.probabilities(x), d.probabilities(x)
    assert torch.equal(p1, p2)
    assert torch.allclose(d.probabilities(x[1:2]), p1[1:2], atol=1e-6)  # an image's verdict ignores its batch


def test_resize_pad_row_is_reproducible_from_its_seed_and_states_its_views() -> None:
    """Issue 17 item 5: the same seed gives the same resize-and-pad row (the attacker stops on the defense's fixed
    views, the verdict is on those views), and the row says how many views judged it."""
    model = TinyClassifier()
    x = _image(seed=4, n=6)
    labels = model(x).argmax(1).tolist()
    images = [LabelledImage(f"img{i}", tensor_to_pil(x[i]), labels[i]) for i in range(6)]

    def row(chunk: int) -> dict:
        report = list(
            evaluate_defenses(
                model,
                images,
                defenses={"resize-pad": {"draws": 3}},
                attack="pgd",
                attack_params={"eps": 4, "steps": 4},
                seed=3,
                chunk=chunk,
            )
        )[-1].report
        data = report.rows[0].to_json()
        data.pop("seconds")
        return data

    first = row(4)
    assert first == row(4)
    assert first["judge_views"] == 3 and first["adaptive_method"] == "EOT x4"
    other_chunks = row(2)  # the bare attack's per-image seeds: its columns do not depend on the chunk
    assert other_chunks["bare_fooled"] == first["bare_fooled"]
    assert other_chunks["nonadaptive_fooled"] == first["nonadaptive_fooled"]
