"""Work shared by every session of the server process: the bounded model cache and the attack scheduler.

No Streamlit here: the pages reach these through ui.loaders (models) and the lab's view (runs). One of each per
process (`models()`, `scheduler()`), so thirty students share one copy of a model and one queue.
"""

from __future__ import annotations

import os
import threading

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
#: Model work a page does itself (Grad-CAM, a verdict's check): one pass at a time in the process, so thirty
#: sessions drawing their heatmaps at once cost one pass's activations, not thirty.
page_work = threading.Lock()
_models: ModelCache | None = None
_scheduler: Scheduler | None = None


def models() -> ModelCache:
    """The process's model cache."""
    global _models
    with _lock:
        if _models is None:
            _models = ModelCache()
        return _models


def scheduler() -> Scheduler:
    """The process's attack scheduler, on the process's model cache."""
    global _scheduler
    cache = models()
    with _lock:
        if _scheduler is None:
            _scheduler = Scheduler(cache.using, max_batch=MAX_BATCH)
        return _scheduler
