"""Classifiers that take [0,1] pixels, their registry, class names and Grad-CAM."""

from models.classes import IMAGENET_CATEGORIES, UnknownClassError, class_index, resolve_targets
from models.classifier import Classifier, ModelSpec, is_model_input, pil_to_tensor, tensor_to_pil
from models.zoo import (
    DEFAULT_MODEL,
    MODELS,
    OFFLINE_MODELS,
    UnknownModelError,
    WeightsUnavailable,
    default_device,
    get_spec,
    load_model,
    short_title,
    weights_cached,
)

__all__ = [
    "DEFAULT_MODEL",
    "IMAGENET_CATEGORIES",
    "MODELS",
    "OFFLINE_MODELS",
    "Classifier",
    "ModelSpec",
    "UnknownClassError",
    "UnknownModelError",
    "WeightsUnavailable",
    "class_index",
    "default_device",
    "get_spec",
    "is_model_input",
    "load_model",
    "pil_to_tensor",
    "resolve_targets",
    "short_title",
    "tensor_to_pil",
    "weights_cached",
]
