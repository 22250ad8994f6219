"""The susceptibility study's local engine: every chosen image toward every target class, resumable.

A study is (model, attack and its parameters, image set and selection, targets `all` | `random:N` | a list,
distortion cap). Robinson & Graham (2015, sec. 3.1) relabel 10 images per class toward all 999 other classes with
the RMS distortion capped at 0.01 and succeed for 98.7% of pairs; seed 000 attacks every validation image toward
every class and reads per-class "modify" and "mimic" rates from the same kind of rows.

Work is cut into units: consecutive blocks of (image, target) pairs, `chunk` at a time (8 on a CPU, larger on
CUDA; attacks.runner.default_chunk), so many targets of one image (and the tails of neighbouring images) go through
one forward/backward, and the attack drops each sample from the batch at its first 8-bit success. `run_unit` is a
pure function of (model, unit, study), so another backend (Ray) can run units on workers and stream the rows back
to the one process that writes the database; `run_sweep` is the local loop, which for a gradient attack keeps one
batch full across units (`run_units_refilled`: a slot whose pair ends takes the next pair) and gets the same rows
as unit by unit. The units are planned from the full
list of pairs, not from what is left, so a resumed study batches exactly as an uninterrupted one and gets the same
rows; a unit is committed in one transaction, so a kill loses at most the units in flight.
"""

from __future__ import annotations

import random
import time
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from attacks import DEFAULT_ATTACK, Attack, AttackError, Goal, make_attack
from attacks.base import GradientAttack
from attacks.metrics import linf, rms
from attacks.refill import Ended, Pair, run_refilled
from attacks.runner import default_chunk, run_batch, sample_seed
from experiments.common import check_number
from experiments.study.store import Row, SweepStore
from images.imagesets import ImageSet, Screened, Selection, choose, load_input, ordered, screen
from models import class_index, pil_to_tensor


@dataclass(frozen=True)
class Study:
    """Everything that decides a study's rows; two runs of the same Study fill the same database."""

    model: str
    image_set: str
    attack: str = DEFAULT_ATTACK
    attack_params: dict[str, float] = field(default_factory=dict)
    selection: Selection = field(default_factory=Selection)
    targets: str = "all"
    max_rms: float = 0.01  # Robinson & Graham's cap
    seed: int = 0
    confidence: float = 0.0  # p(target) the 8-bit image must also reach; 0: being top-1 is enough (the seeds)

    def __post_init__(self) -> None:
        check_number("max_rms", self.max_rms, 1e-6, 1.0)
        check_number("confidence", self.confidence, 0.0, 0.999)
        check_number("seed", self.seed, 0, 2**31 - 1, integer=True)
        self.make_attack()

    def make_attack(self) -> Attack:
        """The attack with the study's cap as its own budget when it has one (relabel's max_rms)."""
        params = dict(self.attack_params)
        attack = make_attack(self.attack, **params)
        if getattr(attack, "decision_based", False):
            raise AttackError(
                f"{self.attack} is decision-based: each pair would need a starting photo the model already labels as "
                "its target, which a sweep toward many classes does not have; attack one target with "
                f"`cli.py attack --attack {self.attack} --target CLASS`, or sweep a score-based attack (square, simba)"
            )
        if "max_rms" not in attack.hparams:
            return attack
        if "max_rms" in params and params["max_rms"] != self.max_rms:
            raise AttackError(f"attack max_rms {params['max_rms']:g} differs from the study's cap {self.max_rms:g}")
        return make_attack(self.attack, **{**params, "max_rms": self.max_rms})

    @property
    def criterion(self) -> str:
        return "top1" if self.confidence == 0 else f"top1,p>={self.confidence:g}"

    def params(self) -> dict[str, Any]:
        """What the database records (sweep_store.STUDY_FIELDS); attack parameters with their defaults filled in."""
        return {
            "model": self.model,
            "attack": self.attack,
            "attack_params": dict(self.make_attack().hparams),
            "image_set": self.image_set,
            "selection": self.selection.to_json(),
            "targets": self.targets,
            "max_rms": float(self.max_rms),
            "seed": self.seed,
            "criterion": self.criterion,
        }

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Study:
        """The Study a database holds (to resume it, or to recompute one of its rows)."""
        criterion = str(params["criterion"])
        confidence = float(criterion.partition("p>=")[2] or 0.0)
        return cls(
            model=params["model"],
            image_set=params["image_set"],
            attack=params["attack"],
            attack_params=dict(params["attack_params"]),
            selection=Selection(**params["selection"]),
            targets=params["targets"],
            max_rms=float(params["max_rms"]),
            seed=int(params["seed"]),
            confidence=confidence,
        )

    def target_classes(self, categories: Sequence[str]) -> tuple[int, ...]:
        """The study's target set over the model's classes; each image skips its own source class in it.

        `random:N` draws one fixed set of N classes from all of them (seeded), so every image is attacked toward the
        same classes and each of those gets a mimic rate from every source class.
        """
        k = len(categories)
        spec = self.targets.strip().lower()
        if spec == "all":
            return tuple(range(k))
        if spec.startswith("random:"):
            count = spec.partition(":")[2]
            if not count.isdigit() or not 1 <= int(count) <= k:
                raise AttackError(f"random:N needs 1 <= N <= {k}, got {self.targets!r}")
            return tuple(sorted(random.Random(self.seed).sample(range(k), int(count))))
        names = [part.strip() for part in self.targets.split(",") if part.strip()]
        if not names:
            raise AttackError("targets must be all, random:N or a comma-separated list of classes")
        return tuple(dict.fromkeys(class_index(name, tuple(categories)) for name in names))


