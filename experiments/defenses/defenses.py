"""Input-transformation defenses as model wrappers, the adaptive attacker's view of each, and their evaluation.

Seed 001 proposes ensembles and smoothing the input; seed 002 denoising the input. Each defense here is an
nn.Module with the classifier interface (input_size, categories, name, device, probabilities), so every registered
attack and experiment runs on it unchanged: `forward` is the DEFENDED classifier. The lesson the numbers show is
Athalye, Carlini & Wagner (ICML 2018, arXiv:1802.00420): a defense that only hides the gradient falls to an
attacker who knows it. `attackable(mode)` returns the module such an attacker differentiates:

* BPDA (straight-through, identity backward) for the non-differentiable JPEG, median and bit-depth transforms:
  forward = the defended model, backward = the model's gradient at the transformed image;
* EOT (expectation over the defense's own randomness) for random resize-and-pad (Xie et al., ICLR 2018);
* plain gradients for the differentiable ones (Gaussian smoothing, the ensemble).

Public API
----------
DEFENSES: dict[str, type[Defense]]                 every defense by registry name (tests iterate over it)
make_defense(name, model, **params) -> Defense      checked parameters; bad ones raise one AttackError line
Defense.forward(x (N,3,H,W) in [0,1]) -> (N,K)      logits of the defended classifier (log-probabilities for the
                                                    random and ensemble defenses, whose softmax is the mean prob.)
Defense.transform(x) -> x'                          the input transformation alone (random ones: one draw)
Defense.attackable(mode="adaptive", *, samples=4, seed=0) -> nn.Module
    modes: "plain" (the bare model: the attacker who ignores the defense), "defended" (the defended model as it
    is: zero/obfuscated gradients), "adaptive" (the defense's own: BPDA, EOT or exact), "bpda", "eot"
bit_depth(x, bits), median_filter(x, size), jpeg_batch(x, quality)   the transforms as functions
attack_in_chunks(attack, model, x, goal, *, chunk, seed, keys=None, attacked=None, judge=None,
                 on_step=None) -> Iterator[(done, 8-bit adversarial chunk)]   run_batch per chunk, per-image seeds
evaluate_defenses(model, images=None, *, defenses=None, attack="relabel", attack_params=None, full_budget=False,
                  eot_samples=4, seed=0, chunk=8, blackbox=None) -> Iterator[DefenseProgress]
    each progress carries the report so far (.report); the last one is complete. DefenseReport.to_json(), .table()

Choices (documented here once): the default attack is the paper's relabelling (seed 004, Robinson & Graham 2015)
toward a random class per image (seeded), RMS cap 0.01, stopped at its first success on the model it attacks - the
least perturbation that works, for the bare attacker and the adaptive one alike (both within the same cap).
`full_budget=True` runs every step instead (early_stop=False), e.g. PGD L-inf eps 4/255 as most libraries do; on
Lite0 such a full-budget perturbation already survives every transformation here without any adaptation.
Success on the bare model is judged by the plain model on the saved 8-bit image. Success against a defense is
judged by the DEFENDED classifier on the saved 8-bit image: deterministic for JPEG/median/Gaussian/bits/ensemble
(whose BPDA/exact forward is that classifier, so the adaptive attacker's first success is the judge's); for random
resize-and-pad the defended prediction is the mean probability over `draws` FIXED random views (its forward, like
EOT(fixed=True) on the Robustness page; seeded by the run's seed + 7919, the same views at every call), drawn apart
from the attacker's EOT, whose gradient averages `eot_samples` fresh views. Every adaptive attack stops when that
defended classifier is fooled (run_batch's judge), so the row is one reproducible verdict per image from its seed,
and the row states its number of views (judge_views). Random starts are per image (sample_seed(seed, image id)).
Rates against a defense count only images the defended model classifies correctly when clean (otherwise the
defense, not the attack, did the damage); what the adaptive images do to the plain model is reported beside it.

The black-box attacker (`blackbox=`: Square Attack L-inf's parameters, Andriushchenko et al. 2020) is the third
attacker beside the one who ignores the defense and the adaptive one: it never sees a gradient, it queries the
defended classifier itself (8-bit images, attacks.queries.Oracle) and keeps what lowers its margin, so a defense
that only masks gradients (JPEG, bit depth, median) does not stop it; it pursues the same goal as the other
columns and stops when the defended classifier is fooled. Its row holds how many it fooled and the median/mean
queries of those successes; the report holds the same attacker on the bare model (`blackbox_bare_fooled`) as the
baseline. Random resize-and-pad answers it with its fixed views, like every verdict here.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from attacks import Attack, AttackError, Goal, Param, Step, make_attack
from attacks.runner import run_batch, sample_seed
from experiments.common import check_number
from experiments.fooling.synthesis import gaussian_blur
from experiments.robustness import robustness
from images.imagesets import LabelledImage, labelled_set
from models import OFFLINE_MODELS, load_model, pil_to_tensor
from models.wrappers import RandomTransformModel, resize_batch, resize_pad

# --- the transforms as functions ------------------------------------------------------------------------------


def bit_depth(x: Tensor, bits: int) -> Tensor:
    """Feature squeezing's colour-depth reduction (Xu et al. 2018): round(x*(2^b-1))/(2^b-1), (N,3,H,W)."""
    levels = 2**bits - 1
    return torch.round(x * levels) / levels  # (N, 3, H, W)


