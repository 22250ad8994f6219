"""Fooling images, transfer and robustness: fast unit tests on a tiny fixed-weight net, then the claims of issue #4
on the offline EfficientNet-Lite models (each could fail: they check outcomes, not that code ran)."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image
from tinynet import TinyClassifier
from torch import Tensor, nn

from attacks import AttackError, Goal, make_attack
from attacks.metrics import quantize, rms
from attacks.runner import attack_targets, run_batch
from experiments.common import classify
from experiments.fooling.synthesis import (
    evolve,
    gaussian_blur,
    start_image,
    synthesize_gradient,
    total_variation,
    visualize_class,
)
from experiments.robustness.robustness import EOT, TRANSFORMS, EOTConfig, eot_transform, evaluate_robustness
from experiments.transfer.transfer import evaluate_transfer, matrix, run_transfer
from images import SAMPLES, load_image
from models import class_index, load_model, pil_to_tensor, tensor_to_pil
from models.wrappers import DiverseInput, MeanLogitEnsemble, RandomTransformModel, resize_pad

UMBRELLA = 879


class GradSpy(nn.Module):
    """Passes through to a model and records, per forward, whether autograd could have seen it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.__dict__["model"] = model
        self.input_size = model.input_size
        self.categories = model.categories
        self.calls: list[tuple[bool, bool, int]] = []  # (grad enabled, input requires grad, batch size)

    def forward(self, x: Tensor) -> Tensor:
        self.calls.append((torch.is_grad_enabled(), x.requires_grad, x.shape[0]))
        return self.model(x)


@pytest.fixture(scope="module")
def tiny_clf() -> TinyClassifier:
    return TinyClassifier(0)


def _png_roundtrip(x: Tensor) -> Image.Image:
    buf = io.BytesIO()
    tensor_to_pil(x).save(buf, format="PNG")
    buf.seek(0)
    with Image.open(buf) as im:
        return im.convert("RGB")


# ------------------------------------------------------------------------------------------------ synthesis


def test_start_images_are_8bit_and_seeded() -> None:
    g1, g2 = start_image("gaussian", 32, n=2, seed=3), start_image("gaussian", 32, n=2, seed=3)
    assert g1.shape == (2, 3, 32, 32) and torch.equal(g1, g2) and torch.equal(g1, quantize(g1))
    assert abs(float(g1.std()) - 0.2) < 0.02 and abs(float(g1.mean()) - 0.5) < 0.02
    assert not torch.equal(g1, start_image("gaussian", 32, n=2, seed=4))
    grey = start_image("grey", 8)
    assert torch.equal(grey, torch.full_like(grey, 128 / 255))
    u = start_image("uniform", 64)
    assert float(u.min()) < 0.02 and float(u.max()) > 0.98
    with pytest.raises(AttackError, match="unknown init"):
        start_image("pink", 8)


def test_blur_and_total_variation() -> None:
    flat = torch.full((1, 3, 12, 12), 0.3)
    assert torch.allclose(gaussian_blur(flat, 1.5), flat, atol=1e-6)
    assert float(total_variation(flat)[0]) == 0.0
    noise = start_image("uniform", 32, seed=1)
    blurred = gaussian_blur(noise, 1.0)
    assert float(total_variation(blurred)[0]) < 0.5 * float(total_variation(noise)[0])
    assert abs(float(blurred.mean()) - float(noise.mean())) < 0.01


def test_gradient_synthesis_on_tiny_reaches_confidence(tiny_clf) -> None:
    steps = list(synthesize_gradient(tiny_clf, [3, 7], init="gaussian", confidence=0.95, steps=300, step_size=2.0))
    last = steps[-1]
    assert last.done and bool(last.success.all())
    assert torch.allclose(last.distortion, rms(last.images, steps[0].images))
    probs = tiny_clf.probabilities(last.images)  # the 8-bit images themselves
    assert bool((probs.argmax(1) == torch.tensor([3, 7])).all()) and float(probs[[0, 1], [3, 7]].min()) >= 0.95


