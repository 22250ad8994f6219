"""Black-box attacks (Square, SimBA, HopSkipJump) on the tiny net: they see only the query interface, count every
image they ask about, fool most images on the saved 8-bit image, and refuse bad input with one line."""

from __future__ import annotations

import functools
import json
import types

import pytest
import torch
from cli_checks import refused
from tinynet import TinyClassifier, TinyNet
from torch import nn

import cli
from attacks import AttackError, Goal, make_attack
from attacks.metrics import linf, quantize
from attacks.queries import Oracle, goal_reached
from attacks.runner import attack_targets, run_batch
from models import pil_to_tensor, tensor_to_pil

#: Small settings that still fool the tiny net: (name, hyperparameters).
SETTINGS = {
    "square": {"eps": 32.0, "queries": 200},
    "square_l2": {"eps": 2.0, "queries": 200},
    "simba": {"eps": 1.0, "queries": 200},
    "simba_pixel": {"eps": 0.5, "queries": 200, "dct": 0},
    "hopskipjump": {"queries": 400, "steps": 8, "max_rms": 0.1, "init_evals": 20},
}


def _make(key: str, **extra) -> object:
    name = "simba" if key == "simba_pixel" else key
    return make_attack(name, **{**SETTINGS[key], **extra})


@functools.lru_cache(maxsize=1)
def _starts() -> torch.Tensor:
    """(P,3,16,16) images the tiny net labels as each class (a decision-based attacker's own photos), made with PGD."""
    net = TinyNet()
    g = torch.Generator().manual_seed(3)
    x = torch.rand(10, 3, 16, 16, generator=g)
    target = torch.arange(10)
    pgd = make_attack("pgd", eps=128.0, step_size=8.0, steps=40)
    out = run_batch(pgd, net, x, Goal(net(x).argmax(1), target), seeds=0).last
    assert bool(out.success.all()), "every class needs a starting image"
    return out.x_adv


class Counting(nn.Module):
    """The tiny net, counting the images it is asked about and refusing any gradient."""

    def __init__(self) -> None:
        super().__init__()
        self.net = TinyNet()
        self.images = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert not torch.is_grad_enabled() and not x.requires_grad, "a black-box attack asked for a gradient"
        self.images += x.shape[0]
        return self.net(x)


def _images(n: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (n, 3, 16, 16), generator=g).float() / 255.0  # (n, 3, 16, 16)


@pytest.mark.parametrize("key", list(SETTINGS))
@pytest.mark.parametrize("targeted", [False, True])
def test_queries_counted_exactly_and_no_gradient(key: str, targeted: bool) -> None:
    """Every image the model sees is one query of one sample; Step.queries is cumulative and within the budget."""
    counting, judge = Counting(), TinyNet()
    x = _images()
    source = judge(x).argmax(1)
    goal = Goal(source, (source + 1) % 10 if targeted else None)
    small = {"queries": 300, "steps": 3} if key == "hopskipjump" else {"queries": 40}
    attack = _make(key, **small, **({"starts": _starts()} if key == "hopskipjump" else {}))
    last = run_batch(attack, judge, x, goal, attacked=counting, seeds=[0, 1, 2, 3]).last
    assert last.queries is not None and last.queries.dtype == torch.long and last.queries.shape == (4,)
    assert int(last.queries.sum()) == counting.images
    assert int(last.queries.max()) <= attack.budget() and int(last.queries.min()) >= 1


def test_step_queries_are_cumulative_and_early_stop_false_spends_the_budget() -> None:
    x = _images()
    net = TinyNet()
    goal = Goal(net(x).argmax(1))
    for key in ("square", "simba"):
        attack = _make(key, queries=60, early_stop=False)
        seen = [s.queries.clone() for s in attack.run(net, x, goal, seed=0)]
        for a, b in zip(seen, seen[1:], strict=False):
            assert bool((b >= a).all())
        assert seen[-1].tolist() == [60] * 4, key


