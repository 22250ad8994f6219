"""Models that wrap models, so every registered attack runs on them unchanged: ensembles and random transforms.

An attack only calls `model(x)` for logits (N,K) and differentiates w.r.t. x, so attacking an ensemble, attacking
through input diversity, or attacking the expectation over transformations (EOT) is a matter of what the module's
forward does. The wrapped classifiers stay shared and untouched: no parameter gradient, no hook, no mode change.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attacks import AttackError
from models import Classifier

#: A random differentiable transform: (M,3,H,W) images and a generator -> (M,3,H,W) images.
RandomTransform = Callable[[Tensor, torch.Generator], Tensor]


def resize_batch(x: Tensor, size: int) -> Tensor:
    """(N,3,H,W) -> (N,3,size,size), bilinear and differentiable; identity when the size already matches."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=size < x.shape[-1])


class MeanLogitEnsemble(nn.Module):
    """Several classifiers attacked as one: the mean of their logits (Liu et al. 2017, arXiv:1611.02770;
    "ensemble in logits", Dong et al. 2018). Models of another input size get the input resized to their own.

    Why: a perturbation that fools several architectures at once has to exploit what they share, which is also
    what an unseen model is likely to share - the seed Q&A's "use an ensemble", turned around by the attacker.
    """

    def __init__(self, members: Sequence[Classifier], *, input_size: int | None = None) -> None:
        super().__init__()
        if not members:
            raise AttackError("an ensemble needs at least one model")
        self._members = list(members)  # a plain list: the shared classifiers are not registered as submodules
        self.input_size = int(input_size or members[0].input_size)
        self.categories = members[0].categories
        self.name = "+".join(m.name for m in members)
        self.spec = getattr(members[0], "spec", None)
        self.register_buffer("_anchor", torch.zeros(0, device=members[0].device))

    @property
    def members(self) -> list[Classifier]:
        return list(self._members)

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    def forward(self, x: Tensor) -> Tensor:
        """(N,3,S,S) pixels in [0,1] -> (N,K) mean logits."""
        logits = [m(resize_batch(x, m.input_size)) for m in self._members]  # each (N, K)
        return torch.stack(logits).mean(0)

    @torch.no_grad()
    def probabilities(self, x: Tensor, batch_size: int = 32) -> Tensor:
        """(N,3,S,S) -> (N,K) softmax of the mean logits, in chunks."""
        return torch.cat([self(x[i : i + batch_size]).softmax(-1) for i in range(0, len(x), batch_size)])


class RandomTransformModel(nn.Module):
    """The model applied to `samples` random transforms of each input; returns log of the mean probability.

    Why log-mean-probability: its softmax is exactly the average probability over the sampled transforms, so the
    attack's loss (cross-entropy of the target) is -log E_t[p(target | t(x))] and its success check asks whether the
    target wins on average - the expectation over transformation (Athalye et al. 2018, arXiv:1707.07397). The
    gradient is the average of the per-transform gradients, weighted by how much each transform still resists.
    Each forward draws new transforms from the wrapper's own generator, so a run is reproducible under its seed.
    """

    def __init__(
        self, model: nn.Module, transform: RandomTransform, *, samples: int = 1, seed: int = 0, fixed: bool = False
    ) -> None:
        super().__init__()
        if not 1 <= samples <= 256:
            raise AttackError(f"samples must be between 1 and 256, got {samples}")
        self.__dict__["_model"] = model  # not a registered submodule: .train()/.to() on the wrapper cannot reach it
        self.transform = transform
        self.samples = int(samples)
        self.seed = int(seed)
        #: fixed=True draws the same transforms at every forward: a deterministic estimate of the expectation that
        #: can judge when an EOT attack may stop, where fresh draws would let it stop on a lucky set of views.
        self.fixed = bool(fixed)
        self.generator = torch.Generator().manual_seed(seed)
        self.input_size = getattr(model, "input_size", None)
        self.categories = getattr(model, "categories", ())
        self.name = getattr(model, "name", type(model).__name__)

    @property
    def model(self) -> nn.Module:
        return self._model

    def forward(self, x: Tensor) -> Tensor:
        """(N,3,H,W) -> (N,K) log of the mean softmax over `samples` random transforms of each image."""
        n = x.shape[0]
        if self.fixed:  # the same views for every image, whatever the batch it comes in (a judge sees subsets)
            return torch.cat([self._views(x[i : i + 1]) for i in range(n)])  # (N, K)
        return self._views(x)

    def _views(self, x: Tensor) -> Tensor:
        """(N,3,H,W) -> (N,K) log mean probability over `samples` transforms drawn for this call."""
        n = x.shape[0]
        if self.fixed:
            self.generator.manual_seed(self.seed)
        xs = self.transform(x.repeat(self.samples, 1, 1, 1), self.generator)  # (S*N, 3, H, W), sample-major
        logp = self._model(xs).log_softmax(-1).view(self.samples, n, -1)  # (S, N, K)
        return torch.logsumexp(logp, dim=0) - math.log(self.samples)  # (N, K)


def resize_pad(x: Tensor, gen: torch.Generator, *, prob: float = 0.5, low: float = 0.9) -> Tensor:
    """Input diversity (Xie et al. 2019, arXiv:1803.06978): with probability `prob` per image, shrink it to a random
    side in [low*H, H) and zero-pad it back to H at a random offset. (M,3,H,W) -> (M,3,H,W), differentiable."""
    m, _, h, w = x.shape
    apply = torch.rand(m, generator=gen) < prob
    sides = torch.randint(max(1, int(low * h)), h, (m,), generator=gen) if h > 1 else torch.ones(m, dtype=torch.long)
    out = []
    for i in range(m):
        if not bool(apply[i]):
            out.append(x[i : i + 1])
            continue
        s = int(sides[i])
        small = F.interpolate(x[i : i + 1], size=(s, s * w // h), mode="bilinear", align_corners=False)
        top = int(torch.randint(0, h - s + 1, (1,), generator=gen))
        left = int(torch.randint(0, w - small.shape[-1] + 1, (1,), generator=gen))
        out.append(F.pad(small, (left, w - small.shape[-1] - left, top, h - s - top)))
    return torch.cat(out)  # (M, 3, H, W)


class DiverseInput(RandomTransformModel):
    """Input diversity as a model wrapper: every forward sees randomly resized-and-padded copies of the input."""

    def __init__(self, model: nn.Module, *, prob: float = 0.5, low: float = 0.9, samples: int = 1, seed: int = 0):
        if not 0.0 <= prob <= 1.0:
            raise AttackError(f"diversity probability must be between 0 and 1, got {prob}")
        if not 0.5 <= low < 1.0:
            raise AttackError(f"diversity lower scale must be in [0.5, 1), got {low}")
        super().__init__(model, lambda x, g: resize_pad(x, g, prob=prob, low=low), samples=samples, seed=seed)
