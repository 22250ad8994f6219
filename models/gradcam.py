"""Grad-CAM (Selvaraju et al. 2017, arXiv:1610.02391) via captum's LayerGradCam, safe on a shared model.

Why not hook the cached model directly: captum registers forward hooks on the layer for the duration of
`attribute`. On a model shared by several browser sessions, another thread's forward pass would run through
those hooks (crossed activations), and a hook left behind would slow every later pass. Instead each call builds a
weight-sharing view of the network (models.views) in which the Grad-CAM layer is wrapped in a fresh `_Tap`
module that only this call owns; captum hooks the tap, so the shared model never carries a hook.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.classifier import Classifier
from models.views import replace_submodule


class _Tap(nn.Module):
    """Runs the wrapped layer; exposes its output as a (N,C,h,w) map at `self.map` for captum to hook.

    For vision transformers (grid > 0) the layer returns tokens (N, 1+g*g, C): the patch tokens are reshaped to a
    (N,C,g,g) grid, passed through the identity `map`, and put back, so the forward value is unchanged.
    """

    def __init__(self, inner: nn.Module, grid: int = 0) -> None:
        super().__init__()
        self.inner = inner
        self.grid = grid
        self.map = nn.Identity()

    def forward(self, *args: Tensor, **kwargs: Tensor) -> Tensor:
        y = self.inner(*args, **kwargs)
        if not self.grid:
            return self.map(y)  # (N, C, h, w)
        n, t, c = y.shape
        cls_tok, patches = y[:, :1], y[:, 1:]  # (N, 1, C), (N, g*g, C)
        grid = self.map(patches.transpose(1, 2).reshape(n, c, self.grid, self.grid))  # (N, C, g, g)
        return torch.cat([cls_tok, grid.flatten(2).transpose(1, 2)], dim=1)  # (N, 1+g*g, C)


class _ViewModel(nn.Module):
    """[0,1] pixels -> logits through the view, with the classifier's normalization."""

    def __init__(self, model: Classifier, view: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.view = view

    def forward(self, x: Tensor) -> Tensor:
        return self.model.run_view(self.view, x)


def grad_cam(model: Classifier, x: Tensor, classes: Tensor | list[int] | int) -> Tensor:
    """Grad-CAM heatmaps for `classes` on images x (N,3,H,W): returns (N,H,W) in [0,1], 1 = most important.

    Positive part of sum_c(mean(dy/dA_c) * A_c) at the model's Grad-CAM layer, upsampled bilinearly to the image
    size and divided by its maximum (an all-zero map stays zero).
    """
    spec = model.spec
    tap = _Tap(model.net.get_submodule(spec.gradcam_layer), grid=spec.tokens_grid)
    view = _ViewModel(model, replace_submodule(model.net, spec.gradcam_layer, tap))
    n = x.shape[0]
    target = torch.as_tensor(classes, device=x.device).long().reshape(-1).expand(n)  # (N,)
    # Imported here, not at the top: captum brings matplotlib (~50 MB resident), which the app's first page and
    # the CLI's other commands never need (benchmarks/bench_cloud.py).
    from captum.attr import LayerGradCam

    cam = LayerGradCam(view, tap.map)
    with torch.enable_grad():
        inp = x.detach().clone().requires_grad_(True)  # captum needs a graph from the input to the layer
        attr = cam.attribute(inp, target=target, relu_attributions=True)  # (N, 1, h, w)
    attr = F.interpolate(attr.detach(), size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = attr.flatten(1).amax(dim=1).clamp_min(1e-12).view(-1, 1, 1)  # (N, 1, 1)
    return (attr / peak).clamp(0.0, 1.0)  # (N, H, W)


def overlay(image: Tensor, heatmap: Tensor, alpha: float = 0.5) -> Tensor:
    """Blend a (H,W) heatmap, coloured with a jet-like map, over a (3,H,W) image in [0,1]."""
    h = heatmap.clamp(0, 1)
    colour = torch.stack(
        [
            (1.5 - (4 * h - 3).abs()).clamp(0, 1),
            (1.5 - (4 * h - 2).abs()).clamp(0, 1),
            (1.5 - (4 * h - 1).abs()).clamp(0, 1),
        ]
    )  # (3, H, W)
    return ((1 - alpha) * image + alpha * colour).clamp(0, 1)
