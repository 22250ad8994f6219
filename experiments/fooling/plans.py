"""The Fooling images page's work as a generator over the chosen classes; each finished image kept at once.
No Streamlit here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from attacks import Step
from experiments.fooling.synthesis import Progress, evolve, start_image, synthesize_gradient, visualize_class
from models import Classifier

OnStep = Callable[[Step], None]


def fooling_images(
    mode: str, model: Classifier, targets: Sequence[int], *, init: str, seed: int, params: dict[str, Any]
) -> Iterator[tuple[str, Progress]]:
    """The Fooling images page's work: (slot, Progress) pairs. grow / gallery: relabelling from the start image
    ("main"); evolve: the black-box search ("main"); visualize: the unregularised fooling image ("fool"), then the
    regularised class visualisation ("vis")."""
    start = start_image(init, model.input_size, seed=seed)
    if mode == "evolve":
        keys = ("confidence", "generations", "population", "encoding", "resolution")
        for p in evolve(model, targets[0], seed=seed, start=start, **{k: params[k] for k in keys}):
            yield "main", p
        return
    grow = {k: params[k] for k in ("confidence", "steps", "step_size")}
    for p in synthesize_gradient(model, targets, seed=seed, start=start, **grow):
        yield ("fool" if mode == "visualize" else "main"), p
    if mode == "visualize":
        vis = {"steps": params["vis_steps"], **{k: params[k] for k in ("jitter", "blur_sigma", "tv_weight")}}
        for p in visualize_class(model, targets, init=init, seed=seed, **vis):
            yield "vis", p
