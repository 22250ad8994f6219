"""The susceptibility study on Ray: the local engine's contract, with its units run by Ray actors.

Why Ray (an existing engine, not a scheduler of our own): the full study (50,000 images x 999 targets) needs many
GPUs, and Ray places actors on them (num_gpus=1 each: Ray sets CUDA_VISIBLE_DEVICES per actor), retries nothing we
have to track, and runs the same code on a laptop's local cluster and on a real one (`address=`).

How: the driver screens and plans exactly as experiments.study.sweep.run_sweep does (prepare_sweep, iter_units), so the
units, and therefore the rows, are the same; each unit (a block of (image, target) pairs with the images' 8-bit
model inputs, so workers need no file access) goes to an actor that keeps its model loaded and calls the same pure
`run_unit`. Rows stream back to this one process, which is the only writer of the SQLite store; a unit's rows are
committed in one transaction as they arrive, so Stop, Ctrl-C or kill -9 lose at most the units in flight, and the
same call again resumes (finished pairs are skipped). A bounded number of units is in flight at a time, so a
50-million-pair study never sits in the driver's memory or in the object store.

Known traps handled here: Ray starts workers with one OpenMP thread (torch.set_num_threads(threads) in each actor),
and CI containers have a small /dev/shm (a local cluster gets a 200 MB object store unless told otherwise).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attacks import AttackError
from attacks.runner import default_chunk
from experiments.study.store import Row, SweepStore
from experiments.study.sweep import Progress, Study, Unit, iter_units, prepare_sweep, run_unit
from images.imagesets import ImageSet

#: A model for the workers: a registry name (models.load_model) or a picklable callable that returns the model.
ModelSource = str | Callable[[], nn.Module]
#: Object store of a local cluster: units carry a few 8-bit images each, and CI containers have a small /dev/shm.
OBJECT_STORE_MEMORY = 200 * 1024**2
#: Units in flight per worker: one running and one waiting, so a worker never idles on the driver.
IN_FLIGHT_PER_WORKER = 2
ROOT = Path(__file__).resolve().parents[2]
#: What a remote cluster does not need from the checkout (the code ships as the job's working_dir).
REMOTE_EXCLUDES = [".git", "data/study", "tests", "benchmarks", "*.sqlite", "__pycache__"]


def build_model(source: ModelSource) -> nn.Module:
    """The model a name or factory stands for (in the driver for screening, and once in each worker)."""
    if isinstance(source, str):
        from models import load_model

        return load_model(source)
    return source()


def import_ray() -> Any:
    """The ray module, or one line saying how to get it."""
    try:
        import ray
    except ImportError:
        raise AttackError("the ray engine needs Ray: pip install 'ray>=2.9'") from None
    return ray


class SweepWorker:
    """A Ray actor's state: the model, loaded once, and the study's attack; runs one unit per call."""

    def __init__(self, source: ModelSource, study: Study, threads: int) -> None:
        torch.set_num_threads(threads)  # Ray sets OMP_NUM_THREADS=1 in workers
        self.model = build_model(source)
        self.study = study
        self.attack = study.make_attack()

    def run(self, unit: Unit) -> list[Row]:
        return run_unit(self.model, unit, self.study, self.attack)

    def where(self) -> str:
        return f"{self.model.device}, {torch.get_num_threads()} threads, pid {os.getpid()}"


def connect(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    object_store_memory: int = OBJECT_STORE_MEMORY,
    runtime_env: dict[str, Any] | None = None,
) -> bool:
    """Join the running Ray session, the cluster at `address`, or start a local one; True when this call started
    or joined it (so the sweep shuts it down at the end), False when Ray was already initialised by the caller."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    if address is None:
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        env = runtime_env or {"env_vars": {"PYTHONPATH": path}}  # workers import this checkout from any cwd
        ray.init(
            num_cpus=num_cpus or os.cpu_count(),
            object_store_memory=object_store_memory,
            include_dashboard=False,
            runtime_env=env,
            log_to_driver=False,  # worker errors come back as exceptions; keep the progress bar clean
        )
    else:
        env = runtime_env or {"working_dir": str(ROOT), "excludes": REMOTE_EXCLUDES}
        ray.init(address=address, runtime_env=env, log_to_driver=False)
    return True


def run_sweep_ray(
    model: ModelSource,
    image_set: ImageSet,
    study: Study,
    store: SweepStore,
    *,
    address: str | None = None,
    workers: int | None = None,
    threads: int = 1,
    chunk: int | None = None,
    num_cpus: int | None = None,
    object_store_memory: int = OBJECT_STORE_MEMORY,
    runtime_env: dict[str, Any] | None = None,
) -> Iterator[Progress]:
    """experiments.study.sweep.run_sweep on Ray actors: the same Progress stream, rows, store and resume.

    model: registry name or picklable factory (each worker builds its own; the driver builds one to screen).
    address: an existing cluster ("auto", "HOST:6379", "ray://HOST:10001"); None starts a local one with
    `num_cpus` (default: all) and `object_store_memory`, unless Ray is already initialised in this process.
    workers: actors (default: one per GPU when the cluster has GPUs, else cluster CPUs // threads), each with
    `threads` torch threads (CPU) or one GPU. chunk: pairs per unit (default: 128 on GPUs, 8 on CPUs).
    """
    if threads < 1 or (workers is not None and workers < 1):
        raise AttackError(f"workers and threads must be at least 1, got workers={workers}, threads={threads}")
    ray = import_ray()
    from ray.util import ActorPool

    driver_model = build_model(model)
    pairs, done = yield from prepare_sweep(driver_model, image_set, study, store)
    count = sum((image_id, t) in done for image_id, _, t in pairs)
    if count == len(pairs):
        return
    started = connect(address, num_cpus=num_cpus, object_store_memory=object_store_memory, runtime_env=runtime_env)
    actors: list[Any] = []
    try:
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
        n = workers or (gpus if gpus else max(1, cpus // threads))
        if gpus and n > gpus:
            raise AttackError(f"{n} workers need {n} GPUs; the cluster has {gpus}")
        if not gpus and n * threads > cpus:
            raise AttackError(f"{n} workers x {threads} threads need {n * threads} CPUs; the cluster has {cpus}")
        options = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": threads}
        actor_class = ray.remote(SweepWorker)
        actors = [actor_class.options(**options).remote(model, study, threads) for _ in range(n)]
        pool = ActorPool(actors)
        size = chunk or default_chunk(torch.device("cuda" if gpus else "cpu"))
        units = iter_units(driver_model, image_set, pairs, size, done)
        for unit in _take(units, IN_FLIGHT_PER_WORKER * n):
            pool.submit(lambda actor, u: actor.run.remote(u), unit)
        while pool.has_next():
            try:
                rows = pool.get_next_unordered()
            except ray.exceptions.RayError as err:
                raise AttackError(f"a Ray worker failed: {_last_line(err)}") from err
            store.add_rows(rows)
            count += len(rows)
            following = next(units, None)
            if following is not None:
                pool.submit(lambda actor, u: actor.run.remote(u), following)
            yield Progress("attack", count, len(pairs), rows)
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()


def _take(units: Iterator[Unit], n: int) -> list[Unit]:
    out = []
    for unit in units:
        out.append(unit)
        if len(out) == n:
            break
    return out


def _last_line(err: BaseException) -> str:
    """A worker's exception arrives with its remote traceback; the user gets its last line."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__