def _symmetric_index(n: int, before: int, after: int, device: torch.device) -> Tensor:
    """Indices of a half-sample symmetric padding (numpy 'symmetric' = scipy.ndimage 'reflect': d c b a | a b c d)."""
    return torch.from_numpy(np.pad(np.arange(n), (before, after), mode="symmetric")).to(device)


def median_filter(x: Tensor, size: int) -> Tensor:
    """Per-channel median over a size x size window, exactly as scipy.ndimage.median_filter(mode='reflect').

    Even sizes (feature squeezing's 2x2) follow scipy: the window reaches size//2 back and the rank is
    (size*size)//2, the upper of the two middle values. (N,C,H,W) -> (N,C,H,W).
    """
    lo, hi = size // 2, size - 1 - size // 2
    h, w = x.shape[-2:]
    xp = x.index_select(2, _symmetric_index(h, lo, hi, x.device)).index_select(3, _symmetric_index(w, lo, hi, x.device))
    patches = xp.unfold(2, size, 1).unfold(3, size, 1)  # (N, C, H, W, size, size)
    flat = patches.reshape(*patches.shape[:4], size * size)  # (N, C, H, W, size^2)
    return flat.kthvalue((size * size) // 2 + 1, dim=-1).values  # (N, C, H, W)


def jpeg_batch(x: Tensor, quality: int) -> Tensor:
    """robustness.jpeg_batch with a zero gradient attached (like rounding): what a naive attacker on JPEG sees.
    (N,3,H,W) -> (N,3,H,W)."""
    return robustness.jpeg_batch(x.detach(), int(quality)) + 0.0 * x  # values: JPEG's, gradient: zero


# --- the classifier interface shared by every wrapper ---------------------------------------------------------


class _Wrapped(nn.Module):
    """The classifier interface around a wrapped model kept out of the module tree (shared, never moved or
    switched to train mode by the wrapper)."""

    def __init__(self, model: nn.Module, name: str) -> None:
        super().__init__()
        self.__dict__["model"] = model
        self.input_size = getattr(model, "input_size", None)
        self.categories = getattr(model, "categories", ())
        self.spec = getattr(model, "spec", None)
        self.name = name

    @property
    def device(self) -> torch.device:
        dev = getattr(self.model, "device", None)
        return dev if isinstance(dev, torch.device) else next(self.model.parameters()).device

    @torch.no_grad()
    def probabilities(self, x: Tensor, batch_size: int = 32) -> Tensor:
        """(N,3,H,W) -> (N,K) softmax of forward, in chunks."""
        return torch.cat(
            [self(x[i : i + batch_size].to(self.device)).softmax(-1) for i in range(0, len(x), batch_size)]
        )


class Defense(_Wrapped):
    """A transformation placed in front of a classifier; forward is the defended classifier's logits.

    Subclasses declare `params` (attacks.Param, checked like an attack's), `adaptive` (how the adaptive attacker
    gets gradients: "bpda", "eot" or "exact") and `transform`.
    """

    key: ClassVar[str]
    title: ClassVar[str]
    summary: ClassVar[str]
    params: ClassVar[tuple[Param, ...]]
    adaptive: ClassVar[str]

    def __init__(self, model: nn.Module, **values: Any) -> None:
        super().__init__(model, f"{getattr(model, 'name', type(model).__name__)}+{self.key}")
        known = {p.name for p in self.params}
        unknown = sorted(set(values) - known)
        if unknown:
            raise AttackError(f"defense {self.key} has no parameter {', '.join(unknown)}")
        self.hparams: dict[str, float] = {}
        for p in self.params:
            value = values.get(p.name, p.default)
            self.hparams[p.name] = check_number(
                p.name, p.default if value is None else value, p.low, p.high, integer=p.integer
            )

    def transform(self, x: Tensor) -> Tensor:
        """(N,3,H,W) in [0,1] -> the transformed input the model sees."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """(N,3,H,W) pixels in [0,1] -> (N,K) logits of the defended classifier."""
        return self.model(self.transform(x))

    def attackable(self, mode: str = "adaptive", *, samples: int = 4, seed: int = 0) -> nn.Module:
        """The module an attacker differentiates. plain: the bare model; defended: this module as it is (its
        gradient is zero or misleading for JPEG/bits); adaptive: this defense's own method (BPDA, EOT, exact)."""
        modes = ("plain", "defended", "adaptive", "bpda", "eot")
        if mode not in modes:
            raise AttackError(f"unknown attacker mode {mode!r}; choose one of: {', '.join(modes)}")
        if mode == "plain":
            return self.model
        if mode == "defended":
            return self
        method = self.adaptive if mode == "adaptive" else mode
        if method == "exact":
            return self
        if method == "bpda" and self.adaptive in ("bpda", "exact") and self.key != "ensemble":
            return BPDA(self)
        if method == "eot" and self.adaptive == "eot":
            return self._eot(check_number("EOT samples", samples, 1, 256, integer=True), seed)
        raise AttackError(f"defense {self.key} cannot be attacked with {mode}; its adaptive attack is {self.adaptive}")

    def _eot(self, samples: int, seed: int) -> nn.Module:
        raise NotImplementedError


class BPDA(_Wrapped):
    """Backward Pass Differentiable Approximation with the identity (Athalye et al. 2018, sec. 4.1): the forward
    pass is the defended classifier exactly, the backward pass treats the transform as x -> x, so the gradient is
    the model's own gradient at the transformed image."""

    def __init__(self, defense: Defense) -> None:
        super().__init__(defense.model, f"{defense.name} (BPDA)")
        self.__dict__["defense"] = defense

    def forward(self, x: Tensor) -> Tensor:
        t = self.defense.transform(x.detach())  # (N, 3, H, W)
        return self.model(x + (t - x).detach())  # value: model(T(x)); d/dx: the model's gradient at T(x)


class JPEGDefense(Defense):
    key = "jpeg"
    title = "JPEG compression"
    summary = "Save the image as JPEG and read it back before classifying (Das et al. 2017; Guo et al. 2018)."
    params = (Param("quality", 75, 1, 95, "JPEG quality (PIL).", integer=True),)
    adaptive = "bpda"

    def transform(self, x: Tensor) -> Tensor:
        return jpeg_batch(x, int(self.hparams["quality"]))


class MedianDefense(Defense):
    key = "median"
    title = "Median smoothing"
    summary = "Replace every value by the median of its size x size neighbourhood (Xu et al. 2018)."
    params = (Param("size", 3, 2, 9, "Window side in pixels.", "px", integer=True),)
    adaptive = "bpda"

    def transform(self, x: Tensor) -> Tensor:
        return median_filter(x, int(self.hparams["size"]))


class GaussianDefense(Defense):
    key = "gaussian"
    title = "Gaussian smoothing"
    summary = "Blur the image with a Gaussian (seed 001: 'smooth the input'); differentiable, so attacked exactly."
    params = (Param("sigma", 1.0, 0.2, 5.0, "Standard deviation in pixels.", "px"),)
    adaptive = "exact"

    def transform(self, x: Tensor) -> Tensor:
        return gaussian_blur(x, self.hparams["sigma"])


class BitDepthDefense(Defense):
    key = "bits"
    title = "Bit-depth reduction"
    summary = "Keep only `bits` bits of each colour value (feature squeezing, Xu et al. 2018)."
    params = (Param("bits", 5, 1, 7, "Bits per colour value kept.", "bits", integer=True),)
    adaptive = "bpda"

    def transform(self, x: Tensor) -> Tensor:
        return bit_depth(x, int(self.hparams["bits"]))


#: Xie et al. resize 299-px images to a random side in [299, 331) and pad to 331: the picture covers 299/331..1 of
#: the canvas. Here the canvas is the model's own input size, so fixed-size models work too.
XIE_SCALE = 331 / 299


class ResizePadDefense(Defense):
    key = "resize-pad"
    title = "Random resize and pad"
    summary = "Shrink to a random size and zero-pad at a random place, averaged over draws (Xie et al. 2018)."
    params = (
        Param("max_scale", round(XIE_SCALE, 4), 1.01, 1.5, "Canvas side / smallest picture side (Xie: 331/299).", "x"),
        Param("draws", 4, 1, 64, "Random draws averaged per prediction (mean probability).", integer=True),
    )
    adaptive = "eot"

    def __init__(self, model: nn.Module, *, seed: int = 0, **values: Any) -> None:
        super().__init__(model, **values)
        self.seed = seed
        # fixed=True: the same `draws` views of every image at every call, so the defended verdict on an image is
        # one number (fresh views flipped an image between two calls) and a row is reproducible from its seed.
        self._averaged = RandomTransformModel(
            model, self._draw, samples=int(self.hparams["draws"]), seed=seed, fixed=True
        )

    def _draw(self, x: Tensor, gen: torch.Generator) -> Tensor:
        return resize_pad(x, gen, prob=1.0, low=1.0 / self.hparams["max_scale"])  # (M, 3, H, W)

    def transform(self, x: Tensor) -> Tensor:
        """One random draw (from the defense's own generator)."""
        return self._draw(x, self._averaged.generator)

    def forward(self, x: Tensor) -> Tensor:
        """(N,K) log of the mean probability over the defense's `draws` fixed random views (seeded by `seed`)."""
        return self._averaged(x)

    def _eot(self, samples: int, seed: int) -> nn.Module:
        eot = RandomTransformModel(self.model, self._draw, samples=samples, seed=seed)
        eot.name = f"{self.name} (EOT x{samples})"
        return eot


class MeanProbabilityEnsemble(Defense):
    """The seed Q&A's 'ensemble of networks': the mean of the members' probabilities (log of it as logits).

    members: classifiers (or registry names) added to `model`; default: every other offline model.
    """

    key = "ensemble"
    title = "Ensemble of models (mean probabilities)"
    summary = "Average the probabilities of several networks (seed 001); attacked through all of them at once."
    params = ()
    adaptive = "exact"

    def __init__(self, model: nn.Module, *, members: Sequence[nn.Module | str] | None = None, **values: Any) -> None:
        super().__init__(model, **values)
        device = self.device
        if members is None:
            members = [n for n in OFFLINE_MODELS if n != getattr(model, "name", None)]
        others = [load_model(m, device=device) if isinstance(m, str) else m for m in members]
        if not others:
            raise AttackError("an ensemble defense needs at least one other model")
        self._members = [model, *others]
        self.name = "+".join(getattr(m, "name", type(m).__name__) for m in self._members)

    @property
    def members(self) -> list[nn.Module]:
        return list(self._members)

    def transform(self, x: Tensor) -> Tensor:
        return x

    def forward(self, x: Tensor) -> Tensor:
        """(N,3,S,S) -> (N,K) log of the mean probability; members of another input size see x resized."""
        logp = [
            m(resize_batch(x, m.input_size) if getattr(m, "input_size", None) else x).log_softmax(-1)
            for m in self._members
        ]
        return torch.logsumexp(torch.stack(logp), dim=0) - math.log(len(logp))  # (N, K)


#: Every defense by registry name. Tests iterate over this dict.
DEFENSES: dict[str, type[Defense]] = {
    cls.key: cls
    for cls in (JPEGDefense, MedianDefense, GaussianDefense, BitDepthDefense, ResizePadDefense, MeanProbabilityEnsemble)
}


def make_defense(name: str, model: nn.Module, **params: Any) -> Defense:
    """Build a registered defense around `model`; unknown names and bad parameters raise one AttackError line."""
    try:
        cls = DEFENSES[name]
    except KeyError:
        raise AttackError(f"unknown defense {name!r}; choose one of: {', '.join(DEFENSES)}") from None
    return cls(model, **params)


# --- the evaluation -------------------------------------------------------------------------------------------


@dataclass
class DefenseRow:
    """One defense on n images the bare model classifies correctly. Counts, so a table can show x/n."""

    defense: str
    title: str
    params: dict[str, float]
    adaptive_method: str
    images: int
    clean_correct: int  # the defended classifier is right on the clean image
    bare_fooled: int  # the plain model on the bare model's adversarial image (over `images`)
    nonadaptive_fooled: int  # the defended model on the bare model's adversarial image (over clean_correct)
    adaptive_fooled: int | None  # the defended model on the adaptive attacker's image (over clean_correct)
    adaptive_fooled_plain: int | None  # the plain model on the adaptive attacker's image (over `images`); None: not run
    seconds: float
    #: random defenses: the fixed views the defended verdict averages; None: a deterministic defense
    judge_views: int | None = None
    #: the score-based black-box attacker (Square L-inf) querying the defended classifier: images it fools (over
    #: clean_correct), and the median / mean queries of those successes; None: not run (or no success)
    blackbox_fooled: int | None = None
    blackbox_queries_median: float | None = None
    blackbox_queries_mean: float | None = None

    @staticmethod
    def _rate(k: int | None, n: int) -> float | None:
        return k / n if n and k is not None else None

    @property
    def clean_accuracy(self) -> float | None:
        return self._rate(self.clean_correct, self.images)

    @property
    def nonadaptive_rate(self) -> float | None:
        return self._rate(self.nonadaptive_fooled, self.clean_correct)

    @property
    def adaptive_rate(self) -> float | None:
        return self._rate(self.adaptive_fooled, self.clean_correct)

    @property
    def blackbox_rate(self) -> float | None:
        return self._rate(self.blackbox_fooled, self.clean_correct)

    def to_json(self) -> dict[str, Any]:
        return {
            "defense": self.defense,
            "title": self.title,
            "params": self.params,
            "adaptive_method": self.adaptive_method,
            "images": self.images,
            "clean_correct": self.clean_correct,
            "clean_accuracy": self.clean_accuracy,
            "bare_fooled": self.bare_fooled,
            "bare_success_rate": self._rate(self.bare_fooled, self.images),
            "nonadaptive_fooled": self.nonadaptive_fooled,
            "nonadaptive_success_rate": self.nonadaptive_rate,
            "adaptive_fooled": self.adaptive_fooled,
            "adaptive_success_rate": self.adaptive_rate,
            "adaptive_fooled_plain": self.adaptive_fooled_plain,
            "seconds": self.seconds,
            "judge_views": self.judge_views,
            "blackbox_fooled": self.blackbox_fooled,
            "blackbox_success_rate": self.blackbox_rate,
            "blackbox_queries_median": self.blackbox_queries_median,
            "blackbox_queries_mean": self.blackbox_queries_mean,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DefenseRow:
        """The row back from to_json (its derived rates are recomputed from the counts, never read)."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass
class DefenseReport:
    """Every finished defense row for one model, attack and image set."""

    model: str
    attack: str
    attack_params: dict[str, Any]
    targeted: bool
    images_total: int  # labelled images given
    images: int  # of which the bare model classifies correctly (the ones attacked)
    bare_fooled: int
    seed: int
    rows: list[DefenseRow] = field(default_factory=list)
    #: the black-box attacker's name and parameters (every hyperparameter), None when it was not run
    blackbox_attack: str | None = None
    blackbox_params: dict[str, Any] | None = None
    #: the same black-box attacker on the bare model (over `images`): the baseline of the rows' blackbox_fooled
    blackbox_bare_fooled: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "attack": self.attack,
            "attack_params": self.attack_params,
            "targeted": self.targeted,
            "images_total": self.images_total,
            "images": self.images,
            "bare_fooled": self.bare_fooled,
            "seed": self.seed,
            "blackbox_attack": self.blackbox_attack,
            "blackbox_params": self.blackbox_params,
            "blackbox_bare_fooled": self.blackbox_bare_fooled,
            "rows": [r.to_json() for r in self.rows],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DefenseReport:
        """A report saved by to_json (the shipped one in data/defenses/) back as the page's table and bars take it.
        Fields with a default may be absent (a report saved before the black-box attacker existed); others may not."""
        head = {
            f.name: data[f.name]
            for f in fields(cls)
            if f.name != "rows" and (f.name in data or f.default is MISSING and f.default_factory is MISSING)
        }
        return cls(**head, rows=[DefenseRow.from_json(r) for r in data["rows"]])

    def table(self) -> str:
        """A plain-text table (CLI): counts as k/n so small sets are read for what they are."""
        bb = self.blackbox_attack is not None
        head = f"{'defense':<28} {'clean acc':>10} {'bare':>8} {'non-adapt':>10} {'adaptive':>10}"
        head += f" {'black-box':>10} {'med q':>6}  adaptive by" if bb else "  adaptive by"
        lines = [f"{self.model}, {self.attack} {self.attack_params}, {self.images}/{self.images_total} images"]
        if bb:
            params = ", ".join(f"{k}={v:g}" for k, v in (self.blackbox_params or {}).items())
            lines.append(
                f"black-box: {self.blackbox_attack} ({params}) querying the defended classifier; on the bare model "
                f"it fools {self.blackbox_bare_fooled}/{self.images}"
            )
        lines.append(head)
        for r in self.rows:
            params = ", ".join(f"{k}={v:g}" for k, v in r.params.items())
            med = "-" if r.blackbox_queries_median is None else f"{r.blackbox_queries_median:.0f}"
            lines.append(
                f"{(r.defense + (' ' + params if params else '')):<28} {r.clean_correct:>4}/{r.images:<5}"
                f" {r.bare_fooled:>3}/{r.images:<4} {r.nonadaptive_fooled:>4}/{r.clean_correct:<5}"
                f" {_count(r.adaptive_fooled, r.clean_correct)}"
                + (f" {_count(r.blackbox_fooled, r.clean_correct)} {med:>6}" if bb else "")
                + f"  {r.adaptive_method}"
                + (f", judged on {r.judge_views} fixed views" if r.judge_views else "")
            )
        return "\n".join(lines)


def _count(k: int | None, n: int) -> str:
    return f"{k:>4}/{n:<5}" if k is not None else f"{'-':>4} {'':<5}"


@dataclass
class DefenseProgress:
    """A unit of work finished: `stage` names it; `report` holds every row finished so far (Stop keeps it)."""

    stage: str
    done: int
    total: int
    report: DefenseReport


def _met(probs: Tensor, goal: Goal) -> Tensor:
    return goal.met(probs)  # (N,) bool; untargeted: top != source; targeted: top == target (with confidence)


def attack_in_chunks(
    attack: Attack,
    model: nn.Module,
    x: Tensor,
    goal: Goal,
    *,
    chunk: int,
    seed: int,
    keys: Sequence[object] | None = None,
    attacked: nn.Module | None = None,
    judge: nn.Module | None = None,
    on_step: Callable[[Step], None] | None = None,
) -> Iterator[tuple[int, Tensor]]:
    """Run `attack` on x (N,3,H,W) in chunks of `chunk` images through attacks.runner.run_batch; yield (images done
    so far, the chunk's saved 8-bit adversarial images).

    Sample i's random start comes from sample_seed(seed, keys[i]) (keys: default the index in x), so a sample's
    image never depends on the chunk it falls in. `model` judges early stopping unless `judge` is given; the
    gradient flows through `attacked` when given (see run_batch)."""
    keys = list(range(len(x))) if keys is None else list(keys)
    if len(keys) != len(x):
        raise AttackError(f"{len(keys)} keys for {len(x)} images")
    for lo in range(0, len(x), chunk):
        idx = torch.arange(lo, min(lo + chunk, len(x)), device=x.device)
        seeds = [sample_seed(seed, keys[i]) for i in idx.tolist()]
        finished = run_batch(
            attack, model, x[idx], goal.subset(idx), seeds=seeds, attacked=attacked, judge=judge, on_step=on_step
        )
        yield int(idx[-1]) + 1, finished.x_adv  # (n, 3, H, W)


def evaluate_defenses(
    model: nn.Module,
    images: Sequence[LabelledImage] | None = None,
    *,
    defenses: Mapping[str, Mapping[str, Any]] | Sequence[str] | None = None,
    attack: str = "relabel",
    attack_params: Mapping[str, float] | None = None,
    full_budget: bool = False,
    adaptive: bool = True,
    eot_samples: int = 4,
    seed: int = 0,
    chunk: int = 8,
    on_step: Callable[[Step], None] | None = None,
    blackbox: Mapping[str, float] | None = None,
) -> Iterator[DefenseProgress]:
    """For each defense: clean accuracy of the defended model, and the attack's success against the bare model,
    against the defense by a non-adaptive attacker (the bare model's adversarial image passed through it), and by
    an adaptive one (BPDA / EOT / exact gradients). See the module docstring for how success is judged.

    images: default the shipped labelled samples; only those the bare model classifies correctly are attacked.
    defenses: names (default parameters) or {name: params}; default every registered defense.
    attack: a registered attack; untargeted when it can be, else toward a random class per image (seeded).
    on_step: called after every attack step (a page's Stop takes effect there; ui.run.progress).
    adaptive=False skips the adaptive attacker (its columns are None): the cheap question "does the defense stop an
    attacker who ignores it?" alone.
    blackbox: Square L-inf's hyperparameters ({} for its defaults) to add the score-based black-box attacker, which
    queries each defended classifier (and the bare model, for the report's baseline); None skips it.
    """
    eot_samples = check_number("EOT samples", eot_samples, 1, 256, integer=True)
    chunk = check_number("chunk", chunk, 1, 1024, integer=True)
    atk = make_attack(attack, early_stop=not full_budget, **dict(attack_params or {}))
    bb_atk = None if blackbox is None else make_attack("square", **dict(blackbox))  # bad parameters fail first
    if isinstance(defenses, Mapping):
        chosen = {k: dict(v) for k, v in defenses.items()}
    else:
        chosen = {k: {} for k in (DEFENSES if defenses is None else defenses)}
    built = {name: make_defense(name, model, **p) for name, p in chosen.items()}  # bad names/params fail first
    for name, d in built.items():
        if isinstance(d, ResizePadDefense):  # the judge's randomness: seeded, never the attacker's generator
            built[name] = make_defense(name, model, seed=seed + 7919, **chosen[name])
    images = list(images) if images is not None else labelled_set("samples", model)
    device = model.device
    x_all = torch.cat([pil_to_tensor(im.image) for im in images]).to(device)  # (M, 3, S, S)
    labels_all = torch.tensor([im.label for im in images], device=device)  # (M,)
    correct = model.probabilities(x_all).argmax(1).to(device) == labels_all
    x0, labels = x_all[correct], labels_all[correct]  # (N, 3, S, S), (N,)
    n = len(x0)
    if n == 0:
        raise AttackError(f"the model classifies none of the {len(images)} labelled images correctly")
    ids = [im.id for im, ok in zip(images, correct.tolist(), strict=True) if ok]  # the attacked images' keys
    targeted = not atk.supports_untargeted
    target = None
    if targeted:  # per image from its id, so an image's target does not depend on which others are in the set
        k = len(model.categories)
        offsets = torch.tensor([1 + sample_seed(seed, i, "target") % (k - 1) for i in ids])  # (N,) in 1..k-1
        target = ((labels.cpu() + offsets) % k).to(device)  # never the label
    goal = Goal(labels, target)
    report = DefenseReport(
        model=getattr(model, "name", type(model).__name__),
        attack=atk.name,
        attack_params=dict(atk.hparams),
        targeted=targeted,
        images_total=len(images),
        images=n,
        bare_fooled=0,
        seed=seed,
        blackbox_attack=None if bb_atk is None else bb_atk.name,
        blackbox_params=None if bb_atk is None else dict(bb_atk.hparams),
    )
    n_chunks = math.ceil(n / chunk)
    total = n_chunks * (1 + len(built)) if adaptive else n_chunks + len(built)
    if bb_atk is not None:
        total += n_chunks * (1 + len(built))
    done = 0

    def run_attack(
        attacked: nn.Module | None, judge: nn.Module | None, stage: str
    ) -> Iterator[tuple[Tensor, DefenseProgress]]:
        nonlocal done
        chunks = attack_in_chunks(
            atk, model, x0, goal, chunk=chunk, seed=seed, keys=ids, attacked=attacked, judge=judge, on_step=on_step
        )
        for _, x_adv in chunks:
            done += 1
            yield x_adv, DefenseProgress(stage, done, total, report)  # the saved 8-bit images

    def run_blackbox(oracle: nn.Module, stage: str) -> Iterator[tuple[Tensor, Tensor, DefenseProgress]]:
        """Square querying `oracle` (the defended classifier, or the bare model); yields each chunk's 8-bit images,
        its (n,) query counts and the progress. The oracle also judges when a sample may stop."""
        nonlocal done
        last: list[Step] = []

        def keep(step: Step) -> None:
            last[:] = [step]
            if on_step is not None:
                on_step(step)

        assert bb_atk is not None
        for _, x_adv in attack_in_chunks(bb_atk, oracle, x0, goal, chunk=chunk, seed=seed, keys=ids, on_step=keep):
            done += 1
            queries = last[0].queries
            assert queries is not None
            yield x_adv, queries.to(device), DefenseProgress(stage, done, total, report)

    parts = []
    for x_adv, progress in run_attack(None, None, "attack the bare model"):
        parts.append(x_adv)
        yield progress
    bare_adv = torch.cat(parts)  # (N, 3, S, S)
    report.bare_fooled = int(_met(model.probabilities(bare_adv).to(device), goal).sum())
    if bb_atk is not None:
        parts = []
        for x_adv, _, progress in run_blackbox(model, "black-box attack on the bare model"):
            parts.append(x_adv)
            yield progress
        report.blackbox_bare_fooled = int(_met(model.probabilities(torch.cat(parts)).to(device), goal).sum())
    for name, defense in built.items():
        start = time.perf_counter()
        clean_ok = defense.probabilities(x0).argmax(1).to(device) == labels  # (N,)
        na = _met(defense.probabilities(bare_adv).to(device), goal) & clean_ok
        ad = ad_plain = None
        if adaptive:
            attacked = defense.attackable("adaptive", samples=eot_samples, seed=seed + 1)
            parts = []
            # stops when the defended classifier itself is fooled (for resize-and-pad: its fixed views, not the
            # attacker's fresh EOT draws), so the attacker's first success is the verdict's
            for x_adv, progress in run_attack(attacked, defense, f"adaptive attack on {name}"):
                parts.append(x_adv)
                if len(parts) < n_chunks:
                    yield progress
            adv = torch.cat(parts)  # (N, 3, S, S)
            ad = int((_met(defense.probabilities(adv).to(device), goal) & clean_ok).sum())
            ad_plain = int(_met(model.probabilities(adv).to(device), goal).sum())
        else:
            done += 1
            progress = DefenseProgress(f"non-adaptive check of {name}", done, total, report)
        bb = bb_median = bb_mean = None
        if bb_atk is not None:
            yield progress
            parts, spent = [], []
            for x_adv, queries, progress in run_blackbox(defense, f"black-box attack on {name}"):
                parts.append(x_adv)
                spent.append(queries)
                if len(parts) < n_chunks:
                    yield progress
            fooled = _met(defense.probabilities(torch.cat(parts)).to(device), goal) & clean_ok  # (N,)
            bb = int(fooled.sum())
            if bb:
                q = torch.cat(spent)[fooled].tolist()  # (bb,) queries of the successes
                bb_median, bb_mean = float(statistics.median(q)), float(statistics.fmean(q))
        report.rows.append(
            DefenseRow(
                defense=name,
                title=defense.title,
                params=dict(defense.hparams),
                adaptive_method={"bpda": "BPDA", "eot": f"EOT x{eot_samples}", "exact": "exact gradient"}[
                    defense.adaptive
                ],
                images=n,
                clean_correct=int(clean_ok.sum()),
                bare_fooled=report.bare_fooled,
                nonadaptive_fooled=int(na.sum()),
                adaptive_fooled=ad,
                adaptive_fooled_plain=ad_plain,
                seconds=time.perf_counter() - start,
                judge_views=int(defense.hparams["draws"]) if isinstance(defense, ResizePadDefense) else None,
                blackbox_fooled=bb,
                blackbox_queries_median=bb_median,
                blackbox_queries_mean=bb_mean,
            )
        )
        yield progress
