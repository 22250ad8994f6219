"""One process-wide scheduler for the sessions' attack runs: bounded work at once, same-kind runs batched into one
forward/backward, identical runs computed once, and a queue position every waiting student can see.

Why: thirty students pressing Run at once used to start thirty runs that shared two cores evenly, each with its own
activations (~70-110 MB a run): nobody saw a verdict for a minute and memory grew past a Cloud container. Here one
worker thread runs one batch at a time, so memory is bounded by `max_batch` whatever the number of students, and the
runs of the same model and attack settings that are waiting go into one batch (a per-sample attack on N images is
exactly N single runs: attacks.base.GradientAttack; DeepFool and CW run alone). Order: first come, first served by
batch: the oldest waiting run picks the kind of the next batch, and every waiting run of that kind joins it. On 2
cores a batch of 10 costs 37 ms per image-step against 42 ms alone, so batching wins little time but runs never
thrash; round-robin between batches would make everyone's bars move early and everyone's verdict late.

A run is a `RunRequest`; `submit` returns its `Ticket` (or the ticket of an identical request, running or finished:
same model, image bytes, attack, parameters, target, confidence and seed give the same Steps). A page follows a
ticket with `follow`, which yields `Waiting` while queued and each `SampleStep` as it comes, live or replayed.
No Streamlit here; attacks run through attacks.runner.drive, the one driver of attack.run.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from attacks import Attack, AttackError, Goal, Step, make_attack
from attacks.runner import drive
from images.imagesets import starting_images

QUEUED, RUNNING, FINISHED, FAILED, CANCELLED = "queued", "running", "finished", "failed", "cancelled"


class RunFailed(RuntimeError):
    """A run that failed in the scheduler's worker; str(err) is the page's one line."""


ENDED = (FINISHED, FAILED, CANCELLED)


@dataclass(frozen=True)
class RunRequest:
    """One run as a session asks for it: a single 8-bit model input and everything its Steps depend on."""

    model: str
    image: Tensor  # (1, 3, H, W) in [0, 1], the 8-bit model input
    attack: str
    params: tuple[tuple[str, float], ...]  # sorted (name, value): hashable, order-free
    source: int
    target: int | None
    confidence: float
    seed: int  # the sample's own seed (attacks.runner.sample_seed)

    @staticmethod
    def of(
        model: str,
        image: Tensor,
        attack: str,
        params: dict[str, float],
        *,
        source: int,
        target: int | None,
        confidence: float,
        seed: int,
    ) -> RunRequest:
        return RunRequest(
            model, image.detach().cpu(), attack, tuple(sorted(params.items())), source, target, confidence, seed
        )

    def build(self) -> Attack:
        return make_attack(self.attack, **dict(self.params))

    @property
    def key(self) -> str:
        """Identical requests have the same key: the image's bytes, not its name, so two uploads of one file match."""
        digest = hashlib.blake2b(self.image.numpy().tobytes(), digest_size=16).hexdigest()
        spec = [self.model, self.attack, self.params, self.source, self.target, self.confidence, self.seed]
        return digest + json.dumps(spec)

    @property
    def batch_key(self) -> tuple[Any, ...]:
        """Runs that can share one batch: same model, attack settings, goal kind, confidence and image size."""
        return (self.model, self.attack, self.params, self.target is None, self.confidence, tuple(self.image.shape))


