"""A tiny fixed-weight classifier for fast unit tests (no download, milliseconds per step).

Lives in its own module with a unique name: `from conftest import ...` is ambiguous once tests/e2e/ has a
conftest of its own (pytest puts both folders on sys.path), which broke test collection in CI.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


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


class TinyClassifier(TinyNet):
    """TinyNet with the Classifier interface the experiments use (name, input_size, categories, device,
    probabilities)."""

    input_size = 16
    categories = tuple(f"class{i}" for i in range(10))

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self.name = f"tiny{seed}"

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @torch.no_grad()
    def probabilities(self, x: Tensor) -> Tensor:
        return self(x).softmax(-1)  # (N, 10)
