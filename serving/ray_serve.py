"""The scheduler's model work on Ray Serve: for a department serving several classes from one GPU box.

Selected by ADVLAB_BACKEND=ray (ADVLAB_RAY_ADDRESS: a running cluster; unset: a local Ray the app starts); the
in-process Scheduler stays the default and Cloud needs no Ray. What a session sees does not change: the app's own
Scheduler still owns the queue, its place in it, the sharing of identical runs and the tickets. Only the model work
moves: each run of a batch goes to the `advlab-attacks` deployment as its own streaming request, and a replica's
`@serve.batch` groups the requests that arrive together (from this app server and from others on the cluster), runs
each kind of run (RunRequest.batch_key) as one batch through serving.scheduler.batch_steps, the same code the
in-process scheduler runs, and streams each run its SampleSteps. A replica takes a GPU where the cluster has one.

Needs `pip install "ray[serve]"` (not in requirements.txt: the Cloud app never imports this module).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import torch

from attacks import AttackError
from models import Classifier
from serving.models import ModelCache
from serving.scheduler import (
    CANCELLED,
    FAILED,
    FINISHED,
    RUNNING,
    RunRequest,
    SampleStep,
    Scheduler,
    Ticket,
    batch_steps,
)

APP = "advlab"
DEPLOYMENT = "advlab-attacks"
#: How long a replica waits for more requests to batch with the first one: the app sends a batch's runs at once.
BATCH_WAIT_S = 0.05


@dataclass(frozen=True)
class RunError:
    """What a replica streams to a run whose batch failed: the page's one line (a user's AttackError as it is)."""

    message: str


def import_serve() -> Any:
    """ray.serve, or one line saying how to get it."""
    try:
        from ray import serve
    except ImportError:
        raise AttackError('ADVLAB_BACKEND=ray needs Ray Serve: pip install "ray[serve]"') from None
    return serve


class AttackReplica:
    """One Serve replica: its own bounded model cache, and the batches of runs that reach it together."""

    def __init__(
        self,
        loader: Callable[[str], Classifier] | None = None,
        *,
        budget_bytes: int | None = None,
        threads: int | None = None,
    ) -> None:
        torch.set_num_threads(threads or os.cpu_count() or 1)  # Ray sets OMP_NUM_THREADS=1 in workers
        kwargs = {} if loader is None else {"loader": loader}
        self.models = ModelCache(budget_bytes, pinned=(), **kwargs)
        # torch on one thread of its own: the replica's event loop stays free to take requests meanwhile
        self._torch = ThreadPoolExecutor(max_workers=1, thread_name_prefix="advlab-replica")
        self.sizes: list[list[int]] = []  # per batch the replica ran: its kinds' sizes (what `seen` reports)
        self.steps: list[int] = []  # per batch: the Steps it ran
        self.dropped: set[int] = set()  # id() of running requests whose caller went away: no more Steps for them
        self.running: set[int] = set()  # id() of the requests in the running batch (an id is unique while alive)

    def seen(self) -> dict[str, list[Any]]:
        """Per batch this replica ran (the last 100, oldest first): its kinds' sizes and the Steps it ran."""
        return {"sizes": self.sizes[-100:], "steps": self.steps[-100:]}

    async def follow(
        self, request: RunRequest, batched: Callable[[RunRequest], AsyncIterator[Any]]
    ) -> AsyncIterator[Any]:
        """One run's stream out of its batch; when it ends early (the caller cancelled: Stop, a closed tab), the
        batch stops computing it at its next Step."""
        try:
            async for item in batched(request):
                yield item
        finally:
            if id(request) in self.running:  # not after its batch: a later request may reuse a freed object's id
                self.dropped.add(id(request))

    async def batch(self, requests: list[RunRequest]) -> AsyncIterator[list[Any]]:
        """`@serve.batch` (applied in `deployment`) calls this with the requests that arrived together and hands
        entry i of each yielded list (a SampleStep or RunError) to request i's stream; StopIteration ends it."""
        loop = asyncio.get_running_loop()
        kinds = _kinds(requests)
        self.sizes.append([len(group) for group in kinds])
        self.steps.append(0)
        self.running |= {id(r) for r in requests}
        with ExitStack() as held:
            streams = [(group, self._group(held, requests, group)) for group in kinds]
            while streams:
                out: list[Any] = [StopIteration] * len(requests)
                for group, stream in list(streams):
                    items = await loop.run_in_executor(self._torch, next, stream, None)
                    if items is None:
                        streams.remove((group, stream))
                        continue
                    for i, item in zip(group, items, strict=True):
                        out[i] = StopIteration if item is None else item
                self.steps[-1] += 1
                yield out
        self.running -= {id(r) for r in requests}
        self.dropped -= {id(r) for r in requests}

    def _group(self, held: ExitStack, requests: list[RunRequest], group: list[int]) -> Iterator[list[Any]]:
        """One kind's batch_steps, its model held against eviction; a failure becomes each member's RunError."""
        try:
            model = held.enter_context(self.models.using(requests[group[0]].model))
            members = [requests[i] for i in group]
            yield from batch_steps(model, members, wanted=lambda j: id(members[j]) not in self.dropped)
        except Exception as err:  # the runs of this group each get the line; the replica and other groups go on
            line = str(err) if isinstance(err, AttackError) else f"{type(err).__name__}: {err}"
            yield [RunError(line)] * len(group)
            yield [None] * len(group)


