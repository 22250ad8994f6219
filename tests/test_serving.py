"""serving: the shared scheduler (batched runs equal solo runs, identical runs computed once, the queue, Stop while
queued) and the model cache bounded by bytes, on the tiny classifier (milliseconds)."""

from __future__ import annotations

import dataclasses
import threading
from contextlib import contextmanager

import pytest
import torch
from tinynet import TinyClassifier

from attacks import AttackError, Goal, make_attack
from attacks.runner import run_batch
from serving import ModelCache, NoRoom, RunRequest, SampleStep, Scheduler, Waiting
from serving.scheduler import CANCELLED, FINISHED


@pytest.fixture(scope="module")
def clf() -> TinyClassifier:
    return TinyClassifier()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    return (torch.randint(0, 256, (6, 3, 16, 16), generator=g).float() / 255.0).contiguous()  # (6, 3, 16, 16)


class Gate:
    """A `hold` that lets the worker start a batch only when the test opens it (to queue runs first), and counts
    the batches."""

    def __init__(self, model: TinyClassifier, *, open_: bool = True) -> None:
        self.model, self.batches, self.sizes = model, 0, []
        self.event = threading.Event()
        if open_:
            self.event.set()

    @contextmanager
    def __call__(self, name: str):  # noqa: ANN204 - a context manager factory
        assert self.event.wait(10)
        if name != "tiny":
            raise KeyError(f"unknown model {name!r}")
        self.batches += 1
        yield self.model


def _blocker(scheduler: Scheduler, clf, x):  # noqa: ANN202
    """A run of another kind that the worker takes at once and holds at the closed gate, so the runs submitted
    next all wait in the queue together (as a class pressing Run within a second)."""
    ticket = scheduler.submit(_request(clf, x, 5, attack="fgsm", params={"eps": 4.0}, target_shift=None))
    while ticket.status != "running":
        threading.Event().wait(0.01)
    return ticket


def _request(clf, x, j, attack="pgd", params=None, seed=3, target_shift=1, confidence=0.0) -> RunRequest:
    src = int(clf(x[j : j + 1]).argmax())
    params = params or {"eps": 8.0, "step_size": 2.0, "steps": 8, "random_start": 1.0}
    target = None if target_shift is None else (src + target_shift) % 10
    return RunRequest.of(
        "tiny", x[j : j + 1], attack, params, source=src, target=target, confidence=confidence, seed=seed + j
    )


def _steps(scheduler: Scheduler, ticket) -> list[SampleStep]:
    return [s for s in scheduler.follow(ticket) if isinstance(s, SampleStep)]


def test_a_batch_of_runs_gives_each_the_steps_of_its_run_alone(clf, images) -> None:
    """Six sessions' runs queued together go through one batch; each one's iterations, verdict, RMS and final
    image equal the same request run alone (attacks.runner.run_batch on that one image with its seed)."""
    gate = Gate(clf, open_=False)
    scheduler = Scheduler(gate, max_batch=8)
    _blocker(scheduler, clf, images)
    tickets = [scheduler.submit(_request(clf, images, j)) for j in range(5)]
    gate.event.set()
    got = [_steps(scheduler, t) for t in tickets]
    assert gate.batches == 2 and all(t.status == FINISHED for t in tickets)  # the blocker, then all five at once
    attack = make_attack("pgd", eps=8.0, step_size=2.0, steps=8, random_start=1.0)
    for j, (ticket, steps) in enumerate(zip(tickets, got, strict=True)):
        req = ticket.request
        goal = Goal(torch.tensor([req.source]), torch.tensor([req.target]), 0.0)
        alone = run_batch(attack, clf, images[j : j + 1], goal, seeds=[req.seed])
        assert len(steps) == alone.last.index + 1 and steps[-1].index == alone.last.index
        assert bool(steps[-1].success[0]) == bool(alone.last.success[0])
        assert float(steps[-1].distortion[0]) == pytest.approx(float(alone.last.distortion[0]), abs=1e-5)
        solo_image = (alone.x_adv.clamp(0, 1) * 255).round().to(torch.uint8)
        assert torch.equal(steps[-1].image, solo_image)


def test_identical_requests_are_computed_once_and_replayed_to_a_late_session(clf, images) -> None:
    gate = Gate(clf, open_=False)
    scheduler = Scheduler(gate)
    first = scheduler.submit(_request(clf, images, 0))
    second = scheduler.submit(_request(clf, images, 0))  # another session, same settings, while queued
    assert second is first and first.watchers == 2
    gate.event.set()
    live = _steps(scheduler, first)
    late = scheduler.submit(_request(clf, images, 0))  # after it finished: served from the kept run
    assert late is first and gate.batches == 1 and late.asked == 3
    assert [s.index for s in _steps(scheduler, late)] == [s.index for s in live]
    other_seed = scheduler.submit(_request(clf, images, 0, seed=99))  # not identical: its own run
    assert other_seed is not first
    _steps(scheduler, other_seed)
    assert gate.batches == 2


