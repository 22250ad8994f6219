"""Built-in sample images, all shipped inside installed Python packages, so the lab works fully offline.

Where they come from (a sample whose package is not installed is simply absent from SAMPLES):

* scikit-image (``skimage``): chelsea, coffee, rocket, astronaut, camera, motorcycle. Only images bundled in the
  scikit-image wheel are listed (checked by file), so nothing is ever downloaded (pooch is never needed).
* scikit-learn (``sklearn``): china, flower, from ``sklearn/datasets/images/``.
* Foolbox (``foolbox``): imagenet_00 ... imagenet_19, twenty ImageNet validation images with their true class
  (``foolbox/data/imagenet_<ii>_<label>.jpg``). Category names come from torchvision when it is installed.

Package folders are found with importlib.util.find_spec, which does not import the packages themselves.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from PIL import Image

from images.loading import ImageError, array_to_rgb, load_image


@dataclass(frozen=True)
class Sample:
    """One built-in image. label is the true ImageNet class index when known, else None."""

    id: str
    title: str
    label: int | None
    source: str
    path: str | None


#: scikit-image samples: id -> (title, files that must be bundled, how to get the array from skimage.data).
_SKIMAGE: dict[str, tuple[str, tuple[str, ...], Callable[[Any], Any]]] = {
    "chelsea": ("Chelsea the cat", ("chelsea.png",), lambda data: data.chelsea()),
    "coffee": ("Cup of coffee", ("coffee.png",), lambda data: data.coffee()),
    "rocket": ("Falcon 9 rocket", ("rocket.jpg",), lambda data: data.rocket()),
    "astronaut": ("Astronaut Eileen Collins", ("astronaut.png",), lambda data: data.astronaut()),
    "camera": ("Cameraman (grayscale)", ("camera.png",), lambda data: data.camera()),
    "motorcycle": (
        "Motorcycle (stereo left view)",
        ("motorcycle_left.png", "motorcycle_right.png", "motorcycle_disp.npz"),
        lambda data: data.stereo_motorcycle()[0],
    ),
}

_SKLEARN: dict[str, str] = {"china": "Summer Palace, China", "flower": "Flower"}

_FOOLBOX_FILE = re.compile(r"^imagenet_(\d{2})_(\d+)\.jpg$")


def _package_dir(name: str) -> str | None:
    """The folder of an installed top-level package, or None; never imports it (that can be slow)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def _imagenet_categories() -> list[str] | None:
    """ImageNet class names as torchvision ships them (no download), or None without torchvision."""
    try:
        from torchvision.models import ResNet50_Weights
    except ImportError:
        return None
    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def _build_registry() -> dict[str, Sample]:
    samples: dict[str, Sample] = {}

    skimage_dir = _package_dir("skimage")
    if skimage_dir is not None:
        data_dir = os.path.join(skimage_dir, "data")
        for sample_id, (title, files, _) in _SKIMAGE.items():
            if all(os.path.isfile(os.path.join(data_dir, f)) for f in files):
                samples[sample_id] = Sample(sample_id, title, None, "scikit-image", os.path.join(data_dir, files[0]))

    sklearn_dir = _package_dir("sklearn")
    if sklearn_dir is not None:
        for sample_id, title in _SKLEARN.items():
            path = os.path.join(sklearn_dir, "datasets", "images", f"{sample_id}.jpg")
            if os.path.isfile(path):
                samples[sample_id] = Sample(sample_id, title, None, "scikit-learn", path)

    foolbox_dir = _package_dir("foolbox")
    data_dir = os.path.join(foolbox_dir, "data") if foolbox_dir is not None else ""
    if foolbox_dir is not None and os.path.isdir(data_dir):
        found = [m for m in map(_FOOLBOX_FILE.match, os.listdir(data_dir)) if m]
        categories = _imagenet_categories() if found else None
        for m in sorted(found, key=lambda m: int(m.group(1))):
            number, label = m.group(1), int(m.group(2))
            name = categories[label] if categories and label < len(categories) else f"class {label}"
            sample_id = f"imagenet_{number}"
            path = os.path.join(data_dir, m.group(0))
            samples[sample_id] = Sample(sample_id, f"ImageNet val #{number} ({name})", label, "foolbox", path)
    return samples


#: Every sample available in this environment, by id, in display order.
SAMPLES: dict[str, Sample] = _build_registry()


def _get(sample_id: str) -> Sample:
    try:
        return SAMPLES[sample_id]
    except (KeyError, TypeError):
        some = ", ".join(list(SAMPLES)[:6]) or "none are installed"
        raise ImageError(f"unknown sample {sample_id!r}; valid ids include: {some} ({len(SAMPLES)} in all)") from None


@lru_cache(maxsize=64)
def _decoded(sample_id: str) -> Image.Image:
    """Decode a sample once per process; callers get copies, so the cached one is never mutated."""
    sample = _get(sample_id)
    if sample.source == "scikit-image":
        try:
            data = importlib.import_module("skimage.data")
            array = _SKIMAGE[sample_id][2](data)
        except (ImportError, OSError, ValueError, KeyError) as err:
            raise ImageError(f"scikit-image could not provide sample {sample_id!r} ({type(err).__name__})") from err
        return array_to_rgb(array)
    if sample.path is None:
        raise ImageError(f"sample {sample_id!r} has no file to load")
    return load_image(sample.path)


def load_sample(sample_id: str) -> Image.Image:
    """A new RGB image of a built-in sample; unknown ids raise ImageError naming a few valid ones."""
    return _decoded(_get(sample_id).id).copy()


@lru_cache(maxsize=256)
def _thumbnail(sample_id: str, size: int) -> Image.Image:
    thumb = _decoded(sample_id).copy()
    thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
    return thumb


def sample_thumbnail(sample_id: str, size: int = 128) -> Image.Image:
    """A small RGB preview (longest side <= size) for a gallery; cached, so a page rerun costs nothing."""
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"thumbnail size must be a positive integer, got {size!r}")
    return _thumbnail(_get(sample_id).id, size).copy()