@dataclass(frozen=True)
class Unit:
    """A block of (image id, source class, target class) pairs attacked as one batch, with the 8-bit model inputs
    of its images, so a worker needs nothing else (no file access)."""

    index: int
    pairs: tuple[tuple[str, int, int], ...]
    pixels: dict[str, np.ndarray]  # image id -> (H, W, 3) uint8


@dataclass
class Progress:
    """What a sweep reports after each piece of work: stage 'screen' (classifying images to choose them), 'plan'
    (once: message says what was chosen and left out), then 'attack' after each committed unit."""

    stage: str
    done: int
    total: int
    rows: list[Row] = field(default_factory=list)
    message: str = ""


def run_unit(
    model: nn.Module, unit: Unit, study: Study, attack: Attack | None = None, *, attacked: nn.Module | None = None
) -> list[Row]:
    """Attack every pair of the unit in one batch and verify each result on its 8-bit image with the plain model.

    `attacked`: a faster module the gradient flows through (bf16 autocast, compiled) while the plain float32 `model`
    judges every step and the final 8-bit image, so a speed-up can change how fast rows come, never a verdict's rule.
    """
    attack = attack or study.make_attack()
    device = model.device
    x0 = unit_inputs(unit, device)  # (N, 3, H, W)
    source = torch.tensor([s for _, s, _ in unit.pairs], device=device)  # (N,)
    target = torch.tensor([t for _, _, t in unit.pairs], device=device)  # (N,)
    start = time.perf_counter()
    goal = Goal(source, target, study.confidence)
    seeds = [sample_seed(study.seed, image_id, t) for image_id, _, t in unit.pairs]  # a row never depends on its unit
    end = run_batch(attack, model, x0, goal, seeds=seeds, attacked=attacked)
    queries = None if end.last.queries is None else end.last.queries.tolist()  # (N,) black-box attacks only
    return verify_rows(model, unit, study, x0, end.x_adv, end.stopped_at.tolist(), queries, start)


def unit_inputs(unit: Unit, device: torch.device) -> Tensor:
    """(N, 3, H, W) the 8-bit model inputs of the unit's pairs, in order."""
    return torch.cat([pil_to_tensor(Image.fromarray(unit.pixels[i])) for i, _, _ in unit.pairs]).to(device)