def test_a_queued_session_sees_the_runs_ahead_and_can_leave(clf, images) -> None:
    gate = Gate(clf, open_=False)
    scheduler = Scheduler(gate, max_batch=8)
    running = _blocker(scheduler, clf, images)
    pgd = [scheduler.submit(_request(clf, images, j)) for j in (1, 2)]
    cw = scheduler.submit(_request(clf, images, 3, attack="cw", params={"steps": 3, "binary_steps": 1}))
    wait = scheduler.waiting(cw)
    assert wait.ahead == 3 and wait.eta_s > 0  # the running one and two queued before it
    assert "3 runs ahead of yours" in wait.sentence()
    follower = scheduler.follow(pgd[1], poll_s=0.01)
    assert isinstance(next(follower), Waiting)  # a yield point while queued: a page's Stop takes effect
    scheduler.leave(pgd[1])  # Stop while queued: it leaves the queue
    assert pgd[1].status == CANCELLED and scheduler.waiting(cw).ahead == 2
    gate.event.set()
    for t in (running, pgd[0], cw):
        _steps(scheduler, t)
    assert gate.batches == 3  # fgsm; the remaining pgd; cw alone (not per-sample)


def test_the_queue_estimate_counts_down_and_follows_a_slow_batchs_own_pace(clf) -> None:
    """Helper walk: "about 7 s" stayed while the run ahead took 24 s. The running batch's share of the estimate is
    what is left of a typical batch, counting down, then as long again as the batch has taken (never past its
    planned steps)."""
    import time
    import types

    scheduler = Scheduler(Gate(clf))
    scheduler._batch_seconds, scheduler._batch_total = 4.0, 200
    scheduler._running = [types.SimpleNamespace(steps=[])]
    scheduler._batch_started = time.perf_counter() - 1.0
    assert 2.9 < scheduler._left() <= 3.0  # 4 s typical, 1 s gone, no step yet
    scheduler._batch_started = time.perf_counter() - 10.0
    scheduler._running = [types.SimpleNamespace(steps=[0] * 5)]  # slow: 5 steps in 10 s
    assert 9.9 < scheduler._left() < 10.2  # as long again (5 more steps at 2 s), not 195 steps x 2 s
    scheduler._running = [types.SimpleNamespace(steps=[0] * 198)]
    assert scheduler._left() < 0.2  # two planned steps left at 0.05 s each
    scheduler._running = []
    assert scheduler._left() == 0.0


def test_a_failing_batch_fails_its_runs_and_the_worker_goes_on(clf, images) -> None:
    scheduler = Scheduler(Gate(clf))
    bad = scheduler.submit(dataclasses.replace(_request(clf, images, 0), model="missing"))
    with pytest.raises(RuntimeError, match="unknown model 'missing'"):
        _steps(scheduler, bad)
    good = scheduler.submit(_request(clf, images, 1))
    assert _steps(scheduler, good) and good.status == FINISHED
    with pytest.raises(AttackError, match="eps"):  # settings the attack refuses: one line, at once, nothing queued
        scheduler.submit(_request(clf, images, 2, params={"eps": -1.0, "step_size": 1.0, "steps": 2}))
    assert scheduler.stats()["queued"] == 0


def test_the_model_cache_is_bounded_by_bytes_pins_the_default_and_refuses_what_cannot_fit() -> None:
    sizes = {"small": 10, "medium": 30, "big": 45, "huge": 200}
    loaded: list[str] = []

    def loader(name: str):  # noqa: ANN202
        loaded.append(name)
        return TinyClassifier()

    cache = ModelCache(100, pinned=("small",), loader=loader, size_of=lambda m: sizes[loaded[-1]])
    cache.get("small")
    cache.get("medium")
    with cache.using("medium"):
        cache.get("big")  # 10 + 30 + 45 fits
        with pytest.raises(NoRoom, match="no room for huge on this server right now"):
            cache.get("huge")
        other = {"small": 10, "medium": 30, "big": 45, "extra": 40}
        sizes.update(other)
        cache.get("extra")  # evicts "big" (unused), never "small" (pinned) nor "medium" (in use)
    assert cache.names() == ["small", "medium", "extra"] and cache.used == 80
    assert loaded.count("small") == 1  # one copy for every caller


def test_a_run_left_mid_run_is_cancelled_and_never_replayed_as_done(clf, images) -> None:
    """Regression (CI, this session): a run everyone left mid-run was marked finished after its cancel, kept, and
    then replayed as a complete run to the next identical request, which ended at once."""
    scheduler = Scheduler(Gate(clf))
    long = {"eps": 8.0, "step_size": 0.01, "steps": 5000, "random_start": 0.0}
    first = scheduler.submit(_request(clf, images, 0, params=long, confidence=0.9999))
    for item in scheduler.follow(first, poll_s=0.01):
        if isinstance(item, SampleStep) and item.index >= 2:
            break
    scheduler.leave(first)
    while first.status == "running":
        threading.Event().wait(0.01)
    assert first.status == CANCELLED and len(first.steps) < 5001
    again = scheduler.submit(_request(clf, images, 0, params=long, confidence=0.9999))
    assert again is not first and scheduler.stats()["kept"] == 0  # a new run, not the stopped one replayed
    scheduler.leave(again)