def _kinds(requests: list[RunRequest]) -> list[list[int]]:
    """Indices of requests that can share a batch: same batch_key and a per-sample attack; others alone."""
    groups: dict[Any, list[int]] = {}
    for i, r in enumerate(requests):
        key = r.batch_key if getattr(r.build(), "per_sample", False) else ("alone", i)
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def deployment(
    *, max_batch: int = 8, batch_wait_s: float = BATCH_WAIT_S, num_gpus: float = 0.0, num_replicas: int = 1
) -> Any:
    """The Serve deployment class: AttackReplica with `run` batched by @serve.batch."""
    serve = import_serve()

    class Replica(AttackReplica):
        # same name as the function: serve.batch finds `self` by it
        batch = serve.batch(max_batch_size=max_batch, batch_wait_timeout_s=batch_wait_s)(AttackReplica.batch)

        async def run(self, request: RunRequest) -> AsyncIterator[SampleStep | RunError]:
            """One run's stream (an async generator method: Serve streams it as one)."""
            async for item in self.follow(request, self.batch):
                yield item

    Replica.__name__ = Replica.__qualname__ = "AttackReplica"
    return serve.deployment(
        Replica,
        name=DEPLOYMENT,
        num_replicas=num_replicas,
        ray_actor_options={"num_cpus": 1, "num_gpus": num_gpus},
        max_ongoing_requests=max(16, 2 * max_batch),
    )


def start(
    *,
    address: str | None = None,
    max_batch: int = 8,
    batch_wait_s: float = BATCH_WAIT_S,
    loader: Callable[[str], Classifier] | None = None,
    num_cpus: int | None = None,
) -> Any:
    """Connect to Ray (the cluster at `address`, or a local one), deploy the replicas (one per GPU, or one on the
    CPUs) unless the cluster has them already, and return the deployment's handle."""
    from experiments.study.ray_engine import connect

    serve = import_serve()
    import ray

    connect(address, num_cpus=num_cpus)
    serve.start(http_options={"location": "NoServer"})  # handles only: the app servers call it, no HTTP
    if APP in serve.status().applications:  # another app server deployed it: share its replicas and batches
        return serve.get_app_handle(APP)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    app = deployment(
        max_batch=max_batch, batch_wait_s=batch_wait_s, num_gpus=1.0 if gpus else 0.0, num_replicas=max(1, gpus)
    )
    return serve.run(app.bind(loader), name=APP, route_prefix=None)


def _no_hold(name: str) -> Any:
    raise RuntimeError("the Ray Serve scheduler holds no models in the app server")


class ServeScheduler(Scheduler):
    """The in-process Scheduler (queue, places, identical runs shared), with each batch run on the deployment."""

    def __init__(self, handle: Any, *, max_batch: int = 8, keep_bytes: int = 256 * 2**20) -> None:
        super().__init__(_no_hold, max_batch=max_batch, keep_bytes=keep_bytes)
        self._handle = handle.options(stream=True)

    def _run(self, batch: list[Ticket]) -> None:
        """Send every run of the batch at once (the replica's batcher groups them) and follow each stream on its own
        thread until its run ends; returns when all have ended, so one batch is in flight at a time."""
        responses = [self._handle.run.remote(t.request) for t in batch]
        pairs = zip(batch, responses, strict=True)
        threads = [threading.Thread(target=self._follow, args=pair, daemon=True) for pair in pairs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _follow(self, ticket: Ticket, response: Any) -> None:
        try:
            for item in response:
                if isinstance(item, RunError):
                    ticket._push(status=FAILED, error=item.message)
                    return
                ticket._push(item)
                if bool(item.done[0]):
                    ticket._push(status=FINISHED)
                    return
                if ticket.watchers == 0:  # everyone left: cancel it (the replica's batch drops it at its next Step)
                    response.cancel()
                    ticket._push(status=CANCELLED)
                    return
        except Exception as err:  # a lost replica or cluster: this run's page shows the line, the queue goes on
            ticket._push(status=FAILED, error=f"the Ray Serve backend failed: {type(err).__name__}: {err}")
            return
        if ticket.status == RUNNING:
            ticket._push(status=FINISHED)
