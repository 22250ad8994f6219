"""What every attack shares: the Step it yields, the goal it pursues, its parameters, and the iteration loop.

Structure after Foolbox 3: the base class owns the loop (gradient, direction, step, project, clamp, success);
an attack only says how to turn a gradient into a direction and how to project back into its budget.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attacks.metrics import quantize, quantize_ste, rms


@dataclass
class Step:
    """One iteration of an attack, for a batch of N images. Everything describes the 8-bit rounded image.

    index: iteration number; 0 is the starting point (original or random start).
    x_adv: (N,3,H,W) the current image exactly as it would be saved (rounded to 8 bits).
    probs: (N,K) class probabilities of x_adv.
    loss: (N,) the attack's loss at x_adv (lower is better for the attacker).
    distortion: (N,) RMS distortion of x_adv from the original (Robinson & Graham eq. 3).
    done: (N,) True once a sample stopped (success, budget exhausted, or last step).
    success: (N,) True where x_adv meets the goal (target reached / label changed, with confidence).
    queries: (N,) long, images each sample has asked the model about so far (black-box attacks, attacks/queries.py);
        None for white-box attacks, which count gradient steps instead.
    """

    index: int
    x_adv: Tensor
    probs: Tensor
    loss: Tensor
    distortion: Tensor
    done: Tensor
    success: Tensor
    queries: Tensor | None = None


#: The success confidence of the CLI (`attack`, `transfer`), the Transfer and Robustness pages and the Attack Lab:
#: the winning class must also have at least this probability on the saved 8-bit image. 0.9 is a verdict a class
#: can see; 0 is the paper's criterion (Robinson & Graham: the target is the top class), one flag away.
DEFAULT_CONFIDENCE = 0.9


@dataclass(frozen=True)
class Goal:
    """What counts as success, per sample. Targeted when `target` is given, otherwise untargeted.

    source: (N,) class of the original image; target: (N,) wanted class or None. confidence: the winning class
    must also have at least this probability. Targeted: the top class is the target and p(target) >= confidence.
    Untargeted: the top class is not the source and p(top class) >= confidence, so that a near tie flipped by a
    hair (chelsea: tiger cat 20% vs Egyptian cat 19%) does not count as an attack. 0 = being the top class is enough.
    """

    source: Tensor
    target: Tensor | None = None
    confidence: float = 0.0

    @property
    def targeted(self) -> bool:
        return self.target is not None

    def subset(self, idx: Tensor) -> Goal:
        return Goal(self.source[idx], None if self.target is None else self.target[idx], self.confidence)

    def met(self, probs: Tensor) -> Tensor:
        """(N,K) probabilities -> (N,) bool."""
        top_p, top = probs.max(dim=1)  # (N,), (N,)
        ok = top != self.source if self.target is None else top == self.target
        if self.confidence > 0:
            ok &= top_p >= self.confidence
        return ok

    def loss(self, logits: Tensor) -> Tensor:
        """Per-sample loss to minimise: CE to the target, or minus CE of the source class. (N,K) -> (N,)."""
        if self.target is not None:
            return F.cross_entropy(logits, self.target, reduction="none")
        return -F.cross_entropy(logits, self.source, reduction="none")


class AttackError(ValueError):
    """A hyperparameter out of range, or a goal the attack cannot pursue."""


@dataclass(frozen=True)
class Param:
    """One hyperparameter as the UI and CLI show it; values are in the unit given (pixel units 1/255 etc.).

    `validate` is the one range check of the project: attacks, experiments, links and the CLI all call it.
    """

    name: str
    default: float
    low: float
    high: float
    help: str = ""
    unit: str = ""
    integer: bool = False
    label: str = ""  # the page's label where the shared one (ui.pickers.PARAM_LABELS) would mislead

    def validate(self, value: Any) -> int | float:
        """The value as int/float when it is a number in [low, high]; anything else is one AttackError line."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise AttackError(f"{self.name} must be a number, got {value!r}")
        if self.integer and int(value) != value:
            raise AttackError(f"{self.name} must be a whole number, got {value}")
        if not self.low <= value <= self.high:
            raise AttackError(f"{self.name} must be between {self.low:g} and {self.high:g}, got {value:g}")
        return int(value) if self.integer else float(value)

    def parse(self, text: str) -> int | float:
        """`validate` for a value written as text (a link's query parameter, a form field)."""
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise AttackError(f"{text!r} is not a number") from None
        return self.validate(value)


