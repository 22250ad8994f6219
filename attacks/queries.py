"""The black-box query interface, and the loop every black-box attack shares.

Why: a score-based or decision-based attack must never see logits, gradients or weights. `Oracle` answers a batch
of images with probabilities (score-based) or the top-1 label only (decision-based), counts every image it is asked
about per sample, and holds the model only inside a closure (no attribute reaches it). The algorithms
(`BlackBoxAttack.search`) receive the oracle and the images, nothing else; `BlackBoxAttack.run`, the harness, turns
what they report into Steps judged on the 8-bit image like every other attack.

Python cannot truly hide an object (gc, frame and closure introspection reach anything), so this is a discipline
the code keeps and tests/test_blackbox.py checks (outputs carry no gradient, walking the oracle's attributes
finds no module, parameter or logits), not a sandbox.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
from torch import Tensor, nn

from attacks.base import Attack, AttackError, Goal, SampleLoop, Step, sample_generators
from attacks.metrics import quantize

#: Images per forward pass inside the oracle: bounds memory when an attack asks about many probes at once.
ORACLE_CHUNK = 64


def _asker(model: nn.Module, quantized: bool) -> Callable[[Tensor], Tensor]:
    """A function from images (M,3,H,W) to probabilities (M,K), holding `model` in its closure only."""

    def ask(x: Tensor) -> Tensor:
        with torch.no_grad():
            x = quantize(x) if quantized else x.clamp(0.0, 1.0)  # what is sent is an 8-bit image file
            out = [model(x[i : i + ORACLE_CHUNK]).softmax(dim=1) for i in range(0, len(x), ORACLE_CHUNK)]
            return torch.cat(out).detach()  # (M, K)

    return ask


class Oracle:
    """What a black-box attacker may do: ask about a batch of images, each on behalf of one of N samples.

    `probs(x, ids)` -> (M,K) probabilities (score-based only); `labels(x, ids)` -> (M,) top-1 class, or -1 where
    the top class's probability is below `threshold` (decision-based: an API that answers only when it is sure;
    threshold 0 = the bare top-1 label). ids (M,) long: the sample each image is asked for, so `counts` (N,) holds
    every sample's queries. A query past a sample's `budget` is refused (AttackError): the attack must stop first.
    """

    __slots__ = ("_ask", "counts", "budget", "threshold", "labels_only")

    def __init__(
        self,
        model: nn.Module,
        n: int,
        *,
        budget: int,
        labels_only: bool = False,
        threshold: float = 0.0,
        quantized: bool = True,
        device: torch.device | None = None,
    ) -> None:
        self._ask = _asker(model, quantized)
        self.counts = torch.zeros(n, dtype=torch.long, device=device)  # (N,) images queried per sample
        self.budget = int(budget)
        self.threshold = float(threshold)
        self.labels_only = bool(labels_only)

    def remaining(self, ids: Tensor) -> Tensor:
        """(A,) queries each sample `ids` may still make."""
        return self.budget - self.counts[ids]

    def _count(self, x: Tensor, ids: Tensor) -> None:
        if x.shape[0] != ids.shape[0]:
            raise AttackError(f"{x.shape[0]} images queried for {ids.shape[0]} sample ids")
        added = torch.zeros_like(self.counts).index_add_(0, ids, torch.ones_like(ids))  # (N,)
        if bool((self.counts + added > self.budget).any()):
            raise AttackError(f"query budget of {self.budget} per image exceeded")
        self.counts += added

    def probs(self, x: Tensor, ids: Tensor) -> Tensor:
        """(M,3,H,W) images in [0,1], (M,) sample ids -> (M,K) probabilities of their 8-bit roundings."""
        if self.labels_only:
            raise AttackError("a decision-based attacker sees only the top-1 label")
        self._count(x, ids)
        return self._ask(x)

    def labels(self, x: Tensor, ids: Tensor) -> Tensor:
        """(M,3,H,W), (M,) -> (M,) top-1 class, -1 where its probability is below `threshold`."""
        self._count(x, ids)
        p = self._ask(x)  # (M, K), never leaves this method
        top_p, top = p.max(dim=1)  # (M,), (M,)
        return torch.where(top_p >= self.threshold, top, torch.full_like(top, -1))


def goal_reached(labels: Tensor, goal: Goal) -> Tensor:
    """(M,) labels from `Oracle.labels` (-1: unsure) and the goal of their samples -> (M,) adversarial?

    With the oracle's threshold at the goal's confidence this is exactly `Goal.met` on the image's probabilities.
    """
    sure = labels >= 0
    return sure & (labels != goal.source if goal.target is None else labels == goal.target)


def log_margin(probs: Tensor, goal: Goal) -> Tensor:
    """Square Attack's margin loss from probabilities: (N,K) -> (N,), < 0 once the goal class wins.

    log p differs from the logits by one constant per image, so this is the paper's logit margin exactly:
    untargeted log p_s - max_{j!=s} log p_j, targeted max_{j!=t} log p_j - log p_t.
    """
    logp = probs.clamp_min(1e-30).log()  # (N, K)
    cls = goal.source if goal.target is None else goal.target
    own = logp.gather(1, cls[:, None])[:, 0]  # (N,)
    other = logp.scatter(1, cls[:, None], float("-inf")).amax(dim=1)  # (N,)
    return own - other if goal.target is None else other - own


@dataclass
class Report:
    """What a search reports at one iteration, for the samples `ids` (A,) it worked on.

    x: (A,3,H,W) the image each sample shows now (its best so far); probs: (A,K) the oracle's answer for exactly
    that image when the attack has it (score-based), else None and the harness asks the judge; loss: (A,);
    exhausted: (A,) True where the sample cannot go on (budget spent, nothing left to try).
    """

    index: int
    ids: Tensor
    x: Tensor
    probs: Tensor | None
    loss: Tensor
    exhausted: Tensor


class BlackBoxAttack(Attack):
    """A query-based attack: `search` sees only an Oracle; `run` judges and yields Steps with the query counts.

    Every sample stops at its first success on the 8-bit image (early_stop) or when its query budget (the
    `queries` parameter) is spent; early_stop=False spends the whole budget.
    """

    decision_based: ClassVar[bool] = False

    def budget(self) -> int:
        return int(self.hparams["queries"])

    @abstractmethod
    def search(self, oracle: Oracle, x0: Tensor, goal: Goal, generators: list[torch.Generator], done: Tensor):
        """Yield a Report per iteration. `done` (N,) is updated by the harness after each Report: a sample done
        there must not be queried again. Only `oracle` may be asked about images."""

    def run(
        self, model: nn.Module, x: Tensor, goal: Goal, *, seed: int | Sequence[int] = 0, judge: nn.Module | None = None
    ) -> Iterator[Step]:
        self.check_goal(goal)
        loop = SampleLoop(model, x, judge=judge, quantized=self.quantize)
        n = x.shape[0]
        oracle = Oracle(
            model,
            n,
            budget=self.budget(),
            labels_only=self.decision_based,
            threshold=goal.confidence,
            quantized=self.quantize,
            device=x.device,
        )
        own_judge = judge is None or judge is model  # the oracle's answer is the judge's: no extra forward
        gens = sample_generators(seed, n)
        for rep in self.search(oracle, loop.x0, goal, gens, loop.done):
            sub = goal.subset(rep.ids)
            if rep.probs is not None and own_judge and self.quantize:
                probs = rep.probs  # (A, K)
            else:
                probs = loop.judge(rep.x).softmax(dim=1)  # (A, K) the harness looks; not a query
            met = sub.met(probs)  # (A,)
            loop.record(rep.ids, rep.x, probs, rep.loss, met)
            stop = rep.exhausted | met if self.early_stop else rep.exhausted.clone()
            loop.finish(rep.ids[stop])
            yield replace(loop.step(rep.index), queries=oracle.counts.clone())
            if loop.all_done:
                return
        if not loop.all_done:
            raise AttackError(f"{self.name}: the search ended with samples still running")