@pytest.mark.parametrize("key", list(SETTINGS))
def test_fools_most_images_on_the_saved_8bit_image(key: str) -> None:
    """Untargeted, through attack_targets: the verdict is the plain model's on the PNG-rounded image."""
    model = TinyClassifier()
    x = _images(4)
    extra = {"starts": _starts()} if key == "hopskipjump" else {}
    results = [
        attack_targets(model, tensor_to_pil(x[i : i + 1]), _make(key, **extra), None, confidence=0.0, seed=i)[0]
        for i in range(4)
    ]
    assert sum(r.success for r in results) >= 3, [(r.success, r.queries) for r in results]
    for r in results:
        assert r.queries is not None and 1 <= r.queries <= SETTINGS[key]["queries"]
        assert r.to_json()["queries"] == r.queries


def test_square_linf_stays_in_its_ball_on_the_saved_image() -> None:
    net = TinyNet()
    x = _images()
    last = run_batch(make_attack("square", eps=6.0, queries=50), net, x, Goal(net(x).argmax(1))).last
    assert float(linf(last.x_adv, x).max()) <= 6.0 / 255 + 1e-6
    assert torch.equal(last.x_adv, quantize(last.x_adv))


def test_square_l2_stays_on_its_sphere() -> None:
    net = TinyNet()
    x = torch.full((2, 3, 16, 16), 0.5)  # no clipping: the float iterate has L2 norm eps exactly
    last = run_batch(make_attack("square_l2", eps=1.5, queries=30), net, x, Goal(net(x).argmax(1))).last
    # Saved image: rounding moves each of the 768 values by at most half a grey level.
    bound = 1.5 + (768**0.5) * 0.5 / 255
    assert float((last.x_adv - x).flatten(1).norm(dim=1).max()) <= bound


