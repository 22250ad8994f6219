"""The Transfer page's work as a generator: the runs to make (one, or the classic comparison from every model),
each finished run kept in the matrix at once so a Stop keeps it. No Streamlit here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from PIL import Image

from attacks import Attack, Step, make_attack
from experiments.transfer.presets import COMPARE_RUNS, MATRIX_ROWS
from experiments.transfer.transfer import TransferResult, run_transfer
from models import Classifier, short_title

OnStep = Callable[[Step], None]


@dataclasses.dataclass(frozen=True)
class TransferPart:
    """One transfer run: its row label in the matrix, the attack (early_stop=False spends its whole budget), the
    attacked model(s) and the goal."""

    goal: str
    attack: Attack
    sources: tuple[str, ...]
    target: int | None
    diversity: float = 0.0


def comparison(
    models: Sequence[str], target: int, model_class: Callable[[str], int]
) -> tuple[list[TransferPart], list[str]]:
    """The classic comparison from each model: relabel toward `target`, then untargeted PGD. Returns the parts and
    the models relabel is skipped on (they already see the target in the image)."""
    parts, skipped = [], []
    for goal, name, params, full_budget in COMPARE_RUNS:
        for m in models:
            relabel = name == "relabel"
            if relabel and model_class(m) == target:
                skipped.append(m)
                continue
            attack = make_attack(name, early_stop=not full_budget, **params)
            parts.append(TransferPart(goal, attack, (m,), target if relabel else None))
    return parts, skipped


def matrix_row(result: TransferResult, goal: str) -> dict[str, Any]:
    """One row of the page's matrix: its label and, per evaluated model, (fooled, label, p(target))."""
    # the models' short titles ("Lite0 + ResNet-50"), as the table's: a class read the raw ids as jargon
    sources = " + ".join(map(short_title, result.source_models))
    sources += f" (input diversity {result.diversity:g})" if result.diversity else ""
    label = f"{goal} · {sources} · {result.outcome.verdict.rms_distortion:.3f} rms"
    return {"row": label, "cells": {r.model: (r.fooled, r.label, r.p_target) for r in result.rows}}


def transfer_runs(
    image: Image.Image,
    parts: Sequence[TransferPart],
    eval_models: Sequence[str],
    *,
    kept: dict[str, Any],
    history: list[dict[str, Any]],
    on_step: OnStep | None = None,
    loader: Callable[[str], Classifier],
    shown: Sequence[str] = (),
) -> Iterator[TransferResult]:
    """Run each part; every finished one goes into `history` (the matrix, at most MATRIX_ROWS). kept["last"], the
    page's top panel, is the latest run from the `shown` source models (the widgets' choice), so a comparison
    from every model does not leave another model's run under the widgets; any run when none is from them."""
    for i, part in enumerate(parts):
        done = "nothing had finished" if i == 0 else f"the {i} finished before it are in the matrix"
        where = f"run {i + 1} of {len(parts)} ({part.goal} from {' + '.join(part.sources)})"
        kept["stopped"] = f"Stopped during {where}; {done}."
        kept["running"] = f"{i + 1}/{len(parts)} · " if len(parts) > 1 else ""
        kept["part"] = part
        result = run_transfer(
            image,
            source_models=part.sources,
            eval_models=eval_models,
            attack=part.attack,
            target=part.target,
            diversity=part.diversity,
            on_step=on_step,
            loader=loader,
        )
        history.append(matrix_row(result, part.goal))
        del history[:-MATRIX_ROWS]
        last = kept.get("last")
        if tuple(part.sources) == tuple(shown) or last is None or tuple(last.source_models) != tuple(shown):
            kept["last"] = result
        yield result
    kept.pop("stopped", None)