def test_visualisation_regularisers_make_a_smoother_image(tiny_clf) -> None:
    kw = {"init": "grey", "steps": 30, "step_size": 4.0, "seed": 0}
    reg = list(visualize_class(tiny_clf, [2], jitter=2, blur_sigma=1.0, blur_every=2, tv_weight=2.0, **kw))
    plain = list(visualize_class(tiny_clf, [2], jitter=0, blur_sigma=0.0, tv_weight=0.0, decay=0.0, **kw))
    logits = [float(tiny_clf(p[-1].images)[0, 2]) for p in (reg, plain)]
    start_logit = float(tiny_clf(reg[0].images)[0, 2])
    assert min(logits) > start_logit  # both climb the class score
    assert float(total_variation(reg[-1].images)[0]) < float(total_variation(plain[-1].images)[0])
    assert len(reg) == 31 and reg[-1].done and not reg[-2].done


def test_evolution_counts_its_queries_and_never_needs_gradients(tiny_clf) -> None:
    spy = GradSpy(tiny_clf)
    steps = list(evolve(spy, 4, init="grey", generations=3, population=4, resolution=4, seed=0))
    assert [p.index for p in steps] == [0, 1, 2, 3] and steps[-1].done
    assert steps[-1].queries == 1 + 3 * (4 + 1) == sum(c[2] for c in spy.calls)
    assert not any(grad or req for grad, req, _ in spy.calls)
    best = [float(p.target_probability[0]) for p in steps]
    assert best == sorted(best)  # the best image so far never gets worse


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        ({"population": 5}, "even"),
        ({"encoding": "cppn"}, "unknown encoding"),
        ({"sigma": 0}, "sigma"),
        ({"confidence": 1.5}, "confidence"),
    ],
)
def test_evolution_rejects_bad_settings(tiny_clf, kwargs: dict, fragment: str) -> None:
    with pytest.raises(AttackError, match=fragment):
        next(evolve(tiny_clf, 1, **kwargs))


def test_gradient_synthesis_reaches_99_percent_on_the_saved_png(lite0, tmp_path) -> None:
    """Seed 004 sec. 3.2 on Lite0: Gaussian noise relabelled to 'umbrella' at >= 0.99, checked on the PNG file."""
    steps = list(synthesize_gradient(lite0, [UMBRELLA], init="gaussian", confidence=0.99, steps=200, seed=0))
    start, last = steps[0], steps[-1]
    assert float(start.target_probability[0]) < 0.01
    path = tmp_path / "synthesized.png"
    tensor_to_pil(last.images).save(path)
    with Image.open(path) as im:
        saved = im.convert("RGB")
    probs = classify(lite0, [saved])[0]
    assert int(probs.argmax()) == UMBRELLA and float(probs[UMBRELLA]) >= 0.99
    distortion = float(rms(pil_to_tensor(saved), start.images.cpu())[0])
    assert 0.0 < distortion < 0.1 and abs(distortion - float(last.distortion[0])) < 1e-6


def test_evolution_raises_the_target_without_gradients(lite0) -> None:
    """Black box (Nguyen et al.): only probabilities of 8-bit images, never a gradient; p(target) rises >= 10x."""
    spy = GradSpy(lite0)
    target = class_index("chain mail")
    steps = list(evolve(spy, target, init="grey", generations=5, population=10, seed=0))
    first, last = float(steps[0].target_probability[0]), float(steps[-1].target_probability[0])
    assert last >= 10 * first, (first, last)
    assert steps[-1].queries == 1 + 5 * 11 == sum(c[2] for c in spy.calls)
    assert not any(grad or req for grad, req, _ in spy.calls)
    assert all(p.grad is None for p in lite0.parameters())
    # The reported probability is that of the reported 8-bit image.
    assert torch.equal(steps[-1].images, quantize(steps[-1].images))
    again = lite0.probabilities(steps[-1].images)[0, target]
    assert abs(float(again) - last) < 1e-5


# ------------------------------------------------------------------------------------------------- wrappers


def test_ensemble_averages_logits_at_each_members_size(lite0) -> None:
    lite1 = load_model("efficientnet_lite1", device="cpu")
    ens = MeanLogitEnsemble([lite0, lite1])
    x = start_image("uniform", 224, seed=0)
    with torch.no_grad():
        expected = (lite0(x) + lite1(nn.functional.interpolate(x, size=240, mode="bilinear"))) / 2
        got = ens(x)
    assert ens.input_size == 224 and ens.name == "efficientnet_lite0+efficientnet_lite1"
    assert torch.allclose(got, expected, atol=1e-4)
    assert not any(isinstance(m, type(lite0)) for m in ens.modules() if m is not ens)  # shared models not adopted


