"""Work shared by every session of the server process: the bounded model cache and the attack scheduler.

No Streamlit here: the pages reach these through ui.loaders (models) and the lab's view (runs). One of each per
process (`models()`, `scheduler()`), so thirty students share one copy of a model and one queue.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from serving.models import ModelCache, NoRoom
from serving.scheduler import RunRequest, SampleStep, Scheduler, Ticket, Waiting

__all__ = [
    "ModelCache",
    "NoRoom",
    "RunRequest",
    "SampleStep",
    "Scheduler",
    "Ticket",
    "Waiting",
    "models",
    "page_work",
    "scheduler",
]

#: Runs per batch (ADVLAB_MAX_BATCH): bounds the memory of the attack work whatever the number of students.
MAX_BATCH = int(os.environ.get("ADVLAB_MAX_BATCH", "8"))

_lock = threading.Lock()
_models: ModelCache | None = None
_scheduler: Scheduler | None = None


T = TypeVar("T")

#: Model work a page does itself (Grad-CAM, a verdict's check) runs on this one thread: one pass at a time in the
#: process, and its freed activations stay in one malloc arena instead of one per session's script thread (glibc
#: keeps freed pages per arena: thirty sessions' heatmaps grew the server by gigabytes).
_page_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="advlab-page-work")


def page_work(fn: Callable[..., T], *args: object) -> T:
    """Run `fn(*args)` on the process's page-work thread and return its result (its exception, raised here)."""
    return _page_thread.submit(fn, *args).result()


def _cap_malloc_arenas(arenas: int = 2) -> None:
    """glibc's M_ARENA_MAX: every thread made later shares these arenas (a no-op off glibc)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(-8, arenas)  # M_ARENA_MAX


_cap_malloc_arenas()


def models() -> ModelCache:
    """The process's model cache."""
    global _models
    with _lock:
        if _models is None:
            _models = ModelCache()
        return _models


def scheduler() -> Scheduler:
    """The process's attack scheduler: on the process's model cache, or with ADVLAB_BACKEND=ray on a Ray Serve
    deployment (serving.ray_serve; ADVLAB_RAY_ADDRESS names a running cluster, unset starts a local Ray)."""
    global _scheduler
    backend = os.environ.get("ADVLAB_BACKEND", "local")
    if backend not in ("local", "ray"):
        raise ValueError(f"ADVLAB_BACKEND must be 'local' or 'ray', not {backend!r}")
    cache = models()
    with _lock:
        if _scheduler is None and backend == "ray":
            from serving import ray_serve

            # On the page-work thread, which lives as long as the process: a local Ray's raylet dies with the thread
            # that started it (PR_SET_PDEATHSIG), and a session's script thread ends after every rerun.
            address = os.environ.get("ADVLAB_RAY_ADDRESS") or None
            handle = page_work(functools.partial(ray_serve.start, address=address, max_batch=MAX_BATCH))
            _scheduler = ray_serve.ServeScheduler(handle, max_batch=MAX_BATCH)
        elif _scheduler is None:
            _scheduler = Scheduler(cache.using, max_batch=MAX_BATCH)
        return _scheduler