#: The success confidence as a checked setting (the CLI's --confidence, the experiments' confidence argument).
CONFIDENCE = Param(
    "confidence",
    DEFAULT_CONFIDENCE,
    0.0,
    0.9999,
    "Success also needs this probability of the winning class on the 8-bit image (0: top-1, the paper's rule).",
)


class Attack(ABC):
    """An attack is a generator of Steps. Hyperparameters are keyword-only and checked on construction.

    early_stop (default True) ends a sample at its first success, judged on the 8-bit image: the smallest change
    that works. early_stop=False spends the whole budget, each attack in its own sensible way (see the attack's
    docstring): gradient attacks run every step; CW runs every step of every binary-search stage; DeepFool, a
    minimal-perturbation attack, still stops at the boundary.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    summary: ClassVar[str]
    params: ClassVar[tuple[Param, ...]]
    supports_targeted: ClassVar[bool] = True
    supports_untargeted: ClassVar[bool] = True
    #: True when a batch of N images is exactly N single runs (no batch-level coupling): the server's scheduler may
    #: then put several sessions' runs into one forward/backward (serving.scheduler)
    per_sample: ClassVar[bool] = False

    def __init__(self, **values: Any) -> None:
        unknown = sorted(set(values) - {p.name for p in self.params} - {"quantize", "early_stop"})
        if unknown:
            raise AttackError(f"attack {self.name} has no parameter {', '.join(unknown)}")
        #: Evaluate the model at the 8-bit rounded image (straight-through gradient). See metrics.quantize_ste.
        self.quantize: bool = bool(values.pop("quantize", True))
        #: Stop a sample at its first success (minimal distortion). False spends the whole budget (class docstring).
        self.early_stop: bool = bool(values.pop("early_stop", True))
        self.hparams: dict[str, float] = {}
        for p in self.params:
            value = values.get(p.name)
            self.hparams[p.name] = p.validate(p.default if value is None else value)

    @classmethod
    def param(cls, name: str) -> Param:
        """The hyperparameter called `name`; AttackError when the attack has none."""
        for p in cls.params:
            if p.name == name:
                return p
        raise AttackError(f"attack {cls.name} has no parameter {name}")

    def __getattr__(self, key: str) -> Any:
        hparams = self.__dict__.get("hparams", {})
        if key in hparams:
            return hparams[key]
        raise AttributeError(key)

    def check_targeted(self, targeted: bool) -> None:
        """Refuse a goal kind the attack cannot pursue, before any work is done."""
        if targeted and not self.supports_targeted:
            raise AttackError(f"attack {self.name} is untargeted only; leave the target out")
        if not targeted and not self.supports_untargeted:
            raise AttackError(f"attack {self.name} needs a target class")

    def check_goal(self, goal: Goal) -> None:
        self.check_targeted(goal.targeted)

    @abstractmethod
    def total_steps(self) -> int:
        """The largest Step.index the attack can yield: what a progress bar counts to."""

    @abstractmethod
    def run(
        self, model: nn.Module, x: Tensor, goal: Goal, *, seed: int | Sequence[int] = 0, judge: nn.Module | None = None
    ) -> Iterator[Step]:
        """Attack images x (N,3,H,W) in [0,1]; yield one Step per iteration until every sample is done.

        Drive it through attacks.runner (drive / run_batch / attack_targets), never directly. `seed`: one per
        sample, or one for all; a sample's random draws come from its own generator (see sample_generators).

        The gradient flows through `model` (maybe a randomised or ensemble wrapper); success, early stopping and
        the Step's probabilities are those of `judge` (default: `model`) on the 8-bit image, so a sample never
        stops on one lucky random view.
        """


def loss_and_grad(
    model: nn.Module, x: Tensor, goal: Goal, *, quantized: bool, loss_fn: Any = None, need_grad: bool = True
) -> tuple[Tensor, Tensor, Tensor | None]:
    """One forward+backward: returns logits (N,K), per-sample loss (N,), d(loss)/dx (N,3,H,W).

    With quantized=True the model sees the 8-bit rounded x (straight-through), so the logits are those of the
    savable image. Gradients are taken with torch.autograd.grad w.r.t. the input only. need_grad=False (the
    last step, which is only checked) does the forward pass alone and returns grad None.
    """
    if not need_grad:
        with torch.no_grad():
            logits = model(quantize(x) if quantized else x)  # (N, K)
            return logits, (loss_fn or goal.loss)(logits), None
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(quantize_ste(x) if quantized else x)  # (N, K)
        loss = (loss_fn or goal.loss)(logits)  # (N,)
        (grad,) = torch.autograd.grad(loss.sum(), x)
    return logits.detach(), loss.detach(), grad  # grad: (N, 3, H, W)


def sample_generators(seed: int | Sequence[int], n: int) -> list[torch.Generator]:
    """One CPU generator per sample, so a sample's random start never depends on the batch it runs in."""
    seeds = [int(seed)] * n if isinstance(seed, int) else [int(s) for s in seed]
    if len(seeds) != n:
        raise AttackError(f"{len(seeds)} seeds for {n} samples")
    return [torch.Generator(device="cpu").manual_seed(s) for s in seeds]


