"""Shared fixtures: a tiny fixed-weight classifier for fast unit tests and the real offline Lite0."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from tinynet import TinyNet  # tests/ is on sys.path: pytest's default 'prepend' import mode puts it there
from torch import Tensor

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


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
