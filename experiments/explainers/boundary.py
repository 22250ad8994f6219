"""A decision boundary you can push a point across (seed 003's picture): a small network on two moons, its decision
regions, and a targeted attack drawn step by step next to one straight step along the first gradient.

Why the comparison: the gradient is not stationary. Small steps re-read it and follow the bending boundary; one big
step of the same total length trusts the first reading and can miss.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import make_moons
from torch import Tensor, nn

from experiments.common import check_choice, check_number

NORMS = ("linf", "l2")
#: The plotted square: the moons live in about [-1.2, 2.2] x [-0.7, 1.2].
X_RANGE = (-1.75, 2.75)
Y_RANGE = (-1.25, 1.75)


def moons(*, n: int = 400, noise: float = 0.15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's two moons: (n, 2) float32 points and (n,) labels 0/1."""
    x, y = make_moons(n_samples=n, noise=noise, random_state=seed)
    return x.astype(np.float32), y.astype(np.int64)


class MoonsNet(nn.Module):
    """2 -> 32 -> 32 -> 2 with tanh: smooth, so its gradient turns gently along a curved boundary."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 2))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)  # (N, 2)


@functools.lru_cache(maxsize=4)
def trained_moons_net(seed: int = 0, epochs: int = 600) -> MoonsNet:
    """Full-batch Adam on the two moons: about a second on one CPU thread, identical weights for a seed.

    Cached per (seed, epochs) so the page and the tests train once per process. Frozen afterwards (eval, no
    parameter gradients): attacks take gradients with respect to the point only.
    """
    x, y = moons(seed=seed)
    torch.manual_seed(seed)
    net = MoonsNet()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)  # (N, 2), (N,)
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    net.eval().requires_grad_(False)
    return net


def accuracy(net: nn.Module, seed: int = 0) -> float:
    """Accuracy on a fresh draw of moons (another seed than the training set)."""
    x, y = moons(seed=seed + 1000)
    with torch.no_grad():
        return float((net(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


@dataclass(frozen=True)
class Regions:
    """p(class 1) on a regular grid: z[i, j] is at (xs[j], ys[i]), as a Plotly contour wants it."""

    xs: np.ndarray  # (W,)
    ys: np.ndarray  # (H,)
    z: np.ndarray  # (H, W)


def decision_regions(net: nn.Module, *, resolution: int = 120) -> Regions:
    resolution = int(check_number("resolution", resolution, 10, 500, integer=True))
    xs = np.linspace(*X_RANGE, resolution, dtype=np.float32)
    ys = np.linspace(*Y_RANGE, resolution, dtype=np.float32)
    gx, gy = np.meshgrid(xs, ys)  # (H, W) each
    grid = torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], 1))  # (H*W, 2)
    with torch.no_grad():
        p1 = net(grid).softmax(-1)[:, 1].numpy()  # (H*W,)
    return Regions(xs, ys, p1.reshape(gy.shape))


def predict(net: nn.Module, point: np.ndarray | tuple[float, float]) -> tuple[int, float]:
    """(class, p(class)) of one 2-D point."""
    with torch.no_grad():
        p = net(torch.tensor([point], dtype=torch.float32)).softmax(-1)[0]  # (2,)
    c = int(p.argmax())
    return c, float(p[c])


def _direction(grad: Tensor, norm: str) -> Tensor:
    """The steepest-descent direction of unit length in the norm: sign for L-inf, normalised gradient for L2."""
    if norm == "linf":
        return grad.sign()
    return grad / grad.norm().clamp_min(1e-12)


def _loss_gradient(net: nn.Module, point: Tensor, target: int) -> Tensor:
    p = point.detach().clone().requires_grad_(True)  # (2,)
    loss = nn.functional.cross_entropy(net(p[None]), torch.tensor([target]))
    (grad,) = torch.autograd.grad(loss, p)
    return grad  # (2,)


@dataclass(frozen=True)
class PathStep:
    index: int
    point: tuple[float, float]
    p_target: float
    label: int


@dataclass(frozen=True)
class BoundaryAttack:
    """An iterated targeted attack's path from start, and one straight step of the same total length."""

    start: tuple[float, float]
    target: int
    norm: str
    eps: float  # budget radius around the start
    step_size: float
    path: list[PathStep]  # path[0] is the start
    crossed_at: int | None  # first step index classified as the target, None if never
    straight: PathStep  # one step of length eps along the first gradient's direction
    straight_length: float  # the path's total length travelled, which the straight step also travels

    @property
    def end(self) -> PathStep:
        return self.path[-1]

    @property
    def straight_crossed(self) -> bool:
        return self.straight.label == self.target


def attack_path(
    net: nn.Module,
    start: tuple[float, float],
    *,
    target: int | None = None,
    norm: str = "l2",
    eps: float = 1.0,
    steps: int = 40,
) -> BoundaryAttack:
    """Targeted iterated gradient attack (PGD without random start) in 2-D, every step recorded.

    Steps of eps/steps each, so the whole path travels at most eps and never leaves the budget ball (no projection
    needed); it stops one step after crossing, so the end point sits clearly on the target side. The straight step
    goes the same total length along the start's gradient direction, and its class is measured, not assumed.
    """
    norm = check_choice("norm", norm, NORMS)
    eps = check_number("eps", eps, 0.01, 5.0)
    steps = int(check_number("steps", steps, 1, 1000, integer=True))
    x0 = torch.tensor(start, dtype=torch.float32)  # (2,)
    source, _ = predict(net, start)
    target = 1 - source if target is None else int(check_number("target", target, 0, 1, integer=True))
    alpha = eps / steps

    def record(i: int, point: Tensor) -> PathStep:
        with torch.no_grad():
            p = net(point[None]).softmax(-1)[0]  # (2,)
        return PathStep(i, (float(point[0]), float(point[1])), float(p[target]), int(p.argmax()))

    path = [record(0, x0)]
    crossed_at = 0 if path[0].label == target else None
    first_direction = _direction(_loss_gradient(net, x0, target), norm)  # (2,)
    x = x0.clone()
    for i in range(1, steps + 1):
        if crossed_at is not None and i > crossed_at + 1:
            break
        x = x - alpha * _direction(_loss_gradient(net, x, target), norm)  # (2,)
        path.append(record(i, x))
        if crossed_at is None and path[-1].label == target:
            crossed_at = i
    travelled = alpha * (len(path) - 1)
    straight = record(1, x0 - travelled * first_direction)
    return BoundaryAttack(
        start=path[0].point,
        target=target,
        norm=norm,
        eps=eps,
        step_size=alpha,
        path=path,
        crossed_at=crossed_at,
        straight=straight,
        straight_length=travelled,
    )