class SampleLoop:
    """The per-sample batch loop every attack runs: which samples are still active, what each one shows, and the
    Step to yield. Written once here; GradientAttack, DeepFool and CW all drive one.

    Each iteration: `active()` gives the indices (A,) still running; the attack evaluates them, asks `judge` for the
    judge's logits on their 8-bit images, `record`s what they show, `finish`es those that stop, and yields
    `step(index)`. Everything the Step holds is full batch size (N) and describes the 8-bit image as saved.
    """

    def __init__(self, model: nn.Module, x0: Tensor, *, judge: nn.Module | None, quantized: bool) -> None:
        n = x0.shape[0]
        self.model = model
        self.judge_model = model if judge is None else judge
        self.x0 = x0.detach()  # (N, 3, H, W)
        self.quantized = quantized
        self.shown = quantize(self.x0)  # (N, 3, H, W) last recorded 8-bit image
        self.probs: Tensor | None = None  # (N, K) once the first record arrives
        self.loss = torch.zeros(n, device=x0.device)  # (N,)
        self.done = torch.zeros(n, dtype=torch.bool, device=x0.device)  # (N,)
        self.success = torch.zeros(n, dtype=torch.bool, device=x0.device)  # (N,)

    def active(self) -> Tensor:
        """(A,) indices of the samples not done yet."""
        return (~self.done).nonzero()[:, 0]

    def judge(self, x: Tensor, logits: Tensor | None = None) -> Tensor:
        """The judge's logits (A,K) on the 8-bit rounding of x (A,3,H,W), without gradient.

        `logits`: the attacked model's logits at that very 8-bit image (a quantized forward), reused when the judge
        is the attacked model, so the default case costs no extra forward pass.
        """
        if logits is not None and self.quantized and self.judge_model is self.model:
            return logits.detach()
        with torch.no_grad():
            return self.judge_model(quantize(x.detach()))  # (A, K)

    def record(self, ids: Tensor, x: Tensor, probs: Tensor, loss: Tensor, success: Tensor) -> None:
        """Samples `ids` (A,) now show the 8-bit rounding of x (A,3,H,W): judged probs (A,K), loss (A,), success."""
        if self.probs is None:
            self.probs = torch.zeros(self.x0.shape[0], probs.shape[1], device=probs.device)  # (N, K)
        self.shown[ids] = quantize(x.detach())
        self.probs[ids] = probs
        self.loss[ids] = loss
        self.success[ids] = success

    def finish(self, ids: Tensor) -> None:
        self.done[ids] = True

    @property
    def all_done(self) -> bool:
        return bool(self.done.all())

    def step(self, index: int) -> Step:
        assert self.probs is not None, "record before yielding a step"
        return Step(
            index=index,
            x_adv=self.shown.clone(),
            probs=self.probs.clone(),
            loss=self.loss.clone(),
            distortion=rms(self.shown, self.x0),
            done=self.done.clone(),
            success=self.success.clone(),
        )


