"""What every attack shares: the Step it yields, the goal it pursues, its parameters, and the iteration loop.

Structure after Foolbox 3: the base class owns the loop (gradient, direction, step, project, clamp, success);
an attack only says how to turn a gradient into a direction and how to project back into its budget.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
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
    """

    index: int
    x_adv: Tensor
    probs: Tensor
    loss: Tensor
    distortion: Tensor
    done: Tensor
    success: Tensor


@dataclass(frozen=True)
class Goal:
    """What counts as success, per sample. Targeted when `target` is given, otherwise untargeted.

    source: (N,) class of the original image; target: (N,) wanted class or None; confidence: the target's
    probability must also reach this (0 = being the top class is enough).
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
        top = probs.argmax(dim=1)
        if self.target is None:
            return top != self.source
        ok = top == self.target
        if self.confidence > 0:
            ok &= probs.gather(1, self.target[:, None])[:, 0] >= self.confidence
        return ok

    def loss(self, logits: Tensor) -> Tensor:
        """Per-sample loss to minimise: CE to the target, or minus CE of the source class. (N,K) -> (N,)."""
        if self.target is not None:
            return F.cross_entropy(logits, self.target, reduction="none")
        return -F.cross_entropy(logits, self.source, reduction="none")


@dataclass(frozen=True)
class Param:
    """One hyperparameter as the UI and CLI show it; values are in the unit given (pixel units 1/255 etc.)."""

    name: str
    default: float
    low: float
    high: float
    help: str
    unit: str = ""
    integer: bool = False


class AttackError(ValueError):
    """A hyperparameter out of range, or a goal the attack cannot pursue."""


class Attack(ABC):
    """An attack is a generator of Steps. Hyperparameters are keyword-only and checked on construction."""

    name: ClassVar[str]
    title: ClassVar[str]
    summary: ClassVar[str]
    params: ClassVar[tuple[Param, ...]]
    supports_targeted: ClassVar[bool] = True
    supports_untargeted: ClassVar[bool] = True

    def __init__(self, **values: Any) -> None:
        known = {p.name: p for p in self.params}
        unknown = sorted(set(values) - set(known) - {"quantize", "early_stop"})
        if unknown:
            raise AttackError(f"attack {self.name} has no parameter {', '.join(unknown)}")
        #: Evaluate the model at the 8-bit rounded image (straight-through gradient). See metrics.quantize_ste.
        self.quantize: bool = bool(values.pop("quantize", True))
        #: Stop a sample at its first success (minimal distortion). False runs every step, as most libraries do.
        self.early_stop: bool = bool(values.pop("early_stop", True))
        self.hparams: dict[str, float] = {}
        for p in self.params:
            value = values.get(p.name, p.default)
            if value is None:
                value = p.default
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise AttackError(f"{p.name} must be a number, got {value!r}")
            if p.integer and int(value) != value:
                raise AttackError(f"{p.name} must be a whole number, got {value}")
            if not p.low <= value <= p.high:
                raise AttackError(f"{p.name} must be between {p.low:g} and {p.high:g}, got {value:g}")
            self.hparams[p.name] = int(value) if p.integer else float(value)

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
    def run(self, model: nn.Module, x: Tensor, goal: Goal, *, seed: int = 0) -> Iterator[Step]:
        """Attack images x (N,3,H,W) in [0,1]; yield one Step per iteration until every sample is done."""


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


def verify_8bit(model: nn.Module, x: Tensor, goal: Goal) -> tuple[Tensor, Tensor]:
    """Classify the 8-bit rounding of x: returns (met (N,), probs (N,K)). Used when the loop runs unquantized."""
    with torch.no_grad():
        probs = model(quantize(x)).softmax(dim=1)
    return goal.met(probs), probs


@dataclass
class _Trace:
    """Per-sample bookkeeping of a running attack, full batch size (N)."""

    shown: Tensor  # (N,3,H,W) last evaluated 8-bit image
    probs: Tensor  # (N,K)
    loss: Tensor  # (N,)
    done: Tensor  # (N,) bool
    success: Tensor  # (N,) bool
    extra: dict[str, Tensor] = field(default_factory=dict)

    def step(self, index: int, x0: Tensor) -> Step:
        return Step(
            index=index,
            x_adv=self.shown.clone(),
            probs=self.probs.clone(),
            loss=self.loss.clone(),
            distortion=rms(self.shown, x0),
            done=self.done.clone(),
            success=self.success.clone(),
        )


class GradientAttack(Attack):
    """Iterative first-order attacks: x <- project(x - step * direction(grad)), checked on the 8-bit image.

    Subclasses define `start`, `direction` and `project`; `stop_early` lets a subclass end a sample on its own
    budget (relabel's RMS cap). Samples that are done leave the batch, so a finished target costs nothing.
    """

    def start(self, x0: Tensor, generator: torch.Generator) -> Tensor:
        """First iterate (N,3,H,W); default: the original image."""
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

    def run(self, model: nn.Module, x: Tensor, goal: Goal, *, seed: int = 0) -> Iterator[Step]:
        self.check_goal(goal)
        x0 = x.detach()
        n = x0.shape[0]
        gen = torch.Generator(device="cpu").manual_seed(seed)
        xi = self.start(x0, gen)  # (N, 3, H, W) float iterate
        state = self.init_state(x0)
        trace: _Trace | None = None
        steps = self.total_steps()
        for i in range(steps + 1):
            act = torch.arange(n, device=x0.device) if trace is None else (~trace.done).nonzero()[:, 0]
            sub = goal.subset(act)
            logits, loss, grad = loss_and_grad(model, xi[act], sub, quantized=self.quantize, need_grad=i < steps)
            probs = logits.softmax(dim=1)  # (A, K)
            met = sub.met(probs)
            if not self.quantize and bool(met.any()):
                # The float iterate succeeded; only the 8-bit image counts, so check it (an extra forward
                # only at the few steps where the float iterate claims success).
                met_q, probs_q = verify_8bit(model, xi[act][met], sub.subset(met.nonzero()[:, 0]))
                probs[met] = probs_q
                met[met.clone()] = met_q
            if trace is None:
                trace = _Trace(
                    shown=quantize(xi),
                    probs=probs.clone(),
                    loss=loss.clone(),
                    done=torch.zeros(n, dtype=torch.bool, device=x0.device),
                    success=torch.zeros(n, dtype=torch.bool, device=x0.device),
                )
            trace.shown[act] = quantize(xi[act])
            trace.probs[act] = probs
            trace.loss[act] = loss
            trace.success[act] = met
            stop = met.clone() if self.early_stop else torch.zeros_like(met)
            if i < steps:
                cont = (~stop).nonzero()[:, 0]
                if len(cont):
                    assert grad is not None
                    ids = act[cont]
                    sub_state = {k: v[ids] for k, v in state.items()}
                    d = self.direction(grad[cont], sub_state)
                    for k, v in sub_state.items():
                        state[k][ids] = v
                    x_next = self.project(xi[ids] - self.step_size_px() * d, x0[ids])
                    over = self.over_budget(x_next, x0[ids])
                    stop[cont[over]] = True
                    keep = ~over
                    xi[ids[keep]] = x_next[keep]
            else:
                stop[:] = True
            trace.done[act[stop]] = True
            yield trace.step(i, x0)
            if bool(trace.done.all()):
                return

    def step_size_px(self) -> float:
        """Step size in [0,1] pixel units."""
        return self.hparams["step_size"] / 255.0