def verify_rows(
    model: nn.Module,
    unit: Unit,
    study: Study,
    x0: Tensor,
    x_adv: Tensor,
    stopped_at: Sequence[int],
    queries: Sequence[int] | None,
    start: float,
) -> list[Row]:
    """The unit's rows: each final 8-bit image x_adv (N, 3, H, W) judged by the plain model against the one rule
    (Goal.met) within the study's RMS cap. `start`: perf_counter() when the unit's work began (a row's seconds)."""
    device = model.device
    source = torch.tensor([s for _, s, _ in unit.pairs], device=device)  # (N,)
    target = torch.tensor([t for _, _, t in unit.pairs], device=device)  # (N,)
    goal = Goal(source, target, study.confidence)
    with torch.inference_mode():
        probs = model(x_adv).softmax(dim=1)  # (N, K) the plain model on the 8-bit images
    top = probs.argmax(dim=1)  # (N,)
    p_target = probs.gather(1, target[:, None])[:, 0]  # (N,)
    distortion, largest = rms(x_adv, x0), linf(x_adv, x0)  # (N,) each
    success = goal.met(probs) & (distortion <= study.max_rms)  # (N,) the one rule (Goal.met) within the cap
    seconds = (time.perf_counter() - start) / len(unit.pairs)
    return [
        Row(
            image_id=image_id,
            source=s,
            target=t,
            success=bool(success[j]),
            iterations=int(stopped_at[j]),
            rms=float(distortion[j]),
            linf=float(largest[j]),
            p_target=float(p_target[j]),
            final_class=int(top[j]),
            seconds=seconds,
            queries=None if queries is None else int(queries[j]),
        )
        for j, (image_id, s, t) in enumerate(unit.pairs)
    ]


def run_units_refilled(
    model: nn.Module, units: Iterable[Unit], study: Study, attack: GradientAttack, *, size: int
) -> Iterator[tuple[Unit, list[Row]]]:
    """The units' pairs through one batch of `size` slots refilled as pairs end (attacks.refill), so the batch
    stays full instead of shrinking to a unit's stragglers; each unit's rows, verified as run_unit's, as soon as its
    last pair ends (units may finish out of order). Every row equals run_unit's: a pair's run is its run alone."""
    pending: dict[int, tuple[Unit, torch.Tensor, dict[int, Ended]]] = {}  # the unit, its inputs, its pairs ended
    began: dict[int, float] = {}

    def feed() -> Iterator[Pair]:
        for unit in units:
            x0 = unit_inputs(unit, torch.device("cpu"))  # (N, 3, H, W), made once: the verdicts reuse it
            pending[unit.index] = (unit, x0, {})
            began[unit.index] = time.perf_counter()
            for j, (image_id, s, t) in enumerate(unit.pairs):
                yield Pair((unit.index, j), x0[j], s, t, sample_seed(study.seed, image_id, t))

    for ended in run_refilled(attack, model, feed(), size=size, confidence=study.confidence):
        index, j = ended.tag
        unit, x0, got = pending[index]
        got[j] = ended
        if len(got) < len(unit.pairs):
            continue
        del pending[index]
        order = [got[j] for j in range(len(unit.pairs))]
        x_adv = torch.stack([e.x_adv for e in order]).to(model.device)  # (N, 3, H, W)
        rows = verify_rows(
            model, unit, study, x0.to(model.device), x_adv, [e.stopped_at for e in order], None, began.pop(index)
        )
        yield unit, rows


def plan_pairs(chosen: Sequence[Screened], targets: Sequence[int]) -> list[tuple[str, int, int]]:
    """Every (image id, source, target) of the study in order; an image is never attacked toward its own class, nor
    (a --keep-wrong image) toward the class the model already gives it: that pair would count as a success at step 0
    with no change at all."""
    return [
        (c.image_id, c.source, t)
        for c in chosen
        if c.source is not None
        for t in targets
        if t != c.source and t != c.predicted
    ]


