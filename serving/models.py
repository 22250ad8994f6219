"""The process's classifiers, bounded by bytes: one copy of each model for every session, the default one pinned,
the least recently used one that no run holds evicted first, and a model that cannot fit refused with one line.

Why: an unbounded cache kept every model anyone ever picked (VGG-16 alone is ~530 MB of weights, ViT-B/16 ~330 MB)
until a Cloud container (0.7 to 2.7 GB) was killed, which ends every student's session at once.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from torch import nn

from models import OFFLINE_MODELS, Classifier, load_model

#: Default budget for model weights, MiB (ADVLAB_MODEL_BUDGET_MB): the three offline models need ~70 MB together.
DEFAULT_BUDGET_MB = float(os.environ.get("ADVLAB_MODEL_BUDGET_MB", "700"))


class NoRoom(RuntimeError):
    """A model that does not fit the budget beside the models in use; str(err) is the page's one line."""


def model_bytes(model: nn.Module) -> int:
    """Bytes of a model's parameters and buffers (what it holds in memory, activations aside)."""
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


class ModelCache:
    """Loaded classifiers by name, at most `budget_bytes` of weights; `pinned` is never evicted."""

    def __init__(
        self,
        budget_bytes: int | None = None,
        *,
        pinned: tuple[str, ...] = (OFFLINE_MODELS[0],),
        loader: Callable[[str], Classifier] = load_model,
        size_of: Callable[[nn.Module], int] = model_bytes,
    ) -> None:
        self.budget = int(budget_bytes if budget_bytes is not None else DEFAULT_BUDGET_MB * 2**20)
        self.pinned = set(pinned)
        self._loader = loader
        self._size_of = size_of
        self._models: OrderedDict[str, tuple[Classifier, int]] = OrderedDict()
        self._in_use: dict[str, int] = {}
        self._lock = threading.RLock()

    @property
    def used(self) -> int:
        return sum(size for _, size in self._models.values())

    def names(self) -> list[str]:
        with self._lock:
            return list(self._models)

    def get(self, name: str) -> Classifier:
        """The shared classifier `name`, loading it (and evicting unused ones) if needed; raises NoRoom, or the
        loader's own UnknownModelError / WeightsUnavailable."""
        with self._lock:
            if name in self._models:
                self._models.move_to_end(name)
                return self._models[name][0]
            model = self._loader(name)
            size = self._size_of(model)
            self._make_room(name, size)
            self._models[name] = (model, size)
            return model

    @contextmanager
    def using(self, name: str) -> Iterator[Classifier]:
        """The model, held against eviction while a run uses it."""
        with self._lock:
            model = self.get(name)
            self._in_use[name] = self._in_use.get(name, 0) + 1
        try:
            yield model
        finally:
            with self._lock:
                self._in_use[name] -= 1

    def _make_room(self, name: str, size: int) -> None:
        evictable = [n for n in self._models if n not in self.pinned and not self._in_use.get(n)]  # oldest first
        free = self.budget - self.used
        for old in evictable:
            if free >= size:
                break
            free += self._models.pop(old)[1]
        if free < size:
            held = ", ".join(n for n in self._models) or "none"
            raise NoRoom(
                f"no room for {name} on this server right now: it needs {size / 2**20:.0f} MB of the "
                f"{self.budget / 2**20:.0f} MB model budget and {held} are in use (ADVLAB_MODEL_BUDGET_MB sets it); "
                "pick another model or try again later"
            )
