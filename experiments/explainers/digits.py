"""A network small enough to train in the browser: scikit-learn's 8x8 digits, a tiny CNN, fooling images grown from
noise (seed 001, Nguyen et al.: "white noise the network calls a 7 with 99.99%", and still so after retraining with
a "not a digit" class), and adversarial training with PGD (Madry et al.) compared with standard training.

Pixels are in [0,1] (the dataset's 0..16 divided by 16), shape (N, 1, 8, 8). Attacks are the engine's own (PGD,
relabelling from noise via experiments.fooling.synthesis), checked on the 8-bit image like every other attack here.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import Tensor, nn

from attacks import PGD, AttackError, Goal
from attacks.runner import run_batch, sample_seed
from experiments.common import check_number, exhaust
from experiments.fooling.synthesis import Progress, synthesize_gradient

DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "digits"
WEIGHTS = {"standard": DATA_DIR / "standard.pt", "robust": DATA_DIR / "robust.pt"}
METRICS_FILE = DATA_DIR / "metrics.json"
DIGITS = tuple(str(d) for d in range(10))
REJECT = "not a digit"
T = TypeVar("T")
EPS_GRID = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)

#: The committed networks' recipes: scripts/train_digits.py and the page's live training use these.
STANDARD = {"epochs": 20, "seed": 0, "eps": 0.0}
ROBUST = {"epochs": 30, "seed": 0, "eps": 0.2}


@dataclass(frozen=True)
class DigitsSplit:
    x_train: Tensor  # (1347, 1, 8, 8) in [0,1]
    y_train: Tensor  # (1347,)
    x_test: Tensor  # (450, 1, 8, 8)
    y_test: Tensor  # (450,)


@functools.lru_cache(maxsize=1)
def digits_split() -> DigitsSplit:
    """The fixed stratified 75/25 split every network here is trained and measured on."""
    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[:, None]  # (1797, 1, 8, 8)
    x_tr, x_te, y_tr, y_te = train_test_split(x, data.target, test_size=0.25, random_state=0, stratify=data.target)
    return DigitsSplit(
        torch.from_numpy(x_tr), torch.from_numpy(y_tr).long(), torch.from_numpy(x_te), torch.from_numpy(y_te).long()
    )


class DigitsCNN(nn.Module):
    """Two 3x3 convolutions, a max-pool and two dense layers (~38k weights, 150 KB); input (N, 1, 8, 8) in [0,1].

    `categories` and `input_size` are what the experiments' synthesis reads from a classifier.
    """

    input_size = 8

    def __init__(self, n_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, n_classes))
        self.categories = DIGITS + ((REJECT,) if n_classes == 11 else ())

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x - 0.5))  # (N, K)


def frozen(net: DigitsCNN) -> DigitsCNN:
    """Eval mode, no parameter gradients: attacks take gradients with respect to the input only."""
    return net.eval().requires_grad_(False)


def load_network(kind: str = "standard") -> DigitsCNN:
    """A committed network (data/digits/<kind>.pt, made by scripts/train_digits.py)."""
    if kind not in WEIGHTS:
        raise AttackError(f"unknown digits network {kind!r}; choose one of: {', '.join(WEIGHTS)}")
    net = DigitsCNN()
    net.load_state_dict(torch.load(WEIGHTS[kind], map_location="cpu", weights_only=True))
    return frozen(net)


def committed_metrics() -> dict:
    """What scripts/train_digits.py recorded for the committed weights (accuracy, command, time)."""
    return json.loads(METRICS_FILE.read_text()) if METRICS_FILE.exists() else {}


def accuracy(net: nn.Module, x: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        return float((net(x).argmax(1) == y).float().mean())


def held_out_accuracy(net: nn.Module) -> float:
    """Accuracy on the fixed test split (450 digits never trained on)."""
    split = digits_split()
    return accuracy(net, split.x_test, split.y_test)


# ------------------------------------------------------------------------------------------- attacks


def pgd(net: nn.Module, x: Tensor, y: Tensor, eps: float, *, steps: int = 10, seed: int = 0, early_stop: bool = True):
    """Untargeted L-inf PGD of radius eps ([0,1] units) with the engine's attack; returns the last Step.

    Step size 2.5 * eps / steps (Madry et al.). early_stop=False runs every step, as adversarial training does.
    """
    eps = check_number("eps", eps, 0.0, 1.0)
    attack = PGD(eps=eps * 255, step_size=2.5 * eps * 255 / steps, steps=steps, random_start=1, early_stop=early_stop)
    seeds = [sample_seed(seed, j) for j in range(len(x))]  # a different random start for each digit of the batch
    return run_batch(attack, net, x, Goal(y), seeds=seeds).last


def robust_accuracy(net: nn.Module, eps: float, *, steps: int = 20, seed: int = 0, n: int | None = None) -> float:
    """Test accuracy under PGD at eps: a digit counts only if no step fooled the network on its 8-bit image."""
    split = digits_split()
    x, y = split.x_test[:n], split.y_test[:n]
    if eps == 0:
        return accuracy(net, x, y)
    return float((~pgd(net, x, y, eps, steps=steps, seed=seed).success).float().mean())


def accuracy_curve(net: nn.Module, eps_grid: Sequence[float] = EPS_GRID, *, steps: int = 20, seed: int = 0):
    """[(eps, robust accuracy)] on the whole test split."""
    return [(float(e), robust_accuracy(net, e, steps=steps, seed=seed)) for e in eps_grid]


@dataclass(frozen=True)
class DigitAttack:
    """The same PGD on the same test digit: original, adversarial image and the network's probabilities."""

    label: int
    image: np.ndarray  # (8, 8)
    adversarial: np.ndarray  # (8, 8) on the 8-bit grid
    probs_before: np.ndarray  # (K,)
    probs_after: np.ndarray  # (K,)

    @property
    def fooled(self) -> bool:
        return int(self.probs_after.argmax()) != self.label