@dataclass(frozen=True)
class SampleStep:
    """One sample's share of a batched Step, compact: its 8-bit iterate as uint8 (what the page shows and saves)."""

    index: int
    image: Tensor  # (1, 3, H, W) uint8
    probs: Tensor  # (1, K) float32, the judge's on the 8-bit image
    loss: Tensor  # (1,)
    distortion: Tensor  # (1,)
    done: Tensor  # (1,) bool
    success: Tensor  # (1,) bool
    queries: Tensor | None = None  # (1,) black-box attacks' images asked so far; None for white-box

    @staticmethod
    def of(step: Step, j: int) -> SampleStep:
        sl = slice(j, j + 1)
        image = (step.x_adv[sl].detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8)  # (1, 3, H, W)
        return SampleStep(
            step.index,
            image,
            step.probs[sl].detach().float().cpu(),
            step.loss[sl].detach().cpu(),
            step.distortion[sl].detach().cpu(),
            step.done[sl].cpu(),
            step.success[sl].cpu(),
            None if step.queries is None else step.queries[sl].cpu(),
        )

    def as_step(self) -> Step:
        """A one-sample Step whose x_adv is the 8-bit iterate (all a page reads of it)."""
        return Step(
            self.index,
            self.image.float() / 255,
            self.probs,
            self.loss,
            self.distortion,
            self.done,
            self.success,
            self.queries,
        )

    @property
    def nbytes(self) -> int:
        return self.image.numel() + 4 * self.probs.numel() + 64


@dataclass(frozen=True)
class Waiting:
    """What a queued run's page shows: how many runs are ahead of it and about how long they take."""

    ahead: int
    eta_s: float

    def sentence(self) -> str:
        runs = "1 run" if self.ahead == 1 else f"{self.ahead} runs"
        return f"Waiting for the server: {runs} ahead of yours, about {max(1, round(self.eta_s))} s."


@dataclass(eq=False)  # identity: a ticket is one run, found in the queue by itself (its fields hold tensors)
class Ticket:
    """A run's place in the scheduler and everything it yielded so far (shared by every session that asked)."""

    request: RunRequest
    id: int
    status: str = QUEUED
    steps: list[SampleStep] = field(default_factory=list)
    error: str | None = None
    watchers: int = 1  # sessions following it now
    asked: int = 1  # sessions that ever asked for it (the first, and every identical request served from it)
    changed: threading.Condition = field(default_factory=threading.Condition, repr=False)

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self.steps)

    def _push(self, item: SampleStep | None = None, status: str | None = None, error: str | None = None) -> None:
        with self.changed:
            if item is not None:
                self.steps.append(item)
            if status is not None:
                self.status = status
            if error is not None:
                self.error = error
            self.changed.notify_all()


