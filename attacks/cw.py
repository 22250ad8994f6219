"""Carlini-Wagner L2: Carlini & Wagner, "Towards Evaluating the Robustness of Neural Networks" (IEEE S&P 2017).

arXiv:1608.04644. L2. Change of variables x' = (tanh(w) + 1) / 2 keeps every pixel in [0,1]; Adam on w minimises
||x' - x0||^2 + c * f(x') with f = max(max_{i!=t} Z_i - Z_t, -kappa) (targeted) or max(Z_s - max_{i!=s} Z_i, -kappa)
(untargeted), Z the logits. A binary search over c, per sample, runs `binary_steps` stages of `steps` Adam steps:
each stage restarts from the original image; c shrinks after a stage that found an adversarial image and grows
(x10 until one is found, then bisection) after one that did not. A stage ends early when its loss has not fallen
by 0.01% over a tenth of its steps (the authors' abort_early). early_stop=False ("spend the whole budget") turns
abort_early off: every stage runs all its steps; the binary search is unchanged and still sees real success, so
the result is the lowest-L2 adversarial image over the whole budget (never larger than with early stopping).

The logits are taken at the 8-bit rounding of x' (straight-through), so every image counted as found is one that
fools the model once saved; the reported image is the lowest-L2 such image so far. The loss reported with it is
its logit margin (the misclassification term without the kappa clamp; < 0: goal met), which, unlike the objective,
does not jump when the binary search changes c. A goal with a target confidence p raises the margin the loss aims
for (see _push); an image counts as found when it meets the goal with a margin of at least kappa.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from attacks.base import Attack, Goal, Param, SampleLoop, Step
from attacks.deepfool import logit_margin
from attacks.metrics import quantize, quantize_ste

_BETA1, _BETA2, _ADAM_EPS = 0.9, 0.999, 1e-8
_UPPER_INIT = 1e10  # "no success yet" upper bound of c, as in the authors' code


def _to_w(x: Tensor) -> Tensor:
    """Inverse of (tanh(w)+1)/2; scaled by 1-1e-6 so 0 and 1 stay finite (as the authors do)."""
    return torch.atanh((2.0 * x - 1.0) * (1.0 - 1e-6))  # (N, 3, H, W)


def _to_x(w: Tensor) -> Tensor:
    return (torch.tanh(w) + 1.0) / 2.0  # (N, 3, H, W)


def _push(kappa: float, goal: Goal, classes: int) -> float:
    """Margin the loss drives toward: kappa, or more where the goal asks for a probability p of the winning class. A
    margin of log((K-1) p / (1-p)) over every other logit guarantees p (the clamp at -kappa would otherwise stop at
    1/K); untargeted, the margin is over the source only, which pushes in the right direction without a guarantee."""
    if goal.confidence <= 0:
        return kappa
    p = goal.confidence
    return max(kappa, math.log((classes - 1) * p / (1.0 - p)))


class CarliniWagnerL2(Attack):
    name = "cw"
    title = "Carlini-Wagner L2 (Carlini & Wagner 2017)"
    summary = "Adam on a tanh-reparametrised image, trading L2 distance against a logit margin; binary search on c."
    params = (
        Param("steps", 100, 1, 10000, "Adam steps per binary-search stage.", integer=True),
        Param("binary_steps", 5, 1, 30, "Binary-search stages over the constant c.", integer=True),
        Param("initial_const", 1.0, 1e-4, 1e4, "Starting value of c, the weight of the misclassification term."),
        Param("learning_rate", 0.01, 1e-5, 10.0, "Adam learning rate (in tanh space w)."),
        Param("kappa", 0.0, 0.0, 1000.0, "Confidence: required logit margin of the adversarial image.", "logit"),
    )

    def total_steps(self) -> int:
        """Indices run from 0: every stage evaluates `steps` points, so the last index is steps * stages - 1."""
        return int(self.hparams["steps"]) * int(self.hparams["binary_steps"]) - 1

    def run(
        self, model: nn.Module, x: Tensor, goal: Goal, *, seed: int | Sequence[int] = 0, judge: nn.Module | None = None
    ) -> Iterator[Step]:
        self.check_goal(goal)
        loop = SampleLoop(model, x, judge=judge, quantized=self.quantize)
        x0 = loop.x0
        n = x0.shape[0]
        dev = x0.device
        steps = int(self.hparams["steps"])
        stages = int(self.hparams["binary_steps"])
        lr = float(self.hparams["learning_rate"])
        kappa = float(self.hparams["kappa"])
        abort_every = max(steps // 10, 1)

        w0 = _to_w(x0)  # (N, 3, H, W)
        w = w0.clone()  # (N, 3, H, W)
        m = torch.zeros_like(w0)  # (N, 3, H, W) Adam first moment
        v = torch.zeros_like(w0)  # (N, 3, H, W) Adam second moment
        t = torch.zeros(n, device=dev)  # (N,) Adam step count within the stage
        const = torch.full((n,), float(self.hparams["initial_const"]), device=dev)  # (N,)
        lower = torch.zeros(n, device=dev)  # (N,)
        upper = torch.full((n,), _UPPER_INIT, device=dev)  # (N,)
        stage = torch.zeros(n, dtype=torch.long, device=dev)  # (N,)
        stage_step = torch.zeros(n, dtype=torch.long, device=dev)  # (N,)
        stage_found = torch.zeros(n, dtype=torch.bool, device=dev)  # (N,)
        prev_loss = torch.full((n,), float("inf"), device=dev)  # (N,)
        best_l2sq = torch.full((n,), float("inf"), device=dev)  # (N,) of the best 8-bit image

        index = 0
        while True:
            act = loop.active()  # (A,)
            sub = goal.subset(act)
            wa = w[act].requires_grad_(True)  # (A, 3, H, W)
            with torch.enable_grad():
                xa = _to_x(wa)  # (A, 3, H, W)
                logits = model(quantize_ste(xa) if self.quantize else xa)  # (A, K)
                l2sq = (xa - x0[act]).flatten(1).pow(2).sum(dim=1)  # (A,)
                margin = logit_margin(logits, sub)  # (A,)
                loss = l2sq + const[act] * margin.clamp_min(-_push(kappa, goal, logits.shape[1]))  # (A,)
                # Adam is not taken after a stage's last evaluation: that point would never be looked at.
                last = stage_step[act] == steps - 1  # (A,)
                grad = torch.autograd.grad(loss.sum(), wa)[0] if not bool(last.all()) else None

            xq = quantize(xa.detach())  # (A, 3, H, W) the image as saved
            logits_q = loop.judge(xq, logits)  # (A, K) the judge's, on the 8-bit image
            probs_q = logits_q.softmax(dim=1)  # (A, K)
            margin_q = logit_margin(logits_q, sub)  # (A,)
            l2sq_q = (xq - x0[act]).flatten(1).pow(2).sum(dim=1)  # (A,)
            found = sub.met(probs_q) & (margin_q <= -kappa)  # (A,)
            stage_found[act] |= found
            better = found & (l2sq_q < best_l2sq[act])  # (A,)
            best_l2sq[act[better]] = l2sq_q[better]
            # Shown: the best adversarial image so far (its margin as the loss), or the iterate until there is one.
            loop.record(act[better], xq[better], probs_q[better], margin_q[better], found[better])
            fresh = ~loop.success[act]  # (A,)
            loop.record(act[fresh], xq[fresh], probs_q[fresh], margin_q[fresh], found[fresh])

            # Adam step (per-sample step count, so each sample's stages are independent of the batch).
            if grad is not None:
                run = ~last  # (A,)
                ids = act[run]
                g = grad[run]  # (R, 3, H, W)
                t[ids] += 1
                m[ids] = _BETA1 * m[ids] + (1 - _BETA1) * g
                v[ids] = _BETA2 * v[ids] + (1 - _BETA2) * g * g
                bc1 = (1 - _BETA1 ** t[ids]).view(-1, 1, 1, 1)  # (R, 1, 1, 1)
                bc2 = (1 - _BETA2 ** t[ids]).view(-1, 1, 1, 1)  # (R, 1, 1, 1)
                w[ids] = w[ids] - lr * (m[ids] / bc1) / ((v[ids] / bc2).sqrt() + _ADAM_EPS)

            # End of a stage: its last step, or (early_stop only) the loss stalled, checked every tenth of the stage.
            end = last.clone()  # (A,)
            if self.early_stop:
                loss_d = loss.detach()  # (A,)
                check = stage_step[act] % abort_every == 0  # (A,)
                stalled = check & (loss_d > prev_loss[act] - 1e-4 * prev_loss[act].abs())  # (A,) fell < 0.01%
                prev_loss[act[check]] = loss_d[check]
                end |= stalled
            stage_step[act] += 1
            ids = act[end]
            if len(ids):
                ok = stage_found[ids]  # (E,)
                upper[ids] = torch.where(ok, torch.minimum(upper[ids], const[ids]), upper[ids])
                lower[ids] = torch.where(ok, lower[ids], torch.maximum(lower[ids], const[ids]))
                bounded = upper[ids] < _UPPER_INIT / 10  # (E,)
                const[ids] = torch.where(bounded, (lower[ids] + upper[ids]) / 2, const[ids] * 10)
                stage[ids] += 1
                stage_step[ids] = 0
                stage_found[ids] = False
                prev_loss[ids] = float("inf")
                w[ids] = w0[ids]
                m[ids] = 0.0
                v[ids] = 0.0
                t[ids] = 0.0
                loop.finish(ids[stage[ids] >= stages])
            yield loop.step(index)
            index += 1
            if loop.all_done:
                return
