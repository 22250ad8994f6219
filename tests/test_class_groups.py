"""data/class_groups.json: every ImageNet class has one readable WordNet super-category, checked against WordNet."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from experiments.study.susceptibility import CLASS_GROUPS_FILE, load_class_groups
from images.imagesets import imagenet_wnids
from models import IMAGENET_CATEGORIES, class_index

ROOT = Path(__file__).resolve().parents[1]
WORDNET = Path("/usr/share/wordnet")


def _script():
    spec = importlib.util.spec_from_file_location("build_class_groups", ROOT / "scripts" / "build_class_groups.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_imagenet_class_has_one_listed_group():
    data = json.loads(CLASS_GROUPS_FILE.read_text())
    assert list(data["classes"]) == list(imagenet_wnids())  # all 1000, in class-index order
    assert set(data["classes"].values()) <= set(data["groups"])
    groups, by_index = load_class_groups()
    assert len(by_index) == 1000 and 15 <= len(groups) <= 25
    counts = {g: list(by_index.values()).count(g) for g in groups}
    assert counts["dog"] == 118 and counts["other"] < 50  # the 118 dog breeds; few classes left unplaced


@pytest.mark.parametrize(
    ("name", "group"),
    [
        ("dishrag", "fabric"),  # seed 000's hardest class to modify
        ("velvet", "fabric"),
        ("triceratops", "reptile"),  # seed 000's easiest
        ("tabby", "domestic animal"),
        ("Siamese cat", "domestic animal"),
        ("Pembroke", "dog"),  # Welsh corgi
        ("Great Pyrenees", "dog"),
        ("ice bear", "other mammal"),  # polar bear
        ("timber wolf", "other mammal"),  # a canine, not a dog
        ("monarch", "insect"),
        ("zebra", "other mammal"),
        ("tench", "fish"),
        ("jeep", "vehicle"),  # a wheeled vehicle is also a container in WordNet: vehicle comes first
        ("bullet train", "vehicle"),
        ("window screen", "covering"),
        ("manhole cover", "covering"),
        ("purse", "container"),
        ("safety pin", "device"),
        ("jigsaw puzzle", "equipment or implement"),
        ("banana", "food"),
        ("volcano", "natural object"),
        ("violin", "musical instrument"),
        ("chiffonier", "furniture"),
        ("church", "structure"),
        ("sock", "clothing"),
    ],
)
def test_spot_checks(name, group):
    assert load_class_groups()[1][class_index(name)] == group, IMAGENET_CATEGORIES[class_index(name)]


@pytest.mark.skipif(not (WORDNET / "data.noun").is_file(), reason="needs apt-get install wordnet-base")
def test_committed_file_is_what_the_script_builds_from_wordnet():
    script = _script()
    built = script.build(str(WORDNET))
    assert built == json.loads(CLASS_GROUPS_FILE.read_text())
    nouns = script.read_nouns(str(WORDNET))
    # the hypernym walk, checked on chains read in WordNet 3.0 itself
    assert {"03932670", "03309808"} <= script.ancestors("03207743", nouns)  # dishrag < piece of cloth < fabric
    assert "01661091" in script.ancestors("01704323", nouns)  # triceratops < ... < dinosaur < ... < reptile
    assert {"02121808", "01317541"} <= script.ancestors("02123045", nouns)  # tabby < domestic cat < domestic animal
    assert "04014297" in script.ancestors("04589890", nouns)  # window screen < screen < protective covering