class Scheduler:
    """The process's one queue of attack runs and the worker thread that runs them, a batch at a time."""

    def __init__(
        self,
        hold: Callable[[str], AbstractContextManager[Any]],
        *,
        max_batch: int = 8,
        keep_bytes: int = 256 * 2**20,
        batched: Callable[[Attack], bool] | None = None,
    ) -> None:
        """hold: model name -> a context holding the classifier against eviction while a batch uses it
        (serving.models.ModelCache.using). max_batch: runs per
        batch (memory per batch grows with it; on 2 cores a batch of 30 was memory-bound). keep_bytes: finished
        runs kept for identical requests, oldest dropped first."""
        self._hold = hold
        self.max_batch = max_batch
        self.keep_bytes = keep_bytes
        self._batched = batched or (lambda attack: bool(getattr(attack, "per_sample", False)))
        self._lock = threading.Condition()
        self._queue: list[Ticket] = []
        self._running: list[Ticket] = []
        self._finished: OrderedDict[str, Ticket] = OrderedDict()
        self._live: dict[str, Ticket] = {}
        self._ids = 0
        self._batch_seconds = 4.0  # running mean of a batch's wall time, for the queue's estimate
        self._batch_started = 0.0  # perf_counter() when the running batch began
        self._batch_total = 1  # the running batch's planned steps (its attack's total_steps)
        self._batches = 0
        self._thread: threading.Thread | None = None

    # --- what sessions call -----------------------------------------------------------------------------------

    def submit(self, request: RunRequest) -> Ticket:
        """Queue a run, or join the identical one already queued, running or kept after it finished. Settings the
        attack refuses raise its AttackError here, in the caller's thread."""
        request.build()
        key = request.key
        with self._lock:
            same = self._live.get(key) or self._finished.get(key)
            if same is not None and same.status != FAILED and same.status != CANCELLED:
                same.watchers += 1
                same.asked += 1
                if key in self._finished:
                    self._finished.move_to_end(key)
                return same
            self._ids += 1
            ticket = Ticket(request, self._ids)
            self._queue.append(ticket)
            self._live[key] = ticket
            self._ensure_worker()
            self._lock.notify_all()
            return ticket

    def leave(self, ticket: Ticket) -> None:
        """A session stops watching (Stop, a closed tab): a run nobody watches leaves the queue, or stops after
        its current step if it is running; a finished one stays kept for identical requests."""
        with self._lock:
            ticket.watchers = max(0, ticket.watchers - 1)
            if ticket.watchers or ticket.status in ENDED:
                return
            if ticket.status == QUEUED:
                self._queue.remove(ticket)
                self._live.pop(ticket.request.key, None)
                ticket._push(status=CANCELLED)

    def waiting(self, ticket: Ticket) -> Waiting:
        """Runs ahead of a queued ticket (those running and those queued before it) and the time they take."""
        with self._lock:
            if ticket.status != QUEUED:
                return Waiting(0, 0.0)
            before = self._queue[: self._queue.index(ticket)]
            ahead = len(before) + len(self._running)
            return Waiting(ahead, len({t.request.batch_key for t in before}) * self._batch_seconds + self._left())

    def _left(self) -> float:
        """Seconds the running batch still needs: what is left of a typical batch (the running mean), counting
        down, or, once it has run longer than that, as long again as it has taken (its own pace, never past its
        planned steps; most runs stop early, so the planned total alone overstates it). Under the lock."""
        if not self._running:
            return 0.0
        elapsed = time.perf_counter() - self._batch_started
        done = max(len(t.steps) for t in self._running)
        pace = elapsed / done * min(max(0, self._batch_total - done), done) if done else 0.0
        return max(self._batch_seconds - elapsed, pace, 0.0)

    def follow(self, ticket: Ticket, *, poll_s: float = 0.25) -> Iterator[SampleStep | Waiting]:
        """A ticket's Steps from the first, live or replayed, with `Waiting` every `poll_s` while it is queued (a
        page's yield point, so Stop works while waiting). Ends when the run ends; a failed run raises its error."""
        i = 0
        while True:
            with ticket.changed:
                if i >= len(ticket.steps) and ticket.status not in ENDED:
                    ticket.changed.wait(poll_s)
                new, status = ticket.steps[i:], ticket.status
            yield from new
            i += len(new)
            if status == FAILED:
                raise RunFailed(ticket.error or "the run failed")
            if status in ENDED and i >= len(ticket.steps):
                return
            if status == QUEUED:
                yield self.waiting(ticket)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "queued": len(self._queue),
                "running": len(self._running),
                "kept": len(self._finished),
                "kept_bytes": sum(t.nbytes for t in self._finished.values()),
                "batches": self._batches,
                "batch_seconds": self._batch_seconds,
            }

    # --- the worker -------------------------------------------------------------------------------------------

    def _ensure_worker(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, name="advlab-scheduler", daemon=True)
            self._thread.start()

    def _next_batch(self) -> list[Ticket]:
        """The oldest queued run and every queued run of its kind (up to max_batch), when its attack is per-sample."""
        head = self._queue[0]
        batch = [head]
        attack = head.request.build()  # built once at submit: settings are valid
        if self._batched(attack):
            batch += [t for t in self._queue[1:] if t.request.batch_key == head.request.batch_key]
        batch = batch[: self.max_batch]
        for t in batch:
            self._queue.remove(t)
            t._push(status=RUNNING)
        self._running = batch
        self._batch_started, self._batch_total = time.perf_counter(), max(1, attack.total_steps())
        return batch

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue:
                    self._lock.wait()
                batch = self._next_batch()
            start = time.perf_counter()
            try:
                self._run(batch)
            except Exception as err:  # a failed batch fails its runs (each page shows the line), never the worker
                for t in batch:
                    # a user error (AttackError: bad settings, no starting image) is its own one line; others say what
                    t._push(
                        status=FAILED,
                        error=str(err) if isinstance(err, AttackError) else f"{type(err).__name__}: {err}",
                    )
            seconds = time.perf_counter() - start
            with self._lock:
                self._batches += 1
                self._batch_seconds = 0.7 * self._batch_seconds + 0.3 * seconds
                self._running = []
                for t in batch:
                    self._live.pop(t.request.key, None)
                    if t.status == FINISHED:
                        self._finished[t.request.key] = t
                self._trim()

    def _trim(self) -> None:
        """Drop the oldest finished runs beyond keep_bytes (their watchers keep their own references)."""
        total = sum(t.nbytes for t in self._finished.values())
        while self._finished and total > self.keep_bytes:
            _, old = self._finished.popitem(last=False)
            total -= old.nbytes

    def _run(self, batch: list[Ticket]) -> None:
        """One batch through attacks.runner.drive; sample j's Steps go to ticket j until its sample is done, which
        is exactly the Step stream of that run alone (the solo run ends at its sample's first done Step)."""
        req = batch[0].request
        with self._hold(req.model) as model:
            self._run_on(model, batch)

    def _run_on(self, model: Any, batch: list[Ticket]) -> None:
        open_ = set(range(len(batch)))

        def wanted(j: int) -> bool:
            with self._lock:
                if batch[j].watchers == 0:  # everyone left: stop feeding it
                    batch[j]._push(status=CANCELLED)
                    return False
                return True

        for items in batch_steps(model, [t.request for t in batch], wanted=wanted):
            for j, item in enumerate(items):
                if item is not None:
                    batch[j]._push(item)
                    if bool(item.done[0]):
                        open_.discard(j)
                        batch[j]._push(status=FINISHED)
        for j in open_:  # the attack ended without marking it done (cannot happen with SampleLoop): end it anyway
            if batch[j].status == RUNNING:  # not one that `wanted` cancelled (a stopped run is never kept as done)
                batch[j]._push(status=FINISHED)