def attack_digit(net: nn.Module, index: int, eps: float, *, steps: int = 20, seed: int = 0) -> DigitAttack:
    split = digits_split()
    index = int(check_number("index", index, 0, len(split.y_test) - 1, integer=True))
    x, y = split.x_test[index : index + 1], split.y_test[index : index + 1]  # (1, 1, 8, 8), (1,)
    with torch.no_grad():
        before = net(x).softmax(-1)[0].numpy()  # (K,)
    if eps == 0:
        return DigitAttack(int(y), x[0, 0].numpy(), x[0, 0].numpy(), before, before)
    last = pgd(net, x, y, eps, steps=steps, seed=seed)
    return DigitAttack(int(y), x[0, 0].numpy(), last.x_adv[0, 0].numpy(), before, last.probs[0].numpy())


# ------------------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainProgress:
    """One finished batch: what a progress bar and a loss line need. `net` is the network being trained (Stop keeps
    it as it is after this batch)."""

    epoch: int  # 1-based
    epochs: int
    batch: int  # 1-based within the epoch
    batches: int
    loss: float  # this batch's training loss (on the PGD examples when adversarial)
    accuracy: float  # this batch's training accuracy (same)
    elapsed: float  # seconds since the start
    net: DigitsCNN = field(repr=False)

    @property
    def fraction(self) -> float:
        return ((self.epoch - 1) * self.batches + self.batch) / (self.epochs * self.batches)


