"""SimBA: Guo, Gardner, You, Wilson & Weinberger, "Simple Black-box Adversarial Attacks" (ICML 2019).
arXiv:1905.07121.

Score-based: pick an orthonormal basis direction q (one pixel value, or one 2-D DCT basis image), try x - eps q; if
the probability of the source class falls (targeted: the target's rises) keep it, else try x + eps q; else move
on. Each direction is used at most once, so the L2 change grows only with the directions kept. Per iteration a
sample costs one query, or two when the first try fails (the authors' count); the first tries of all samples go to
the oracle in one forward, the second tries of those that need one in another. DCT order: the lowest frequencies
first (a `freq_dims` square, then rings of width `stride`), random within each ring (the authors' block_order);
pixel order: random. Every sample draws its own order from its own generator.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

from attacks.base import Goal, Param
from attacks.queries import BlackBoxAttack, Oracle, Report


def dct_matrix(n: int, device: torch.device | None = None) -> Tensor:
    """(n, n) orthonormal DCT-II matrix D: row u is the u-th cosine; the 2-D basis image (u, v) is D[u]^T D[v]."""
    k = torch.arange(n, dtype=torch.float64)
    d = torch.cos(math.pi * (k[None, :] + 0.5) * k[:, None] / n) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d.float().to(device)


def low_frequency_order(c: int, h: int, w: int, g: torch.Generator, freq_dims: int, stride: int) -> Tensor:
    """(c*h*w,) flat indices of (channel, u, v): the freq_dims x freq_dims corner first, then rings of `stride`."""
    u = torch.arange(h)[:, None].expand(h, w)
    v = torch.arange(w)[None, :].expand(h, w)
    rad = torch.maximum(u, v)  # (h, w)
    ring = torch.where(rad < freq_dims, 0, 1 + torch.div(rad - freq_dims, stride, rounding_mode="floor"))
    ring = ring.expand(c, h, w).flatten()  # (c*h*w,)
    tie = torch.rand(c * h * w, generator=g, dtype=torch.float64)
    return torch.argsort(ring.double() * 2 + tie)  # ring first, random inside a ring


class SimBA(BlackBoxAttack):
    """SimBA with the pixel basis (dct=0) or the low-frequency DCT basis (dct=1, SimBA-DCT)."""

    name = "simba"
    title = "SimBA (Guo et al. 2019)"
    summary = "Score-based: steps of +-eps along one random basis direction at a time, kept when p(source) drops."
    params = (
        Param(
            "eps",
            0.5,
            0.001,
            10.0,
            "L2 length of each step in [0,1] pixel units (paper: 0.2; with 8-bit queries a 0.2 DCT step on 224 px "
            "changes no saved value).",
            label="Step length ε (L2, 0-1 pixels)",  # a step, not the budget: SimBA's budget is its queries
        ),
        Param(
            "queries",
            3000,
            1,
            100000,
            "Query budget per image; each direction costs 1 or 2 queries (paper: up to 20000 targeted).",
            integer=True,
        ),
        Param(
            "dct",
            1,
            0,
            1,
            "1: low-frequency DCT basis (SimBA-DCT); 0: single pixel values.",
            integer=True,
            label="Smooth patterns (DCT, 1 = yes)",
        ),
        Param(
            "freq_dims",
            28,
            1,
            1024,
            "DCT: side of the lowest-frequency square tried first (paper: 28).",
            integer=True,
            label="DCT: first square (frequencies)",
        ),
        Param(
            "stride",
            7,
            1,
            1024,
            "DCT: width of each following ring of frequencies (paper: 7).",
            integer=True,
            label="DCT: ring width",
        ),
    )

    def total_steps(self) -> int:
        return self.budget() - 1  # at least one query per iteration after the first

    def search(
        self, oracle: Oracle, x0: Tensor, goal: Goal, generators: list[torch.Generator], done: Tensor
    ) -> Iterator[Report]:
        n, c, h, w = x0.shape
        dims = c * h * w
        eps = float(self.hparams["eps"])
        dct = bool(self.hparams["dct"])
        all_ids = torch.arange(n, device=x0.device)
        cls = goal.source if goal.target is None else goal.target  # (N,) the class whose probability is watched
        sign = 1.0 if goal.target is None else -1.0  # loss: p(source), or -p(target)
        if dct:
            fd = min(int(self.hparams["freq_dims"]), h, w)
            orders = [low_frequency_order(c, h, w, g, fd, int(self.hparams["stride"])) for g in generators]
            dh, dw = dct_matrix(h, x0.device), dct_matrix(w, x0.device)  # (H, H), (W, W)
        else:
            orders = [torch.randperm(dims, generator=g) for g in generators]
        order = torch.stack(orders).to(x0.device)  # (N, dims)
        delta = torch.zeros_like(x0)  # (N, 3, H, W) the kept change, before clipping to [0,1]
        probs = oracle.probs(x0, all_ids)  # (N, K)
        loss = sign * probs.gather(1, cls[:, None])[:, 0]  # (N,)
        yield Report(0, all_ids, x0.clone(), probs.clone(), loss.clone(), oracle.remaining(all_ids) <= 0)
        for k in range(dims):
            act = (~done).nonzero()[:, 0]  # (A,)
            if not len(act):
                return
            coord = order[act, k]  # (A,)
            ch, rest = coord // (h * w), coord % (h * w)
            q = torch.zeros(len(act), c, h, w, device=x0.device)  # (A, 3, H, W) unit basis images
            rows = torch.arange(len(act), device=x0.device)
            if dct:
                q[rows, ch] = dh[rest // w][:, :, None] * dw[rest % w][:, None, :]  # (A, H, W) outer products
            else:
                q.view(len(act), -1)[rows, coord] = 1.0
            base = delta[act]  # (A, 3, H, W)
            left = (x0[act] + base - eps * q).clamp(0.0, 1.0)
            lp = oracle.probs(left, act)  # (A, K) first tries of the whole batch, one forward
            l_loss = sign * lp.gather(1, cls[act, None])[:, 0]  # (A,)
            keep_l = l_loss < loss[act]  # (A,)
            new_delta = torch.where(keep_l.view(-1, 1, 1, 1), base - eps * q, base)
            new_probs = torch.where(keep_l[:, None], lp, probs[act])
            new_loss = torch.where(keep_l, l_loss, loss[act])
            retry = (~keep_l) & (oracle.remaining(act) > 0)  # (A,)
            if bool(retry.any()):
                r = retry.nonzero()[:, 0]
                right = (x0[act[r]] + base[r] + eps * q[r]).clamp(0.0, 1.0)
                rp = oracle.probs(right, act[r])  # (R, K) second tries, one forward
                r_loss = sign * rp.gather(1, cls[act[r], None])[:, 0]  # (R,)
                keep_r = r_loss < loss[act[r]]
                rr = r[keep_r]
                new_delta[rr] = base[rr] + eps * q[rr]
                new_probs[rr] = rp[keep_r]
                new_loss[rr] = r_loss[keep_r]
            delta[act], probs[act], loss[act] = new_delta, new_probs, new_loss
            x_now = (x0[act] + new_delta).clamp(0.0, 1.0)  # (A, 3, H, W) what the sample shows: already queried
            exhausted = (oracle.remaining(act) <= 0) | (k == dims - 1)
            yield Report(k + 1, act, x_now, new_probs.clone(), new_loss.clone(), exhausted)