def iter_units(
    model: nn.Module,
    image_set: ImageSet,
    pairs: Sequence[tuple[str, int, int]],
    chunk: int,
    done: set[tuple[str, int]] | None = None,
) -> Iterator[Unit]:
    """Units of `chunk` consecutive pairs, leaving out pairs in `done`; images are loaded as their units come."""
    done = done or set()
    by_id = {item.id: item for item in image_set.items}
    cache: dict[str, np.ndarray] = {}
    for index, lo in enumerate(range(0, len(pairs), chunk)):
        todo = tuple(p for p in pairs[lo : lo + chunk] if (p[0], p[2]) not in done)
        if not todo:
            continue
        needed = dict.fromkeys(p[0] for p in todo)
        cache = {i: cache[i] if i in cache else load_input(image_set, by_id[i], model) for i in needed}
        yield Unit(index, todo, cache)


def prepare_sweep(
    model: nn.Module, image_set: ImageSet, study: Study, store: SweepStore
) -> Generator[Progress, None, tuple[list[tuple[str, int, int]], set[tuple[str, int]]]]:
    """Screen and choose the images (kept in the store), plan every pair and yield 'screen' then 'plan' progress;
    returns (pairs, done pairs). Shared by every engine, so they all attack the same pairs in the same units."""
    if getattr(model, "name", None) != study.model:
        raise AttackError(f"the study is of model {study.model}, not {getattr(model, 'name', type(model).__name__)}")
    known = store.screened()
    unreadable = [Screened(path, None, None, reason) for path, reason in image_set.skipped if path not in known]
    if unreadable:
        store.add_screened(unreadable)
        known.update({s.image_id: s for s in unreadable})
    items = ordered(image_set, study.selection)
    while True:
        chosen, to_screen = choose(items, known, study.selection)
        if not to_screen:
            break
        for lo in range(0, len(to_screen), 64):
            facts = screen(model, image_set, to_screen[lo : lo + 64])
            store.add_screened(facts)
            known.update({f.image_id: f for f in facts})
            yield Progress("screen", min(lo + 64, len(to_screen)), len(to_screen))

    pairs = plan_pairs(chosen, study.target_classes(model.categories))
    done = store.done_pairs()
    count = sum((image_id, t) in done for image_id, _, t in pairs)
    summary = selection_summary(image_set, known, chosen, study.selection.drop_wrong)
    yield Progress("plan", count, len(pairs), message=summary)
    return pairs, done


def run_sweep(
    model: nn.Module,
    image_set: ImageSet,
    study: Study,
    store: SweepStore,
    *,
    chunk: int | None = None,
    refill: bool = True,
) -> Iterator[Progress]:
    """Screen and choose the images, then attack every pair not yet in the store, committing unit by unit.

    refill (gradient attacks): one batch of `chunk` slots refilled as pairs end, across units (run_units_refilled),
    instead of one batch per unit that shrinks as its pairs stop; the same rows either way.

    Closing the generator (Stop, Ctrl-C) or killing the process keeps every committed unit; running the same study
    on the same store again continues where it stopped. experiments.study.ray_engine.run_sweep_ray is the same on Ray.
    """
    pairs, done = yield from prepare_sweep(model, image_set, study, store)
    count = sum((image_id, t) in done for image_id, _, t in pairs)
    attack = study.make_attack()
    size = chunk or default_chunk(model.device)
    units = iter_units(model, image_set, pairs, size, done)
    if refill and isinstance(attack, GradientAttack):  # one batch kept full across units
        results = run_units_refilled(model, units, study, attack, size=size)
    else:
        results = ((unit, run_unit(model, unit, study, attack)) for unit in units)
    for _, rows in results:
        store.add_rows(rows)
        count += len(rows)
        yield Progress("attack", count, len(pairs), rows)


def selection_summary(
    image_set: ImageSet, screened: dict[str, Screened], chosen: Sequence[Screened], drop_wrong: bool = True
) -> str:
    """One line: how many images the study uses, and how many it left out (the model's mistakes, unreadable)."""
    ids = {item.id for item in image_set.items} | {path for path, _ in image_set.skipped}
    facts = [f for i, f in screened.items() if i in ids]
    wrong = sum(f.wrong for f in facts) if drop_wrong else 0
    unreadable = sum(f.predicted is None for f in facts)
    return (
        f"{len(chosen)} images chosen from {image_set.name}; left out {wrong} that the model already gets wrong "
        f"and {unreadable} unreadable (of {len(facts)} screened)"
    )