def train(
    *,
    epochs: int = 20,
    seed: int = 0,
    eps: float = 0.0,
    pgd_steps: int = 7,
    batch_size: int = 64,
    lr: float = 3e-3,
    extra: tuple[Tensor, Tensor] | None = None,
    n_classes: int = 10,
) -> Iterator[TrainProgress]:
    """Train a DigitsCNN with Adam, yielding after every batch; deterministic under `seed` (weights, shuffling,
    PGD random starts).

    eps > 0: adversarial training (Madry et al.): every batch is replaced by its PGD examples of radius eps, found
    against the network as it is at that moment. `extra`: more (images, labels) mixed into the training set, e.g.
    fooling images labelled "not a digit" (n_classes=11).
    """
    epochs = int(check_number("epochs", epochs, 1, 500, integer=True))
    eps = check_number("eps", eps, 0.0, 1.0)
    pgd_steps = int(check_number("pgd_steps", pgd_steps, 1, 100, integer=True))
    split = digits_split()
    x, y = split.x_train, split.y_train
    if extra is not None:
        x, y = torch.cat([x, extra[0]]), torch.cat([y, extra[1]])
    torch.manual_seed(seed)
    net = DigitsCNN(n_classes)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    batches = (len(y) + batch_size - 1) // batch_size
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(y), generator=gen)
        for b in range(batches):
            idx = order[b * batch_size : (b + 1) * batch_size]
            xb, yb = x[idx], y[idx]  # (B, 1, 8, 8), (B,)
            if eps > 0:
                net.eval()
                attack_seed = (seed * 1000 + epoch) * 1000 + b
                xb = pgd(net, xb, yb, eps, steps=pgd_steps, seed=attack_seed, early_stop=False).x_adv
                net.train()
            logits = net(xb)  # (B, K)
            loss = nn.functional.cross_entropy(logits, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            acc = float((logits.argmax(1) == yb).float().mean())
            elapsed = time.perf_counter() - start
            yield TrainProgress(epoch, epochs, b + 1, batches, float(loss.detach()), acc, elapsed, net)
    frozen(net)


def train_to_end(**kwargs) -> tuple[DigitsCNN, TrainProgress]:
    """Exhaust train(); returns the frozen network and the last progress."""
    last = exhaust(train(**kwargs))
    return frozen(last.net), last


# ------------------------------------------------------------------------------------------- fooling images


def noise(n: int = 1, *, seed: int = 0) -> Tensor:
    """(n, 1, 8, 8) uniform white noise on the 8-bit grid."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand((n, 1, 8, 8), generator=g) * 255).round() / 255


def grow_fooling(
    net: nn.Module,
    digits: Sequence[int],
    *,
    confidence: float = 0.9999,
    steps: int = 300,
    step_size: float = 4.0,
    seed: int = 0,
) -> Iterator[Progress]:
    """Grow one image per digit from white noise until the network gives it p >= confidence (engine's sign descent
    on the 8-bit image, no distortion cap); yields every step."""
    start = noise(len(digits), seed=seed)
    yield from synthesize_gradient(
        net, list(digits), confidence=confidence, steps=steps, step_size=step_size, seed=seed, start=start
    )


@dataclass(frozen=True)
class FoolingFrame:
    """One step of a fooling image grown from noise, as plain numbers for a page (no tensors)."""

    step: int
    image: np.ndarray  # (8, 8) in [0,1]
    probs: np.ndarray  # (K,)
    reached: bool  # p(digit) >= the confidence on the 8-bit image


def fooling_frames(net: nn.Module, digit: int, *, seed: int = 0, steps: int = 500) -> Iterator[FoolingFrame]:
    """grow_fooling for one digit, every step as a FoolingFrame."""
    for p in grow_fooling(net, [digit], seed=seed, steps=steps):
        yield FoolingFrame(p.index, p.images[0, 0].numpy(), p.probs[0].numpy(), bool(p.success[0]))


def fooling_set(net: nn.Module, *, per_digit: int = 10, seed: int = 0, confidence: float = 0.99) -> Tensor:
    """per_digit fooling images for every digit, grown against `net`: (10 * per_digit, 1, 8, 8)."""
    targets = [d for d in range(10) for _ in range(per_digit)]
    return exhaust(grow_fooling(net, targets, confidence=confidence, seed=seed)).images


def reject_training_set(net: nn.Module, *, per_digit: int = 10, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Nguyen et al.'s retraining defense: fooling images of `net` plus as much plain noise, labelled class 10."""
    fools = fooling_set(net, per_digit=per_digit, seed=seed)  # (10 * per_digit, 1, 8, 8)
    images = torch.cat([fools, noise(len(fools), seed=seed + 1)])
    return images, torch.full((len(images),), 10, dtype=torch.long)


def retrained_with_rejects(net: nn.Module, *, seed: int, epochs: int = 10) -> tuple[DigitsCNN, np.ndarray]:
    """Nguyen et al.'s defense on `net`: its fooling images and noise as class 10, a new 11-class network trained
    with another seed. Returns it and, per image of that reject set, whether it now says "not a digit" (N,) bool."""
    rejects = reject_training_set(net, seed=seed)
    retrained, _ = train_to_end(epochs=epochs, seed=seed + 1, extra=rejects, n_classes=11)
    with torch.no_grad():
        rejected = (retrained(rejects[0]).argmax(1) == 10).numpy()  # (N,)
    return retrained, rejected
