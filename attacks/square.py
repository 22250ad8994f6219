"""Square Attack: Andriushchenko, Croce, Flammarion & Hein, "Square Attack: a query-efficient black-box adversarial
attack via random search" (ECCV 2020). arXiv:1912.00049.

Score-based: random search over square-shaped updates, keeping a candidate only when it lowers the loss (the margin
loss untargeted, cross-entropy of the target targeted, as the authors' code). One query per sample per iteration
after the initial one (vertical stripes for L-inf, a grid of pseudo-Gaussian bumps for L2); all candidates of a
batch go to the oracle in one forward pass. The square's side follows the paper's schedule of p (fraction of pixels
changed), halved at fixed fractions of the query budget. Each sample draws its squares from its own generator, so
a sample's run never depends on the batch (the authors draw one window per iteration for the whole L2 batch).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

from attacks.base import Goal, Param
from attacks.queries import BlackBoxAttack, Oracle, Report, log_margin

_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)  # per 10000 iterations (authors' p_selection)


def p_selection(p_init: float, it: int, n_iters: int) -> float:
    """The authors' schedule: p_init halved at 10, 50, 200, ... per 10000 of the iteration budget."""
    k = int(it / max(n_iters, 1) * 10000)
    return p_init / 2 ** sum(k > h for h in _HALVINGS)


def _square_loss(probs: Tensor, goal: Goal) -> Tensor:
    """(N,K) -> (N,) what the search lowers: margin untargeted, cross-entropy of the target targeted."""
    if goal.target is None:
        return log_margin(probs, goal)
    return -probs.gather(1, goal.target[:, None])[:, 0].clamp_min(1e-30).log()


def _signs(g: torch.Generator, shape: tuple[int, ...]) -> Tensor:
    return torch.randint(0, 2, shape, generator=g).float() * 2 - 1  # +-1