def test_attacks_run_unchanged_on_an_ensemble_of_tiny_nets() -> None:
    a, b = TinyClassifier(0), TinyClassifier(5)
    ens = MeanLogitEnsemble([a, b])
    x = start_image("uniform", 16, n=4, seed=2).requires_grad_(True)
    (g_ens,) = torch.autograd.grad(ens(x)[:, 3].sum(), x)
    (g_a,) = torch.autograd.grad(a(x)[:, 3].sum(), x)
    (g_b,) = torch.autograd.grad(b(x)[:, 3].sum(), x)
    assert torch.allclose(g_ens, (g_a + g_b) / 2, atol=1e-6)
    x = x.detach()
    goal = Goal(ens.probabilities(x).argmax(1), None)
    steps = list(make_attack("pgd", eps=16, steps=10, step_size=2).run(ens, x, goal))
    for step in steps:  # the engine's 8-bit success flags are the ensemble's own verdicts
        assert torch.equal(step.success, goal.met(ens.probabilities(step.x_adv)))
    assert bool(steps[-1].success.any())
    assert all(p.grad is None for p in list(a.parameters()) + list(b.parameters()))


def test_full_budget_runs_every_step_where_early_stop_stops(tiny_clf, tiny_images) -> None:
    source = tiny_clf(tiny_images).argmax(1)
    target = (source + 1) % 10
    attack = make_attack("relabel", step_size=2.0, steps=40, max_rms=1.0)
    full_budget = make_attack("relabel", step_size=2.0, steps=40, max_rms=1.0, early_stop=False)
    early = run_batch(attack, tiny_clf, tiny_images, Goal(source, target)).last
    full = run_batch(full_budget, tiny_clf, tiny_images, Goal(source, target)).last
    assert early.index < 40 and full.index == 40
    assert float(full.distortion.mean()) > float(early.distortion.mean())


def test_input_diversity_never_stops_a_sample_on_a_lucky_view(tiny_clf) -> None:
    """Regression (issue 7 bug 2): success was judged on the randomised forward pass, so samples stopped when one
    random view succeeded and were then FAILED on the plain model with budget left. The plain model judges now."""
    x = start_image("uniform", 16, n=64, seed=3)
    source = tiny_clf(x).argmax(1)
    goal = Goal(source, (source + 1) % 10)
    attack = make_attack("bim", eps=8, step_size=1, steps=30)
    steps = list(attack.run(DiverseInput(tiny_clf, prob=0.5, seed=0), x, goal, judge=tiny_clf))
    for s in steps:  # the progress shown is the plain model's, on the 8-bit image
        probs = tiny_clf.probabilities(s.x_adv)
        assert torch.allclose(s.probs, probs, atol=1e-5) and torch.equal(s.success, goal.met(probs))
    stopped_early = torch.zeros(64, dtype=torch.bool)
    for s in steps[:-1]:
        stopped_early |= s.done
    assert bool(stopped_early.any())  # the test has cases to look at
    plain = goal.met(tiny_clf.probabilities(steps[-1].x_adv))  # (64,) judged independently of the engine's flags
    assert bool(plain[stopped_early].all())  # none of them is a plain-model failure with budget left


def test_eot_stops_on_its_fixed_view_judge_never_on_a_lucky_draw(tiny_clf) -> None:
    """Issue 7 bug 2 for EOT: the attack draws fresh random views for its gradient, but may stop only when a judge
    that sees the same fixed views at every call (EOT(fixed=True)) finds the saved 8-bit image meets the goal."""
    judge = EOT(tiny_clf, samples=4, seed=1, fixed=True)
    fresh = EOT(tiny_clf, samples=4, seed=1)
    x = start_image("uniform", 16, n=16, seed=5)
    with torch.no_grad():
        assert torch.equal(judge(x), judge(x))  # deterministic: the same views every time
        assert torch.allclose(judge(x[3:5]), judge(x)[3:5], atol=1e-5)  # and the same for an image in any batch
        assert not torch.equal(fresh(x), fresh(x))  # new draws each call: what the gradient sees
    source = tiny_clf(x).argmax(1)
    goal = Goal(source, (source + 1) % 10)
    attack = make_attack("bim", eps=32, step_size=2, steps=60)
    steps = list(attack.run(EOT(tiny_clf, samples=4, seed=0), x, goal, judge=judge))
    stopped = torch.zeros(16, dtype=torch.bool)
    for s in steps[:-1]:
        stopped |= s.done
    assert bool(stopped.any())
    with torch.no_grad():
        met = goal.met(judge(quantize(steps[-1].x_adv)).softmax(-1))  # recomputed, not the engine's flags
    assert bool(met[stopped].all())


