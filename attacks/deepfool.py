"""DeepFool: Moosavi-Dezfooli, Fawzi & Frossard, "DeepFool: a simple and accurate method to fool deep neural
networks" (CVPR 2016).

arXiv:1511.04599. L2, minimal-perturbation attack. Each iteration linearises the classifier at the current image
and steps to the nearest linearised decision boundary (Algorithm 2): for the candidate classes k != s,
f_k = Z_k - Z_s and w_k = grad f_k; l = argmin_k |f_k| / ||w_k||; r_i = (|f_l| / ||w_l|| + 1e-4) w_l / ||w_l||.
The steps add up to r_total and the image is x = clip(x0 + (1 + overshoot) r_total), as in the authors' code.

Candidates: the top-`candidates` classes of the original image (the paper's own ImageNet setting, 10), so one
iteration costs one forward and candidates-1 backward passes, whatever the number of classes. Targeted: the target
is the only candidate, linearised against the best other class of the current image (f = Z_t - max_{j!=t} Z_j).
A sample stops as soon as its 8-bit image meets the goal; the steps go on past the float boundary until then.
DeepFool is a minimal-perturbation attack, so early_stop=False changes nothing: there is no budget to spend, and
stepping on past the boundary only multiplies the L2 (3-12x) without a purpose the algorithm knows of.

With quantize (the default) the model sees the 8-bit image, so a step too small to change it would be computed
again, identically, at the next iteration: such identical steps are taken at once (the smallest multiple of r that
changes one saved value), which gives the same iterates as the paper's loop in fewer iterations. A sample whose
step cannot change any value (all pushing against 0 or 1) stops there.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from attacks.base import Attack, Goal, Param, SampleLoop, Step
from attacks.metrics import quantize_ste

#: Added to every step length (L2, pixel units in [0,1]) so a step never stops exactly on the boundary (authors').
_NUDGE = 1e-4


def logit_margin(logits: Tensor, goal: Goal) -> Tensor:
    """(N,K) -> (N,) Z_s - max_{i!=s} Z_i (untargeted) or max_{i!=t} Z_i - Z_t (targeted); < 0: goal met."""
    cls = goal.source if goal.target is None else goal.target
    own = logits.gather(1, cls[:, None])[:, 0]  # (N,)
    other = logits.scatter(1, cls[:, None], float("-inf")).amax(dim=1)  # (N,)
    return own - other if goal.target is None else other - own


def _norm(t: Tensor) -> Tensor:
    return t.flatten(1).norm(dim=1).clamp_min(1e-12)  # (N,)


class DeepFool(Attack):
    name = "deepfool"
    title = "DeepFool (Moosavi-Dezfooli et al. 2016)"
    summary = "Steps to the nearest linearised decision boundary until the label flips; a near-minimal L2 change."
    params = (
        Param("steps", 50, 1, 10000, "Maximum number of iterations.", integer=True),
        Param("overshoot", 0.02, 0.0, 10.0, "x = x0 + (1 + overshoot) * r_total, to land past the boundary."),
        Param(
            "candidates",
            10,
            2,
            1000,
            "Classes considered: the top ones of the original image (untargeted).",
            integer=True,
        ),
    )

    def total_steps(self) -> int:
        return int(self.hparams["steps"])

    def run(
        self, model: nn.Module, x: Tensor, goal: Goal, *, seed: int | Sequence[int] = 0, judge: nn.Module | None = None
    ) -> Iterator[Step]:
        self.check_goal(goal)
        loop = SampleLoop(model, x, judge=judge, quantized=self.quantize)
        x0 = loop.x0
        steps = self.total_steps()
        overshoot = float(self.hparams["overshoot"])
        xi = x0.clone()  # (N, 3, H, W) float iterate
        r_total = torch.zeros_like(x0)  # (N, 3, H, W)
        cand: Tensor | None = None  # (N, k) candidate classes other than the source (untargeted)
        for i in range(steps + 1):
            act = loop.active()  # (A,)
            sub = goal.subset(act)
            xa = xi[act].requires_grad_(True)  # (A, 3, H, W)
            with torch.enable_grad():
                logits = model(quantize_ste(xa) if self.quantize else xa)  # (A, K)
                judged = loop.judge(xa, logits)  # (A, K) the image as saved decides, not the float one
                probs = judged.softmax(dim=1)  # (A, K)
                met = sub.met(probs)  # (A,)
                if cand is None and not goal.targeted:
                    cand = self._candidates(logits.detach(), goal.source)
                loop.record(act, xa, probs, logit_margin(judged, sub), met)
                stop = met.clone()  # also with early_stop=False: see the module docstring
                if i < steps:
                    cont = (~stop).nonzero()[:, 0]
                    if len(cont):
                        ids = act[cont]
                        if goal.targeted:
                            r = self._targeted_step(xa, logits, cont, sub.target[cont])  # (C, 3, H, W)
                        else:
                            r = self._untargeted_step(xa, logits, cont, sub.source[cont], cand[ids])
                        if self.quantize:
                            k = self._repeats(x0[ids], r_total[ids], r, loop.shown[ids], overshoot)  # (C,)
                            stuck = torch.isinf(k)  # no value can move: every later iteration would be the same
                            stop[cont[stuck]] = True
                            r = r * torch.where(stuck, 1.0, k).view(-1, 1, 1, 1)
                        r_total[ids] += r
                        xi[ids] = (x0[ids] + (1.0 + overshoot) * r_total[ids]).clamp(0.0, 1.0)
                else:
                    stop[:] = True
            loop.finish(act[stop])
            yield loop.step(i)
            if loop.all_done:
                return

    @staticmethod
    def _repeats(x0: Tensor, r_total: Tensor, r: Tensor, shown: Tensor, overshoot: float) -> Tensor:
        """How many times the step r must be repeated before the saved image changes: (C,), inf if never.

        The model sees only the 8-bit image, so while that image stays the same every iteration computes the
        same r again; taking the k identical steps at once gives the paper's iterate in one iteration.
        """
        a = x0 + (1.0 + overshoot) * r_total  # (C, 3, H, W) unclipped float iterate
        s = (1.0 + overshoot) * r  # (C, 3, H, W)
        q = torch.round(shown * 255.0)  # (C, 3, H, W) current 8-bit values
        up = (q + 0.5) / 255.0  # value at which rounding moves up a level
        down = (q - 0.5) / 255.0
        inf = torch.tensor(float("inf"), device=x0.device)
        t_up = torch.where((s > 0) & (q < 255), (up - a) / s, inf)  # (C, 3, H, W)
        t_down = torch.where((s < 0) & (q > 0), (down - a) / s, inf)  # (C, 3, H, W)
        t = torch.minimum(t_up, t_down).flatten(1).amin(dim=1)  # (C,)
        return torch.where(torch.isinf(t), t, t.ceil().clamp_min(1.0))

    def _candidates(self, logits: Tensor, source: Tensor) -> Tensor:
        """(N,K) logits of the original image -> (N, k-1) its top classes other than the source."""
        k = min(int(self.hparams["candidates"]), logits.shape[1])
        others = logits.scatter(1, source[:, None], float("-inf"))  # (N, K)
        return others.topk(k - 1, dim=1).indices  # (N, k-1)

    @staticmethod
    def _step(f: Tensor, w: Tensor) -> Tensor:
        """Move to the linearised boundary f + <w, r> = 0 along w, a little past: (C,), (C,3,H,W) -> (C,3,H,W)."""
        nrm = _norm(w)  # (C,)
        return ((f.abs() / nrm + _NUDGE) / nrm).view(-1, 1, 1, 1) * w  # (C, 3, H, W)

    @staticmethod
    def _untargeted_step(xa: Tensor, logits: Tensor, cont: Tensor, source: Tensor, cand: Tensor) -> Tensor:
        """Algorithm 2: nearest of the k-1 linearised boundaries; one backward pass per candidate.

        xa (A,3,H,W) with its graph to logits (A,K); cont (C,) rows still running; source (C,); cand (C, k-1).
        """
        z_s = logits[cont].gather(1, source[:, None])[:, 0]  # (C,)
        best_val = torch.full_like(z_s, float("inf"))  # (C,)
        best_f = torch.zeros_like(z_s)  # (C,)
        best_w = torch.zeros_like(xa[cont])  # (C, 3, H, W)
        for j in range(cand.shape[1]):
            f = logits[cont].gather(1, cand[:, j : j + 1])[:, 0] - z_s  # (C,)
            (w,) = torch.autograd.grad(f.sum(), xa, retain_graph=True)
            w = w[cont]  # (C, 3, H, W)
            val = f.detach().abs() / _norm(w)  # (C,)
            better = val < best_val  # (C,)
            best_val = torch.where(better, val, best_val)
            best_f = torch.where(better, f.detach(), best_f)
            best_w[better] = w[better]
        return DeepFool._step(best_f, best_w)

    @staticmethod
    def _targeted_step(xa: Tensor, logits: Tensor, cont: Tensor, target: Tensor) -> Tensor:
        """Only the target's boundary, against the currently best other class: f = Z_t - max_{j!=t} Z_j."""
        z = logits[cont]  # (C, K)
        rival = z.detach().scatter(1, target[:, None], float("-inf")).argmax(dim=1)  # (C,)
        f = z.gather(1, target[:, None])[:, 0] - z.gather(1, rival[:, None])[:, 0]  # (C,)
        (w,) = torch.autograd.grad(f.sum(), xa)
        return DeepFool._step(f.detach(), w[cont])