def batch_steps(
    model: Any, requests: list[RunRequest], *, wanted: Callable[[int], bool] = lambda j: True
) -> Iterator[list[SampleStep | None]]:
    """Runs of one kind (`RunRequest.batch_key`) as one batch through attacks.runner.drive: per attack Step, one
    entry per request, its SampleStep while its run is open, None once it ended. A run ends after its first done
    Step (exactly the Step stream of that run alone) or when `wanted(j)`, asked after each Step, says False.
    Ends when every run has ended. The in-process scheduler and the Ray Serve replicas both run batches here."""
    req = requests[0]
    device = model.device
    x = torch.cat([r.image for r in requests]).to(device)  # (N, 3, H, W)
    source = torch.tensor([r.source for r in requests], device=device)  # (N,)
    target = None if req.target is None else torch.tensor([r.target for r in requests], device=device)  # (N,)
    goal = Goal(source, target, req.confidence)
    open_ = list(range(len(requests)))
    attack = req.build()
    if getattr(attack, "decision_based", False):  # HopSkipJump: the photos it owns to start from, as the CLI's
        attack.starts = starting_images(model, None if target is None else target.tolist(), attack.name)
    steps = drive(attack, model, x, goal, seeds=[r.seed for r in requests])
    try:
        for step in steps:
            items: list[SampleStep | None] = [None] * len(requests)
            for j in list(open_):
                items[j] = SampleStep.of(step, j)
                if bool(items[j].done[0]):
                    open_.remove(j)
            yield items
            open_ = [j for j in open_ if wanted(j)]
            if not open_:
                break
    finally:
        steps.close()