def _bump(s: int) -> Tensor:
    """The authors' pseudo_gaussian_pert_rectangles(s, s) stacked as meta_pseudo_gaussian_pert: (s, s), unit norm,
    positive on the top half and negative on the bottom half (transposed at random by the caller)."""

    def rect(x: int, y: int) -> Tensor:
        d = torch.zeros(x, y)
        xc, yc = x // 2 + 1, y // 2 + 1
        c0, c1 = xc - 1, yc - 1
        for counter in range(max(xc, yc)):
            d[max(c0, 0) : min(c0 + 2 * counter + 1, x), max(0, c1) : min(c1 + 2 * counter + 1, y)] += (
                1.0 / (counter + 1) ** 2
            )
            c0 -= 1
            c1 -= 1
        return d / d.norm().clamp_min(1e-12)

    d = torch.zeros(s, s)
    d[: s // 2] = rect(s // 2, s) if s // 2 else d[: s // 2]
    d[s // 2 :] = -rect(s - s // 2, s)
    return d / d.norm().clamp_min(1e-12)  # (s, s)


class _Square(BlackBoxAttack):
    params: tuple[Param, ...]

    def total_steps(self) -> int:
        return self.budget() - 1  # index 0 costs the first query, every later Step one more

    def start(self, x0: Tensor, gens: list[torch.Generator]) -> Tensor:
        """(N,3,H,W) the first image queried."""
        raise NotImplementedError

    def propose(self, x0: Tensor, best: Tensor, gens: list[torch.Generator], p: float) -> Tensor:
        """(A,3,H,W) one candidate per sample around its best image."""
        raise NotImplementedError

    def search(
        self, oracle: Oracle, x0: Tensor, goal: Goal, generators: list[torch.Generator], done: Tensor
    ) -> Iterator[Report]:
        n = x0.shape[0]
        all_ids = torch.arange(n, device=x0.device)
        best = self.start(x0, generators)  # (N, 3, H, W)
        probs = oracle.probs(best, all_ids)  # (N, K)
        loss = _square_loss(probs, goal)  # (N,)
        n_iters = self.budget()
        yield Report(0, all_ids, best.clone(), probs, loss.clone(), oracle.remaining(all_ids) <= 0)
        p_init = float(self.hparams["p_init"])
        for i in range(1, n_iters):
            act = (~done).nonzero()[:, 0]  # (A,)
            if not len(act):
                return
            p = p_selection(p_init, i - 1, n_iters)
            cand = self.propose(x0[act], best[act], [generators[int(j)] for j in act], p)  # (A, 3, H, W)
            cp = oracle.probs(cand, act)  # (A, K) one forward for the whole batch
            cl = _square_loss(cp, goal.subset(act))  # (A,)
            better = cl < loss[act]  # (A,)
            ids = act[better]
            best[ids] = cand[better]
            loss[ids] = cl[better]
            probs[ids] = cp[better]
            yield Report(i, act, best[act].clone(), probs[act].clone(), loss[act].clone(), oracle.remaining(act) <= 0)


class SquareLinf(_Square):
    """Square Attack, L-inf: squares of +-eps per channel, in the L-inf ball of radius eps."""

    name = "square"
    title = "Square Attack L-inf (Andriushchenko et al. 2020)"
    summary = "Score-based random search: tries a random square of +-eps, keeps it when the margin shrinks."
    params = (
        Param(
            "eps", 8.0, 0.01, 255.0, "Largest change of any pixel value (L-inf), 1/255 units (paper: 12.75).", "1/255"
        ),
        Param(
            "queries",
            1000,
            1,
            100000,
            "Query budget per image (the paper: 10000). Targeted needs more: try 10000.",
            integer=True,
        ),
        Param("p_init", 0.05, 0.001, 1.0, "Fraction of pixels the first squares change (paper: 0.05), then halved."),
    )

    def _eps(self) -> float:
        return self.hparams["eps"] / 255.0

    def start(self, x0: Tensor, gens: list[torch.Generator]) -> Tensor:
        eps = self._eps()
        _, c, _, w = x0.shape
        stripes = torch.stack([_signs(g, (c, 1, w)) for g in gens]).to(x0.device) * eps  # (N, 3, 1, W)
        return (x0 + stripes).clamp(0.0, 1.0)  # (N, 3, H, W)

    def propose(self, x0: Tensor, best: Tensor, gens: list[torch.Generator], p: float) -> Tensor:
        eps = self._eps()
        _, c, h, w = x0.shape
        s = min(max(int(round(math.sqrt(p * h * w))), 1), h - 1)
        delta = best - x0  # (A, 3, H, W)
        for a, g in enumerate(gens):
            r = int(torch.randint(0, h - s, (1,), generator=g))
            q = int(torch.randint(0, w - s, (1,), generator=g))
            win0 = x0[a, :, r : r + s, q : q + s]  # (3, s, s)
            winb = best[a, :, r : r + s, q : q + s]
            for _ in range(100):  # authors: redraw while the square would not change the image
                d = _signs(g, (c, 1, 1)).to(x0.device) * eps  # (3, 1, 1)
                if bool(((win0 + d).clamp(0.0, 1.0) - winb).abs().gt(1e-7).any()):
                    break
            delta[a, :, r : r + s, q : q + s] = d
        return (x0 + delta).clamp(0.0, 1.0)  # (A, 3, H, W)


class SquareL2(_Square):
    """Square Attack, L2: pseudo-Gaussian bumps moved between two windows, on the L2 sphere of radius eps."""

    name = "square_l2"
    title = "Square Attack L2 (Andriushchenko et al. 2020)"
    summary = "Score-based random search with square bumps on the L2 sphere; keeps a try when the margin shrinks."
    params = (
        Param("eps", 5.0, 0.01, 400.0, "L2 norm of the change over all channel values in [0,1] (paper: 5)."),
        Param(
            "queries",
            1000,
            1,
            100000,
            "Query budget per image (the paper: 10000). Targeted needs more: try 10000.",
            integer=True,
        ),
        Param("p_init", 0.1, 0.001, 1.0, "Fraction of pixels the first squares change (paper: 0.1), then halved."),
    )

    def start(self, x0: Tensor, gens: list[torch.Generator]) -> Tensor:
        n, c, h, w = x0.shape
        eps = float(self.hparams["eps"])
        s = max(h // 5, 1)
        sp = (h - s * 5) // 2
        delta = torch.zeros(n, c, h, w)
        for a, g in enumerate(gens):
            for bi in range(h // s):
                for bj in range(w // s):
                    r, q = sp + bi * s, sp + bj * s
                    if r + s > h or q + s > w:
                        continue
                    bump = _bump(s)
                    if bool(torch.rand(1, generator=g) > 0.5):
                        bump = bump.T
                    delta[a, :, r : r + s, q : q + s] += bump * _signs(g, (c, 1, 1))
        delta = delta.to(x0.device)
        norm = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)  # (N, 1, 1, 1)
        return (x0 + delta / norm * eps).clamp(0.0, 1.0)  # (N, 3, H, W)

    def propose(self, x0: Tensor, best: Tensor, gens: list[torch.Generator], p: float) -> Tensor:
        eps = float(self.hparams["eps"])
        _, c, h, w = x0.shape
        s = max(int(round(math.sqrt(p * h * w))), 3)
        s = s + 1 if s % 2 == 0 else s
        s = max(min(s, h - 1), 1)
        out = torch.empty_like(x0)  # (A, 3, H, W)
        for a, g in enumerate(gens):
            delta = best[a] - x0[a]  # (3, H, W)
            r1, q1, r2, q2 = (int(torch.randint(0, max(side - s, 1), (1,), generator=g)) for side in (h, w, h, w))
            m1 = torch.zeros(1, h, w, device=x0.device)
            m1[:, r1 : r1 + s, q1 : q1 + s] = 1.0
            m2 = torch.zeros_like(m1)
            m2[:, r2 : r2 + s, q2 : q2 + s] = 1.0
            win1 = (delta * m1)[:, r1 : r1 + s, q1 : q1 + s]  # (3, s, s)
            norm_win1 = win1.flatten(1).norm(dim=1).view(c, 1, 1)  # (3, 1, 1)
            norm_img = delta.norm()
            norm_both = (delta * torch.maximum(m1, m2)).flatten(1).norm(dim=1).view(c, 1, 1)  # (3, 1, 1)
            bump = _bump(s).to(x0.device)
            if bool(torch.rand(1, generator=g) > 0.5):
                bump = bump.T
            new = bump.expand(c, s, s) * _signs(g, (c, 1, 1)).to(x0.device) + win1 / (1e-10 + norm_win1)
            room = (torch.clamp(eps**2 - norm_img**2, min=0.0) / c + norm_both**2).sqrt()  # (3, 1, 1)
            new = new / new.flatten(1).norm(dim=1).clamp_min(1e-12).view(c, 1, 1) * room
            delta[:, r2 : r2 + s, q2 : q2 + s] = 0.0
            delta[:, r1 : r1 + s, q1 : q1 + s] = new
            x_new = x0[a] + delta / delta.norm().clamp_min(1e-12) * eps
            out[a] = x_new.clamp(0.0, 1.0)
        return out