def test_random_transform_model_is_the_mean_probability(tiny_clf, tiny_images) -> None:
    identity = RandomTransformModel(tiny_clf, lambda x, g: x, samples=3)
    with torch.no_grad():
        assert torch.allclose(identity(tiny_images).softmax(-1), tiny_clf(tiny_images).softmax(-1), atol=1e-5)
    flip = RandomTransformModel(
        tiny_clf, lambda x, g: torch.cat([x[: len(x) // 2], x[len(x) // 2 :].flip(-1)]), samples=2
    )
    with torch.no_grad():
        mean = (tiny_clf(tiny_images).softmax(-1) + tiny_clf(tiny_images.flip(-1)).softmax(-1)) / 2
        assert torch.allclose(flip(tiny_images).softmax(-1), mean, atol=1e-5)
    with pytest.raises(AttackError):
        RandomTransformModel(tiny_clf, lambda x, g: x, samples=0)


def test_input_diversity_resizes_and_pads_reproducibly() -> None:
    x = start_image("uniform", 32, n=6, seed=0).requires_grad_(True)
    same = resize_pad(x, torch.Generator().manual_seed(1), prob=0.0)
    assert torch.equal(same, x)
    a = resize_pad(x, torch.Generator().manual_seed(1), prob=1.0, low=0.8)
    b = resize_pad(x, torch.Generator().manual_seed(1), prob=1.0, low=0.8)
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)
    assert bool((a == 0).flatten(1).any(1).all())  # every image got a zero border
    (g,) = torch.autograd.grad(a.sum(), x)
    assert float(g.abs().sum()) > 0
    with pytest.raises(AttackError):
        DiverseInput(nn.Identity(), prob=2.0)


def test_eot_transform_is_differentiable_in_range_and_seeded() -> None:
    x = start_image("uniform", 32, n=4, seed=0).requires_grad_(True)
    t = eot_transform(EOTConfig())
    a, b = t(x, torch.Generator().manual_seed(0)), t(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)
    assert float(a.detach().min()) >= 0 and float(a.detach().max()) <= 1
    (g,) = torch.autograd.grad(a.sum(), x)
    assert float(g.abs().sum()) > 0
    plain = eot_transform(EOTConfig(flip=0, shift=0, rotate=0, scale=0, brightness=0, contrast=0, noise=0, jpeg=0))
    assert torch.allclose(plain(x, torch.Generator()), x, atol=1e-5)
    with pytest.raises(AttackError, match="EOT shift"):
        eot_transform(EOTConfig(shift=-1))


# ----------------------------------------------------------------------------------------------- robustness


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_every_transform_keeps_size_and_changes_the_image(name: str) -> None:
    image = tensor_to_pil(gaussian_blur(start_image("uniform", 40, seed=0), 1.0))
    for s in TRANSFORMS[name].strengths:
        out = TRANSFORMS[name].apply(image, s, 0)
        assert out.size == image.size and out.mode == "RGB"
        assert out.tobytes() != image.tobytes(), (name, s)
    if name == "mirror":
        assert TRANSFORMS[name].apply(TRANSFORMS[name].apply(image, 1, 0), 1, 0).tobytes() == image.tobytes()


def test_robustness_needs_an_adversarial_that_differs(lite0, chelsea_input) -> None:
    with pytest.raises(AttackError, match="nothing that could revert"):
        evaluate_robustness(lite0, chelsea_input, chelsea_input, transforms=["mirror"])
    with pytest.raises(AttackError, match="unknown transform"):
        evaluate_robustness(lite0, chelsea_input, chelsea_input, transforms=["sepia"])


@pytest.fixture(scope="module")
def dalmatian(lite0) -> Image.Image:
    """A confidently classified ImageNet sample (Lite0's top class is its true label) as Lite0's input."""
    if "imagenet_16" not in SAMPLES:
        pytest.skip("foolbox's ImageNet samples are not installed")
    image = lite0.preprocess(load_image("imagenet_16"))
    assert int(classify(lite0, [image])[0].argmax()) == SAMPLES["imagenet_16"].label
    return image


@pytest.fixture(scope="module")
def relabelled(lite0, dalmatian):
    """The paper's relabel (first 8-bit success, RMS cap 0.01) of the dalmatian to 'umbrella' on Lite0."""
    (outcome,) = attack_targets(lite0, dalmatian, make_attack("relabel"), [UMBRELLA], confidence=0.0)
    assert outcome.success and outcome.verdict.rms_distortion <= 0.01
    return outcome


def test_a_mirrored_relabelled_image_reverts_on_lite0(lite0, relabelled) -> None:
    """Seed 004 sec. 3.1: mirroring makes the label revert to the original class."""
    report = evaluate_robustness(
        lite0,
        relabelled.original,
        relabelled.adversarial,
        adversarial_class=UMBRELLA,
        transforms=["mirror", "shift"],
        strengths={"shift": [4]},
    )
    base, mirror, shift = report.rows[0], report.row("mirror", 1), report.row("shift", 4)
    assert base.still_fooled and not base.reverted
    assert mirror.reverted and not mirror.still_fooled and mirror.clean_kept
    assert shift.reverted and shift.clean_kept
    assert report.to_json()["summary"]["reverted"] == 2


def test_eot_relabel_survives_the_mirror_that_reverts_the_plain_one(lite0, dalmatian, relabelled) -> None:
    eot = EOT(lite0, samples=4, seed=0)
    attack = make_attack("relabel", step_size=1.0, steps=100, max_rms=0.05)
    (outcome,) = attack_targets(lite0, dalmatian, attack, [UMBRELLA], attacked=eot, confidence=0.5)
    assert outcome.success  # verified on the untransformed 8-bit image by the plain model
    report = evaluate_robustness(
        lite0, dalmatian, outcome.adversarial, adversarial_class=UMBRELLA, transforms=["mirror"]
    )
    assert report.row("mirror", 1).still_fooled
    assert outcome.verdict.rms_distortion > relabelled.verdict.rms_distortion  # survival costs distortion


# ------------------------------------------------------------------------------------------------- transfer


def test_transfer_runs_across_the_offline_models_and_reports_a_matrix(lite0) -> None:
    if "imagenet_16" not in SAMPLES:
        pytest.skip("foolbox's ImageNet samples are not installed")
    models = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
    result = run_transfer(
        load_image("imagenet_16"),
        source_models=["efficientnet_lite0"],
        eval_models=models,
        attack=make_attack("relabel"),
        target=UMBRELLA,
        confidence=0.0,  # the paper's criterion: its claim is what this test checks
    )
    assert [r.model for r in result.rows] == models and [r.input_size for r in result.rows] == [224, 240, 260]
    assert result.outcome.success and result.rows[0].is_source and result.rows[0].fooled
    assert result.rows[0].index == UMBRELLA
    for r in result.rows:
        assert 0.0 <= r.p_source <= 1.0 and r.p_target is not None and 0.0 <= r.p_target <= 1.0
    # The paper's finding, measured here: the relabelled image does not transfer to the other architectures.
    assert not result.rows[1].fooled and not result.rows[2].fooled
    assert result.transfer_rate == 0.0
    names, cols, cells = matrix([result], "fooled")
    assert names == ["efficientnet_lite0"] and cols == models and cells == [[True, False, False]]


def test_evaluating_the_clean_image_fools_nobody(lite0, chelsea_input) -> None:
    source = int(classify(lite0, [chelsea_input])[0].argmax())
    rows = evaluate_transfer(chelsea_input, chelsea_input, source=source, target=None, models=[lite0])
    assert not rows[0].fooled and rows[0].p_source == pytest.approx(rows[0].p_source_clean)
    rows = evaluate_transfer(chelsea_input, chelsea_input, source=source, target=UMBRELLA, models=[lite0])
    assert not rows[0].fooled and rows[0].p_target is not None and rows[0].p_target < 0.01