class GradientAttack(Attack):
    """Iterative first-order attacks: x <- project(x - step * direction(grad)), checked on the 8-bit image.

    Subclasses define `start`, `direction` and `project`; `over_budget` lets a subclass end a sample on its own
    budget (relabel's RMS cap). Samples that are done leave the batch, so a finished target costs nothing.
    early_stop=False: every sample takes every step (or stops at its own budget), success judged at the end.
    """

    per_sample = True  # per-sample losses, steps and stops: batching changes no sample's run

    def start(self, x0: Tensor, generators: list[torch.Generator]) -> Tensor:
        """First iterate (N,3,H,W); default: the original image. generators: one per sample."""
        return x0.clone()

    @abstractmethod
    def direction(self, grad: Tensor, state: dict[str, Tensor]) -> Tensor:
        """Descent direction from the gradient (N,3,H,W); `state` holds per-sample tensors (e.g. momentum)."""

    def project(self, x: Tensor, x0: Tensor) -> Tensor:
        """Back into the budget around x0 and into [0,1]."""
        return x.clamp(0.0, 1.0)

    def over_budget(self, x_next: Tensor, x0: Tensor) -> Tensor:
        """(N,) True where taking the step would exceed the attack's own budget; default never."""
        return torch.zeros(x0.shape[0], dtype=torch.bool, device=x0.device)

    def total_steps(self) -> int:
        return int(self.hparams["steps"])

    def init_state(self, x0: Tensor) -> dict[str, Tensor]:
        return {}

    def run(
        self, model: nn.Module, x: Tensor, goal: Goal, *, seed: int | Sequence[int] = 0, judge: nn.Module | None = None
    ) -> Iterator[Step]:
        self.check_goal(goal)
        loop = SampleLoop(model, x, judge=judge, quantized=self.quantize)
        x0 = loop.x0
        xi = self.start(x0, sample_generators(seed, x0.shape[0]))  # (N, 3, H, W) float iterate
        state = self.init_state(x0)
        steps = self.total_steps()
        for i in range(steps + 1):
            act = loop.active()  # (A,)
            sub = goal.subset(act)
            logits, loss, grad = loss_and_grad(model, xi[act], sub, quantized=self.quantize, need_grad=i < steps)
            probs = loop.judge(xi[act], logits).softmax(dim=1)  # (A, K) the judge's, on the 8-bit image
            met = sub.met(probs)  # (A,)
            loop.record(act, xi[act], probs, loss, met)
            stop = met.clone() if self.early_stop else torch.zeros_like(met)
            if i < steps:
                cont = (~stop).nonzero()[:, 0]
                if len(cont):
                    assert grad is not None
                    stop[cont[self.advance(xi, x0, state, act[cont], grad[cont])]] = True
            else:
                stop[:] = True
            loop.finish(act[stop])
            yield loop.step(i)
            if loop.all_done:
                return

    def advance(self, xi: Tensor, x0: Tensor, state: dict[str, Tensor], ids: Tensor, grad: Tensor) -> Tensor:
        """One step of samples `ids` (C,) in place: xi (N,3,H,W) and their rows of `state`, from their gradient
        grad (C,3,H,W). Returns (C,) True where the step would pass the attack's own budget (that sample keeps its
        iterate and stops). Shared by `run` and attacks.refill."""
        sub_state = {k: v[ids] for k, v in state.items()}
        d = self.direction(grad, sub_state)
        for k, v in sub_state.items():
            state[k][ids] = v
        x_next = self.project(xi[ids] - self.step_size_px() * d, x0[ids])
        over = self.over_budget(x_next, x0[ids])  # (C,)
        keep = ~over
        xi[ids[keep]] = x_next[keep]
        return over

    def step_size_px(self) -> float:
        """Step size in [0,1] pixel units."""
        return self.hparams["step_size"] / 255.0
