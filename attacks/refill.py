"""A gradient attack over a stream of pairs in a batch that stays full: a slot whose pair ends takes the next pair.

Why: the study attacks thousands of (image, target) pairs in batches, and a batch shrinks as its pairs stop early
(relabel stops most pairs within a few steps, a few run to the cap), so a GPU spends most of a unit's steps on a
handful of stragglers: one H100 gave 241 pairs/s where its step rate at batch 512 allows ~500. Refilled, every step
runs a full batch. Each pair's run is exactly its run alone (a GradientAttack is per sample: its own step counter,
state, random start and stop), so the rows do not change; tests/test_refill.py checks that against run_batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from attacks.base import AttackError, Goal, GradientAttack, loss_and_grad, sample_generators
from attacks.metrics import quantize


@dataclass(frozen=True)
class Pair:
    """One run to make: its 8-bit image (3, H, W) in [0, 1], goal and seed; `tag` comes back with its result."""

    tag: Any
    x0: Tensor  # (3, H, W)
    source: int
    target: int
    seed: int


@dataclass(frozen=True)
class Ended:
    """A pair's run at its end: the image as saved (3, H, W) on the 8-bit grid and the step at which it stopped."""

    tag: Any
    x_adv: Tensor  # (3, H, W)
    stopped_at: int


def run_refilled(
    attack: GradientAttack,
    model: nn.Module,
    pairs: Iterable[Pair],
    *,
    size: int,
    confidence: float,
    attacked: nn.Module | None = None,
) -> Iterator[Ended]:
    """Run `attack` on every pair, `size` at a time, refilling each slot as its pair ends; yields pairs as they end.

    The gradient flows through `attacked` (default `model`); `model` judges success on the 8-bit image, as in
    attacks.runner.drive. Order of results: the order pairs end, not the order given."""
    if not isinstance(attack, GradientAttack):
        raise AttackError(f"attack {attack.name} is not a per-sample gradient attack: a batch of it cannot be refilled")
    if size < 1:
        raise AttackError(f"a refilled batch needs at least 1 slot, not {size}")
    attack.check_targeted(True)
    through = model if attacked is None else attacked
    device = next(model.parameters()).device
    steps = attack.total_steps()
    feed = iter(pairs)
    tags: list[Any] = [None] * size
    x0 = xi = torch.empty(0)
    src = tgt = step = torch.empty(0, dtype=torch.long)
    state: dict[str, Tensor] = {}
    busy = torch.zeros(size, dtype=torch.bool, device=device)  # (S,) slots holding a pair

    def load(free: list[int]) -> None:
        """Put the next pairs into the free slots (a pair's start, state and step 0: as if it ran alone)."""
        nonlocal x0, xi, src, tgt, step, state
        got = []
        for j in free:
            pair = next(feed, None)
            if pair is None:
                break
            got.append((j, pair))
        if not got:
            return
        new_x0 = torch.stack([p.x0 for _, p in got]).to(device)  # (M, 3, H, W)
        new_xi = attack.start(new_x0, sample_generators([p.seed for _, p in got], len(got)))  # (M, 3, H, W)
        new_state = attack.init_state(new_x0)
        if x0.numel() == 0:  # the first pairs fix the slots' shapes
            shape = (size, *new_x0.shape[1:])
            x0, xi = torch.zeros(shape, device=device), torch.zeros(shape, device=device)  # (S, 3, H, W)
            src = torch.zeros(size, dtype=torch.long, device=device)  # (S,)
            tgt, step = src.clone(), src.clone()  # (S,) each
            state = {k: torch.zeros((size, *v.shape[1:]), dtype=v.dtype, device=device) for k, v in new_state.items()}
        ids = torch.tensor([j for j, _ in got], device=device)  # (M,)
        x0[ids], xi[ids] = new_x0, new_xi
        src[ids] = torch.tensor([p.source for _, p in got], device=device)
        tgt[ids] = torch.tensor([p.target for _, p in got], device=device)
        step[ids] = 0
        for k, v in new_state.items():
            state[k][ids] = v
        busy[ids] = True
        for j, p in got:
            tags[j] = p.tag

    load(list(range(size)))
    while bool(busy.any()):
        act = busy.nonzero()[:, 0]  # (A,)
        goal = Goal(src[act], tgt[act], confidence)
        last = step[act] >= steps  # (A,) pairs at their final step: only checked, as in GradientAttack.run
        logits, loss, grad = loss_and_grad(through, xi[act], goal, quantized=attack.quantize)
        probs = _judged(model, through, xi[act], logits, attack.quantize).softmax(dim=1)  # (A, K)
        met = goal.met(probs)  # (A,)
        stop = (met if attack.early_stop else torch.zeros_like(met)) | last
        shown = quantize(xi[act])  # (A, 3, H, W) what each pair shows now
        cont = (~stop).nonzero()[:, 0]
        if len(cont):
            assert grad is not None
            stop[cont[attack.advance(xi, x0, state, act[cont], grad[cont])]] = True
        ended = act[stop]
        for k in stop.nonzero()[:, 0].tolist():
            j = int(act[k])
            yield Ended(tags[j], shown[k].cpu(), int(step[j]))
        busy[ended] = False
        step[act[~stop]] += 1
        load(ended.tolist())


def _judged(model: nn.Module, through: nn.Module, x: Tensor, logits: Tensor, quantized: bool) -> Tensor:
    """The judge's logits on the 8-bit image, reusing the attacked forward when judge and attacked are one (as
    SampleLoop.judge does)."""
    if quantized and through is model:
        return logits.detach()
    with torch.no_grad():
        return model(quantize(x.detach()))  # (A, K)