def _reachable(obj: object, depth: int = 0, seen: set[int] | None = None) -> list[object]:
    """Everything reachable from obj through vars()/__dict__/__slots__ and containers (not closures)."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth > 6:
        return []
    seen.add(id(obj))
    found = [obj]
    children: list[object] = []
    if isinstance(obj, dict):
        children += list(obj.values())
    elif isinstance(obj, (list, tuple, set)):
        children += list(obj)
    if hasattr(obj, "__dict__"):
        children += list(vars(obj).values())
    for cls in type(obj).__mro__:
        for slot in getattr(cls, "__slots__", ()):
            if hasattr(obj, slot):
                children.append(getattr(obj, slot))
    for child in children:
        found += _reachable(child, depth + 1, seen)
    return found


def test_the_oracle_exposes_no_model_parameter_or_gradient() -> None:
    """What an attack holds: the oracle. Its outputs carry no graph; its attributes reach no module or weight."""
    net = TinyNet().requires_grad_(True)  # even a model with trainable weights
    x = _images().requires_grad_(True)
    oracle = Oracle(net, 4, budget=10)
    probs = oracle.probs(x, torch.arange(4))
    assert probs.shape == (4, 10) and not probs.requires_grad and probs.grad_fn is None
    assert torch.allclose(probs.sum(1), torch.ones(4))
    for thing in _reachable(oracle):
        assert not isinstance(thing, (nn.Module, nn.Parameter)), type(thing)
        assert not (isinstance(thing, torch.Tensor) and thing.requires_grad)
    assert not hasattr(oracle, "__dict__")  # __slots__: no attribute can be added to smuggle the model in
    assert isinstance(oracle._ask, types.FunctionType) and vars(oracle._ask) == {}
    with pytest.raises(RuntimeError):
        probs.sum().backward()  # no path back to the weights or the input


def test_oracle_counts_per_sample_and_refuses_past_the_budget() -> None:
    oracle = Oracle(TinyNet(), 3, budget=4)
    x = _images(5)
    oracle.probs(x, torch.tensor([0, 0, 2, 0, 2]))
    assert oracle.counts.tolist() == [3, 0, 2]
    with pytest.raises(AttackError, match="query budget of 4"):
        oracle.probs(x[:2], torch.tensor([0, 0]))
    assert oracle.counts.tolist() == [3, 0, 2]  # a refused query is not counted


def test_decision_oracle_gives_labels_only() -> None:
    net = TinyNet()
    x = _images()
    oracle = Oracle(net, 4, budget=10, labels_only=True, threshold=0.0)
    with pytest.raises(AttackError, match="only the top-1 label"):
        oracle.probs(x, torch.arange(4))
    labels = oracle.labels(x, torch.arange(4))
    assert torch.equal(labels, net(quantize(x)).argmax(1)) and labels.dtype == torch.long
    sure = Oracle(net, 4, budget=10, labels_only=True, threshold=1.0).labels(x, torch.arange(4))
    assert sure.tolist() == [-1] * 4  # below the threshold: no answer
    goal = Goal(labels)
    assert not bool(goal_reached(labels, goal).any())


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        ({"queries": 0}, "queries must be between 1 and 100000, got 0"),
        ({"queries": 100001}, "queries must be between 1 and 100000"),
        ({"queries": 10.5}, "whole number"),
    ],
)
@pytest.mark.parametrize("name", ["square", "square_l2", "simba", "hopskipjump"])
def test_bad_budget_is_one_line(name: str, kwargs: dict, fragment: str) -> None:
    with pytest.raises(AttackError, match=fragment) as info:
        make_attack(name, **kwargs)
    assert "\n" not in str(info.value)


def test_targeted_hopskipjump_without_a_starting_image_is_one_line() -> None:
    net = TinyNet()
    x = _images()
    source = net(x).argmax(1)
    goal = Goal(source, (source + 1) % 10)
    with pytest.raises(AttackError, match="none of the 0 starting images") as info:
        list(make_attack("hopskipjump").run(net, x, goal))
    assert "\n" not in str(info.value) and "decision-based" in str(info.value)


@pytest.mark.parametrize("argv", [["--queries", "0"], ["--queries", "200000"]])
def test_cli_bad_budget_exits_2_with_one_line(argv: list[str], tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code = cli.main(["attack", "--image", "chelsea", "--attack", "square", *argv, "--out", "X"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "queries must be between 1 and 100000" in err, err
    assert not (tmp_path / "X").exists()


def test_white_box_results_say_no_queries() -> None:
    model = TinyClassifier()
    (r,) = attack_targets(model, tensor_to_pil(_images(1)), make_attack("fgsm", eps=8.0), None, confidence=0.0)
    assert r.queries is None and r.to_json()["queries"] is None


def test_square_agrees_with_torchattacks_on_the_tiny_net() -> None:
    """Peer cross-check (torchattacks 3.5.1, requirements-peers.txt): same eps, p_init, budget and margin loss on 16
    images; the success rates (top-1, 8-bit image) agree within a few images and both need far fewer queries than
    the budget. The peer queries float images and draws one RNG stream for the batch, so not the same runs."""
    torchattacks = pytest.importorskip("torchattacks")
    net = TinyNet()
    g = torch.Generator().manual_seed(11)
    x = torch.randint(0, 256, (16, 3, 16, 16), generator=g).float() / 255.0
    source = net(x).argmax(1)
    ours = run_batch(make_attack("square", eps=24.0, queries=150), net, x, Goal(source), seeds=list(range(16))).last
    peer = torchattacks.Square(net, norm="Linf", eps=24 / 255, n_queries=150, p_init=0.05, loss="margin", seed=0)
    peer.init_hyperparam(x)
    torch.manual_seed(0)
    peer_queries, adv = peer.attack_single_run(x, source)
    peer_ok = net(quantize(adv)).argmax(1) != source  # (16,)
    ours_ok = ours.success
    assert int(ours_ok.sum()) >= 10 and int(peer_ok.sum()) >= 10
    assert abs(int(ours_ok.sum()) - int(peer_ok.sum())) <= 3
    assert float(ours.queries[ours_ok].float().median()) <= 75 and float(peer_queries[peer_ok].median()) <= 75


@pytest.mark.slow
def test_cli_square_on_lite0_writes_queries_in_result_json(tmp_path, capsys) -> None:
    out = tmp_path / "sq"
    argv = ["attack", "--image", "chelsea", "--attack", "square", "--queries", "300", "--confidence", "0"]
    code = cli.main([*argv, "--out", str(out), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["attack"] == "square" and 1 <= data["queries"] <= 300
    assert data == json.loads((out / "result.json").read_text())
    assert data["max_change_255"] <= 8  # the default eps, on the saved PNG


@pytest.mark.slow
def test_cli_targeted_hopskipjump_without_a_photo_of_the_target_is_one_line(tmp_path, capsys, monkeypatch) -> None:
    """Refused before any query, naming the target and the classes a shipped photo gives."""
    monkeypatch.chdir(tmp_path)
    argv = ["attack", "--image", "coffee", "--attack", "hopskipjump", "--target", "umbrella", "--out", "X"]
    refused(capsys, argv, "no shipped photo of umbrella is one; classes with such a photo: ")
    assert not (tmp_path / "X").exists()
    code = cli.main([*argv[:-2], "--target", "dalmatian", "--out", "X"])  # one target has a photo, one has not
    err = capsys.readouterr().err
    assert code == 2 and "no shipped photo of umbrella is one" in err and "dalmatian (251)" in err, err


@pytest.mark.slow
def test_the_labs_scheduler_gives_hopskipjump_the_photos_it_starts_from(lite0) -> None:
    """Issue 21: a Lab run goes through serving's scheduler, which hands a decision-based attack the same starting
    photos as the CLI: targeted at dalmatian (a shipped photo) it runs and ends inside its budget; at umbrella (none
    ships) it fails with the one line naming the classes that have one, and the worker goes on."""
    from contextlib import contextmanager

    from images import load_image
    from serving import RunRequest, SampleStep, Scheduler
    from serving.scheduler import FINISHED, RunFailed

    @contextmanager
    def hold(name: str):  # noqa: ANN202
        yield lite0

    x = pil_to_tensor(lite0.preprocess(load_image("coffee")))  # (1, 3, 224, 224)
    source = int(lite0.probabilities(x).argmax())
    small = {"queries": 120.0, "steps": 1.0, "init_evals": 20.0, "max_rms": 0.1}

    def request(target: int) -> RunRequest:
        return RunRequest.of(
            lite0.name, x, "hopskipjump", small, source=source, target=target, confidence=0.0, seed=0
        )  # fmt: skip

    scheduler = Scheduler(hold)
    umbrella = scheduler.submit(request(879))
    with pytest.raises(RunFailed, match="no shipped photo of umbrella is one; classes with such a photo: .*dalmatian"):
        list(scheduler.follow(umbrella))
    ticket = scheduler.submit(request(251))
    steps = [s for s in scheduler.follow(ticket) if isinstance(s, SampleStep)]
    assert ticket.status == FINISHED and steps and 1 <= int(steps[-1].queries[0]) <= 120
    assert float(steps[-1].distortion[0]) <= 0.1 + 1e-3


@pytest.mark.slow
def test_targeted_hopskipjump_starts_from_a_shipped_photo_of_the_target(lite0, tmp_path, capsys) -> None:
    """class_examples gives each class the first shipped labelled photo Lite0 gets right: dalmatian is Foolbox's
    imagenet_16, and the CLI's targeted run starts from it (its first query is that photo, labelled dalmatian)."""
    from images import load_image
    from images.imagesets import class_examples, starting_images

    examples = class_examples(lite0)
    assert examples[251].id == "imagenet_16" and 879 not in examples  # dalmatian ships, umbrella does not
    assert all(int(lite0.probabilities(pil_to_tensor(e.image)).argmax()) == k for k, e in examples.items())
    starts = starting_images(lite0, [251], "hopskipjump", skip="coffee")  # (1, 3, 224, 224)
    assert torch.equal(starts, pil_to_tensor(lite0.preprocess(load_image("imagenet_16"))))
    out = tmp_path / "hsj"
    argv = ["attack", "--image", "coffee", "--attack", "hopskipjump", "--target", "dalmatian", "--confidence", "0"]
    small = ["--queries", "120", "--steps", "1", "--init-evals", "20", "--max-rms", "0.1"]
    assert cli.main([*argv, *small, "--out", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["target"]["label"] == "dalmatian" and 1 <= data["queries"] <= 120
    assert data["rms_distortion"] <= 0.1 + 1e-3  # the closest dalmatian image found, pulled back onto the budget
