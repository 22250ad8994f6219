"""Every registered attack on a tiny fixed-weight model: range, budget, determinism, progress, batching."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from attacks import ATTACKS, AttackError, Goal, make_attack
from attacks.base import GradientAttack, loss_and_grad
from attacks.fgsm import FGSM
from attacks.metrics import linf, quantize, rms
from attacks.runner import run_batch

TARGET = 3


def _goal(model, x, targeted: bool) -> Goal:
    source = model(x).argmax(1)
    target = torch.where(source == TARGET, torch.full_like(source, TARGET + 1), torch.full_like(source, TARGET))
    return Goal(source, target if targeted else None)


def _modes(cls) -> list[bool]:
    return [m for m, ok in ((True, cls.supports_targeted), (False, cls.supports_untargeted)) if ok]


CASES = [(name, targeted) for name, cls in ATTACKS.items() for targeted in _modes(cls)]


@functools.lru_cache(maxsize=1)
def tiny_starts() -> torch.Tensor:
    """(10,3,16,16) one image per class of the tiny net (made with PGD): a decision-based attacker's own photos,
    from which HopSkipJump starts a targeted run."""
    from tinynet import TinyNet

    net = TinyNet()
    x = torch.rand(10, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    pgd = make_attack("pgd", eps=128.0, step_size=8.0, steps=40)
    return run_batch(pgd, net, x, Goal(net(x).argmax(1), torch.arange(10))).last.x_adv


def _small(name: str, **extra):
    """Registered defaults, shortened for speed where there is a steps parameter or a query budget."""
    cls = ATTACKS[name]
    names = {p.name for p in cls.params}
    kwargs = {"steps": 8} if "steps" in names else {}
    if "queries" in names:  # black-box: a small budget; HopSkipJump keeps enough for its 8 steps
        kwargs.update({"queries": 400, "init_evals": 10} if "init_evals" in names else {"queries": 9})
    attack = make_attack(name, **{**kwargs, **extra})
    if hasattr(attack, "starts"):
        attack.starts = tiny_starts()
    return attack


@pytest.mark.parametrize("name,targeted", CASES)
def test_pixels_stay_in_range_and_every_step_is_8bit(tiny, tiny_images, name: str, targeted: bool) -> None:
    attack = _small(name)
    goal = _goal(tiny, tiny_images, targeted)
    for step in attack.run(tiny, tiny_images, goal, seed=0):
        assert step.x_adv.min() >= 0 and step.x_adv.max() <= 1
        assert torch.equal(step.x_adv, quantize(step.x_adv))
        assert step.probs.shape == (4, 10) and step.loss.shape == (4,) and step.done.shape == (4,)
        assert torch.allclose(step.distortion, rms(step.x_adv, tiny_images))
    assert bool(step.done.all())


@pytest.mark.parametrize("name,targeted", CASES)
def test_success_flags_are_true_on_the_8bit_image(tiny, tiny_images, name: str, targeted: bool) -> None:
    attack = _small(name)
    goal = _goal(tiny, tiny_images, targeted)
    last = run_batch(attack, tiny, tiny_images, goal, seeds=0).last
    with torch.no_grad():
        probs = tiny(last.x_adv).softmax(1)
    assert torch.equal(goal.met(probs), last.success)


@pytest.mark.parametrize("name,targeted", CASES)
def test_deterministic_under_a_seed(tiny, tiny_images, name: str, targeted: bool) -> None:
    goal = _goal(tiny, tiny_images, targeted)
    a = run_batch(_small(name), tiny, tiny_images, goal, seeds=7).last
    b = run_batch(_small(name), tiny, tiny_images, goal, seeds=7).last
    assert torch.equal(a.x_adv, b.x_adv)


@pytest.mark.parametrize("name", [n for n, c in ATTACKS.items() if c.supports_targeted])
def test_lowers_the_targeted_loss(tiny, tiny_images, name: str) -> None:
    goal = _goal(tiny, tiny_images, True)
    steps = list(_small(name).run(tiny, tiny_images, goal, seed=0))
    first, last = steps[0], steps[-1]
    assert last.loss.mean() < first.loss.mean()


LINF = [
    n
    for n, c in ATTACKS.items()
    if any(p.name == "eps" for p in c.params) and n not in ("pgd_l2", "square_l2", "simba")
]


@pytest.mark.parametrize("name", LINF)
@pytest.mark.parametrize("eps", [2.0, 5.0])
def test_linf_budget_is_respected_on_the_saved_image(tiny, tiny_images, name: str, eps: float) -> None:
    attack = make_attack(
        name, eps=eps, **({} if name == "fgsm" else {"queries": 30} if name == "square" else {"steps": 10})
    )
    goal = _goal(tiny, tiny_images, False)
    last = run_batch(attack, tiny, tiny_images, goal).last
    assert float(linf(last.x_adv, tiny_images).max()) <= eps / 255 + 1e-6


def test_pgd_l2_budget_on_the_float_iterate(tiny, tiny_images) -> None:
    attack = make_attack("pgd_l2", eps=0.5, step_size=0.2, steps=10, quantize=False)
    goal = _goal(tiny, tiny_images, False)
    last = run_batch(attack, tiny, tiny_images, goal).last
    # Saved image: the float iterate is inside the ball; rounding adds at most 0.5/255 per value.
    bound = 0.5 + math.sqrt(tiny_images[0].numel()) * 0.5 / 255
    assert float((last.x_adv - tiny_images).flatten(1).norm(dim=1).max()) <= bound + 1e-6


def test_relabel_stops_at_the_rms_cap(tiny, tiny_images) -> None:
    attack = make_attack("relabel", step_size=1.0, steps=500, max_rms=0.004)
    goal = _goal(tiny, tiny_images, True)
    last = run_batch(attack, tiny, tiny_images, goal).last
    assert float(last.distortion.max()) <= 0.004
    assert bool(last.done.all())


def test_one_fgsm_step_is_eps_times_sign_of_gradient(tiny, tiny_images) -> None:
    eps = 3.0
    goal = _goal(tiny, tiny_images, False)
    _, _, grad = loss_and_grad(tiny, tiny_images, goal, quantized=False)
    steps = list(FGSM(eps=eps, quantize=False).run(tiny, tiny_images, goal))
    expected = (tiny_images - eps / 255 * grad.sign()).clamp(0, 1)  # descent on -CE(source) = ascent on CE
    assert torch.allclose(steps[-1].x_adv, quantize(expected), atol=1e-6)
    assert steps[-1].index == 1


def test_batched_targets_equal_one_by_one(tiny, tiny_images) -> None:
    attack = make_attack("relabel", step_size=0.5, steps=30, max_rms=0.05)
    x = tiny_images[:1].expand(3, -1, -1, -1).contiguous()
    source = tiny(x).argmax(1)
    targets = torch.tensor([t for t in range(10) if t != int(source[0])][:3])
    batched = run_batch(attack, tiny, x, Goal(source, targets)).last
    for j in range(3):
        single = run_batch(attack, tiny, x[j : j + 1], Goal(source[j : j + 1], targets[j : j + 1])).last
        assert torch.allclose(single.x_adv[0], batched.x_adv[j], atol=1e-6)
        assert bool(single.success[0]) == bool(batched.success[j])


def test_done_samples_leave_the_batch(tiny, tiny_images) -> None:
    calls: list[int] = []

    class Counting(torch.nn.Module):
        def forward(self, x):
            calls.append(x.shape[0])
            return tiny(x)

    model = Counting()
    attack = make_attack("relabel", step_size=1.0, steps=40, max_rms=1.0)
    goal = _goal(tiny, tiny_images, True)
    list(attack.run(model, tiny_images, goal))
    assert calls[0] == 4 and min(calls) < 4


@pytest.mark.parametrize(
    "name,kwargs,fragment",
    [
        ("pgd", {"eps": -1.0}, "eps must be between"),
        ("relabel", {"step_size": 0.0}, "step_size must be between"),
        ("bim", {"steps": 2.5}, "whole number"),
        ("fgsm", {"eps": float("nan")}, "must be a number"),
        ("fgsm", {"max_rms": 0.01}, "has no parameter max_rms"),
        ("nope", {}, "unknown attack"),
    ],
)
def test_bad_parameters_are_one_line_errors(name: str, kwargs: dict, fragment: str) -> None:
    with pytest.raises(AttackError, match=fragment) as info:
        make_attack(name, **kwargs)
    assert "\n" not in str(info.value)


def test_relabel_refuses_untargeted(tiny, tiny_images) -> None:
    with pytest.raises(AttackError, match="needs a target"):
        list(make_attack("relabel").run(tiny, tiny_images, _goal(tiny, tiny_images, False)))


def test_every_gradient_attack_declares_its_steps() -> None:
    for cls in ATTACKS.values():
        assert cls.title and cls.summary and cls.params
        if issubclass(cls, GradientAttack):
            assert cls(**{}).total_steps() >= 1


@pytest.mark.parametrize("name,targeted", CASES)
def test_total_steps_bounds_every_step_index(tiny, tiny_images, name: str, targeted: bool) -> None:
    """Regression (issue 7 bug 4): CW's progress read "Step 437 / 100". Every attack says its own total, which no
    Step.index exceeds, and a run that spends its whole budget reaches it (relabel may stop at its RMS cap)."""
    names = {p.name for p in ATTACKS[name].params}
    small = {"steps": 6, **({"binary_steps": 3} if "binary_steps" in names else {})} if "steps" in names else {}
    if name == "relabel":
        small["max_rms"] = 1.0
    if "queries" in names and "steps" not in names:
        small["queries"] = 7  # Square and SimBA: one Step per query after the first, so 7 queries = index 6
    attack = (
        _small(name, early_stop=False, **small) if "queries" in names else make_attack(name, early_stop=False, **small)
    )
    expected = {"fgsm": 1, "cw": 6 * 3 - 1}.get(name, 6)
    assert attack.total_steps() == expected
    indices = [s.index for s in attack.run(tiny, tiny_images, _goal(tiny, tiny_images, targeted), seed=0)]
    assert indices == list(range(len(indices))) and max(indices) <= attack.total_steps()
    # DeepFool stops at the boundary even on a full budget (attacks/deepfool.py); SimBA's iterations cost one or two
    # queries each, so its budget may run out before index queries - 1 (tests/test_blackbox.py checks the budget).
    if name not in ("deepfool", "simba"):
        # Gradient attacks yield the start (index 0) and one Step per step; CW one Step per Adam evaluation, from 0.
        # Regression (issue 17 item 9): CW's largest index was total_steps() - 1, so its progress never reached 100%.
        assert max(indices) == attack.total_steps()
