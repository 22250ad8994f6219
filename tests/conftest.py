"""Shared fixtures: a tiny fixed-weight classifier for fast unit tests and the real offline Lite0."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


class TinyNet(nn.Module):
    """3x16x16 pixels in [0,1] -> 10 logits; fixed random weights, normalization inside like Classifier."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, 10)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        self.eval()
        self.requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu(self.conv((x - 0.5) / 0.25))  # (N, 8, 16, 16)
        h = nn.functional.avg_pool2d(h, 4)  # (N, 8, 4, 4)
        return self.fc(h.flatten(1))  # (N, 10)


@pytest.fixture(scope="session")
def tiny() -> TinyNet:
    return TinyNet()


@pytest.fixture(scope="session")
def tiny_images() -> Tensor:
    """Four 8-bit images (on the 255 grid) in [0,1], (4,3,16,16)."""
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (4, 3, 16, 16), generator=g).float() / 255.0


@pytest.fixture(scope="session")
def lite0():
    from models import load_model

    return load_model("efficientnet_lite0", device="cpu")


@pytest.fixture(scope="session")
def chelsea_input(lite0):
    """Chelsea the cat as Lite0 sees it: the preprocessed 8-bit PIL image."""
    from images import load_image

    return lite0.preprocess(load_image("chelsea"))
