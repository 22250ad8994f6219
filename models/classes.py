"""ImageNet-1k category names and the one function that turns what a user typed into a class index."""

from __future__ import annotations

import difflib
import random

from torchvision.models import ResNet50_Weights

#: The 1000 ILSVRC-2012 category names in index order, as torchvision ships them (no download needed).
IMAGENET_CATEGORIES: tuple[str, ...] = tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])

_BY_NAME: dict[str, list[int]] = {}
for _i, _name in enumerate(IMAGENET_CATEGORIES):
    _BY_NAME.setdefault(_name.lower(), []).append(_i)


class UnknownClassError(ValueError):
    """A class name or index that does not name exactly one ImageNet class."""


def class_index(spec: str | int, categories: tuple[str, ...] = IMAGENET_CATEGORIES) -> int:
    """Resolve an index ("879", 879) or an exact, case-insensitive category name ("umbrella") to an index.

    One name occurs twice in torchvision's list ("cardigan": the dog 264 and the sweater 474); it must be given by
    index, and the error says so.
    """
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().lstrip("-").isdigit()):
        idx = int(spec)
        if not 0 <= idx < len(categories):
            raise UnknownClassError(f"class index {idx} is out of range 0..{len(categories) - 1}")
        return idx
    key = spec.strip().lower()
    hits = (
        _BY_NAME.get(key)
        if categories is IMAGENET_CATEGORIES
        else [i for i, c in enumerate(categories) if c.lower() == key]
    )
    if not hits:
        lowered = {c.lower(): c for c in categories}
        close = [c for c in categories if key and key in c.lower()][:3]
        close += [lowered[m] for m in difflib.get_close_matches(key, list(lowered), n=3, cutoff=0.6)]
        close = list(dict.fromkeys(close))[:5]
        hint = f"; did you mean: {', '.join(close)}" if close else ""
        raise UnknownClassError(f"unknown class name {spec!r}{hint}")
    if len(hits) > 1:
        raise UnknownClassError(
            f"class name {spec!r} is ambiguous (indices {', '.join(map(str, hits))}); give the index instead"
        )
    return hits[0]


def resolve_targets(
    spec: str | int, *, source: int, least_likely: int, num_classes: int = 1000, seed: int = 0
) -> list[int]:
    """Expand one --target value into class indices.

    Accepts an index, a name, 'least-likely', 'random' (one class), 'random:N' (N distinct classes) or 'all'
    (every class except the source). Random choices never include the source class and depend only on seed.
    """
    text = str(spec).strip().lower()
    others = [c for c in range(num_classes) if c != source]
    if text in ("least-likely", "least_likely", "ll"):
        return [least_likely]
    if text == "all":
        return others
    if text == "random" or text.startswith("random:"):
        count_text = text.partition(":")[2] or "1"
        if not count_text.isdigit() or not 1 <= int(count_text) <= len(others):
            raise UnknownClassError(f"random:N needs 1 <= N <= {len(others)}, got {spec!r}")
        return sorted(random.Random(seed).sample(others, int(count_text)))
    return [class_index(spec)]
