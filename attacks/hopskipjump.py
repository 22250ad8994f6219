"""HopSkipJump (L2): Chen, Jordan & Wainwright, "HopSkipJumpAttack: a query-efficient decision-based attack"
(IEEE S&P 2020). arXiv:1904.02144.

Decision-based: the oracle gives the top-1 label only (and, when the goal asks for a confidence c, whether the
top class reaches c: an API that answers only when sure; c = 0 is the bare label). The attack starts from an
image that already meets the goal (untargeted: uniform noise, else a given starting image; targeted: a given
image the model labels as the target), finds the boundary between it and the original by binary search, then
repeats: estimate the boundary's normal from the labels of random probes (Monte Carlo, baseline-subtracted,
init_evals * sqrt(t) probes at iteration t), jump along it with a geometrically shrinking step until the label is
still adversarial, and binary-search back to the boundary. The image keeps meeting the goal; what shrinks is its
distance to the original. So success here means: the goal met within `max_rms` (RMS distortion), and the image a
Step shows is the closest adversarial image found, pulled back toward the original onto that budget when it is
still farther, so that the plain model's verdict on the saved image says whether the budget was reached.

Queries are 8-bit images, so the paper's probe radius (gamma * dist / d, ~1e-4 grey levels on 224 px) and its
binary-search tolerance would change no saved value: probes change each value by about one grey level (radius
sqrt(d)/255) and the gradient estimate uses the probes' realised 8-bit changes; a binary search stops when its
two ends differ by under half a grey level. Probes of one sample go to the oracle in batches (ORACLE_CHUNK).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from attacks.base import AttackError, Goal, Param
from attacks.metrics import quantize
from attacks.queries import BlackBoxAttack, Oracle, Report, goal_reached

#: Queries kept back at each iteration for the jump and the binary search.
_RESERVE = 40
_MAX_HALVINGS = 20
_MAX_BISECTIONS = 25
_NOISE_TRIES = 10
_PROBE_CHUNK = 64


class HopSkipJump(BlackBoxAttack):
    """HopSkipJump L2. `starts` (P,3,H,W): images the attacker owns to start from (targeted needs one that the
    model labels as the target; untargeted uses them when noise does not meet the goal)."""

    name = "hopskipjump"
    title = "HopSkipJump L2 (Chen et al. 2020)"
    summary = "Decision-based: sees only the top-1 label; walks along the decision boundary toward the original."
    decision_based = True
    params = (
        Param(
            "queries",
            2000,
            1,
            100000,
            "Query budget per image (paper: 1K-25K). Targeted needs more: try 10000.",
            integer=True,
        ),
        Param("steps", 40, 1, 10000, "Most iterations (estimate, jump, binary search).", integer=True),
        Param(
            "max_rms",
            0.05,
            0.0001,
            1.0,
            "Success needs the RMS distortion at most this (0.05 ~ 13 grey levels RMS); the start is far past it.",
        ),
        Param(
            "init_evals",
            100,
            2,
            10000,
            "Probes of the first gradient estimate; t-th: x sqrt(t) (paper: 100).",
            integer=True,
        ),
    )

    def __init__(self, *, starts: Tensor | None = None, **values: Any) -> None:
        super().__init__(**values)
        #: (P, 3, H, W) starting images in [0,1] the attacker owns, or None.
        self.starts = starts

    def total_steps(self) -> int:
        return int(self.hparams["steps"])

    def search(
        self, oracle: Oracle, x0: Tensor, goal: Goal, generators: list[torch.Generator], done: Tensor
    ) -> Iterator[Report]:
        n, c, h, w = x0.shape
        d = c * h * w
        all_ids = torch.arange(n, device=x0.device)

        def adversarial(x: Tensor, ids: Tensor) -> Tensor:
            return goal_reached(oracle.labels(x, ids), goal.subset(ids))  # (M,)

        start = self._starting_points(oracle, x0, goal, generators, adversarial)  # (N, 3, H, W)
        best = self._bisect(oracle, x0, start, all_ids, adversarial)  # (N, 3, H, W) on the 8-bit grid
        best_dist = (best - x0).flatten(1).norm(dim=1)  # (N,)
        yield self._report(0, all_ids, x0, best, oracle, last=self.total_steps() == 0)
        delta = math.sqrt(d) / 255.0  # probe radius: about one grey level per value
        for t in range(1, self.total_steps() + 1):
            act = (~done).nonzero()[:, 0]  # (A,)
            if not len(act):
                return
            evals = int(self.hparams["init_evals"] * math.sqrt(t))
            x_adv = best[act]  # (A, 3, H, W)
            grads = torch.zeros_like(x_adv)  # (A, 3, H, W)
            for a, i in enumerate(act.tolist()):
                m = min(evals, int(oracle.remaining(act[a : a + 1])[0]) - _RESERVE)
                if m >= 2:
                    grads[a] = self._gradient(oracle, x_adv[a], i, m, delta, generators[i], adversarial)
            dist = (x_adv - x0[act]).flatten(1).norm(dim=1)  # (A,)
            jumped = self._jump(oracle, x_adv, grads, dist / math.sqrt(t), act, adversarial)  # (A, 3, H, W)
            new = self._bisect(oracle, x0[act], jumped, act, adversarial)  # (A, 3, H, W)
            new_dist = (new - x0[act]).flatten(1).norm(dim=1)  # (A,)
            closer = new_dist < best_dist[act]
            best[act[closer]] = new[closer]
            best_dist[act[closer]] = new_dist[closer]
            yield self._report(t, act, x0, best, oracle, last=t == self.total_steps())

    def _report(self, index: int, ids: Tensor, x0: Tensor, best: Tensor, oracle: Oracle, *, last: bool) -> Report:
        """The closest adversarial image, pulled back onto the RMS budget when it lies beyond it."""
        diff = best[ids] - x0[ids]  # (A, 3, H, W)
        r = diff.flatten(1).pow(2).mean(dim=1).sqrt()  # (A,)
        scale = torch.clamp(self.hparams["max_rms"] / r.clamp_min(1e-12), max=1.0).view(-1, 1, 1, 1)
        shown = x0[ids] + diff * scale
        exhausted = (oracle.remaining(ids) <= _RESERVE + 1) | last
        return Report(index, ids, shown, None, r, exhausted)

    def _starting_points(self, oracle: Oracle, x0: Tensor, goal: Goal, gens: list[torch.Generator], adversarial):
        """(N,3,H,W) one image per sample that already meets the goal, or one AttackError line."""
        n = x0.shape[0]
        start = x0.clone()
        found = torch.zeros(n, dtype=torch.bool, device=x0.device)
        if not goal.targeted:
            for _ in range(_NOISE_TRIES):
                need = (~found & (oracle.remaining(torch.arange(n, device=x0.device)) > 1)).nonzero()[:, 0]
                if not len(need):
                    break
                noise = torch.stack([torch.rand(x0.shape[1:], generator=gens[int(i)]) for i in need]).to(x0.device)
                ok = adversarial(noise, need)
                start[need[ok]] = noise[ok]
                found[need[ok]] = True
        pool = self.starts
        for i in (~found).nonzero()[:, 0].tolist():
            if pool is None or not len(pool):
                break
            ids = torch.full((len(pool),), i, dtype=torch.long, device=x0.device)
            if int(oracle.remaining(ids[:1])[0]) < len(pool):
                break
            ok = adversarial(pool.to(x0.device), ids)  # (P,)
            if bool(ok.any()):
                start[i] = pool[int(ok.nonzero()[0, 0])].to(x0.device)
                found[i] = True
        if not bool(found.all()):
            i = int((~found).nonzero()[0, 0])
            given = 0 if pool is None else len(pool)
            if goal.targeted:
                raise AttackError(
                    f"{self.name} is decision-based: a targeted run starts from an image the model already labels "
                    f"class {int(goal.target[i])}, and none of the {given} starting images is one"
                )
            raise AttackError(
                f"{self.name} found no starting image meeting the goal (noise and {given} given images; "
                f"confidence {goal.confidence:g}): lower the confidence"
            )
        return start

    def _bisect(self, oracle: Oracle, x0: Tensor, x_out: Tensor, ids: Tensor, adversarial) -> Tensor:
        """(A,3,H,W): the 8-bit blend (1-a) x0 + a x_out nearest x0 that was seen adversarial (x_out is)."""
        lo = torch.zeros(len(ids), device=x0.device)  # (A,)
        hi = torch.ones(len(ids), device=x0.device)  # (A,)
        span = (x_out - x0).flatten(1).abs().amax(dim=1)  # (A,) largest value change between the two ends

        def blend(a: Tensor, sel: Tensor) -> Tensor:
            return quantize(x0[sel] + a.view(-1, 1, 1, 1) * (x_out[sel] - x0[sel]))

        for _ in range(_MAX_BISECTIONS):
            go = ((hi - lo) * span > 0.5 / 255) & (oracle.remaining(ids) > 0)  # (A,)
            sel = go.nonzero()[:, 0]
            if not len(sel):
                break
            mid = (lo[sel] + hi[sel]) / 2
            ok = adversarial(blend(mid, sel), ids[sel])
            hi[sel[ok]] = mid[ok]
            lo[sel[~ok]] = mid[~ok]
        return blend(hi, torch.arange(len(ids), device=x0.device))

    def _gradient(
        self, oracle: Oracle, x: Tensor, i: int, m: int, delta: float, g: torch.Generator, adversarial
    ) -> Tensor:
        """(3,H,W) unit estimate of the boundary normal at x from m labelled probes (the paper's eq. 16, with the
        probes' realised 8-bit changes)."""
        s1 = torch.zeros_like(x)  # sum phi * u
        s0 = torch.zeros_like(x)  # sum u
        phi_sum = 0.0
        for lo in range(0, m, _PROBE_CHUNK):
            k = min(_PROBE_CHUNK, m - lo)
            u = torch.randn((k, *x.shape), generator=g).to(x.device)  # (k, 3, H, W)
            u = u / u.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            probe = quantize(x + delta * u)  # (k, 3, H, W) what is sent
            real = probe - x  # (k, 3, H, W)
            phi = adversarial(probe, torch.full((k,), i, dtype=torch.long, device=x.device)).float() * 2 - 1
            s1 += (phi.view(-1, 1, 1, 1) * real).sum(0)
            s0 += real.sum(0)
            phi_sum += float(phi.sum())
        mean_phi = phi_sum / m
        if mean_phi in (1.0, -1.0):
            grad = mean_phi * s0 / m
        else:
            grad = (s1 - mean_phi * s0) / m
        return grad / grad.norm().clamp_min(1e-12)

    def _jump(self, oracle: Oracle, x: Tensor, grads: Tensor, eps: Tensor, ids: Tensor, adversarial) -> Tensor:
        """(A,3,H,W): x + eps * grad with eps halved until the 8-bit image is still adversarial (else x)."""
        out = x.clone()
        eps = eps.clone()  # (A,)
        todo = grads.flatten(1).norm(dim=1) > 0  # (A,)
        for _ in range(_MAX_HALVINGS):
            sel = (todo & (oracle.remaining(ids) > _RESERVE // 2)).nonzero()[:, 0]
            if not len(sel):
                break
            cand = quantize(x[sel] + eps[sel].view(-1, 1, 1, 1) * grads[sel])  # (S, 3, H, W)
            ok = adversarial(cand, ids[sel])
            out[sel[ok]] = cand[ok]
            todo[sel[ok]] = False
            eps[sel[~ok]] /= 2
        return out
