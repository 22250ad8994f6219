"""Reading a sweep's rows as the seeds' figures: pure functions, no model, no Streamlit.

* Robinson & Graham (2015, sec. 3.1): the share of (image, target) pairs relabelled at RMS distortion <= 0.01
  (98.7% on GoogLeNet), here for every cap from 0.001 up to the study's own cap (caps_within): success at cap c =
  verified success and rms <= c. Exact below the study's cap as a count of what the attack found: a study stops each
  pair at its first success on the 8-bit image (CW keeps its least distorted one), so a row's RMS is the smallest
  successful RMS on its path, whether or not RMS grows monotonically along it.
* Seed 000: per source class the "modify rate" (share of its rows that succeed, toward any target), per target class
  the "mimic rate" (share of rows toward it that succeed, from any source), their medians (85%), the easiest and
  hardest classes, the modify-vs-mimic scatter, and the same by WordNet super-category (data/class_groups.json,
  made by scripts/build_class_groups.py) as a table and a source-group x target-group matrix.

Rates are shares of rows (pairs), as in the seeds; every rate comes with its row count.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from experiments.study.store import Row
from images.imagesets import imagenet_wnids

#: Distortion caps of the success-rate curve (RMS, [0,1] pixel units); 0.01 is the paper's.
CAPS: tuple[float, ...] = (0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03)
PAPER_CAP = 0.01
PAPER_SUCCESS = 0.987  # Robinson & Graham sec. 3.1, GoogLeNet
PAPER_MEAN_RMS = 0.00814  # the paper's mean distortion
SEED_MEDIAN_MODIFY = 0.85  # seed 000, ResNet
CLASS_GROUPS_FILE = Path(__file__).resolve().parents[2] / "data" / "class_groups.json"


@dataclass(frozen=True)
class Rate:
    """A share of rows that succeeded, with the count it is a share of."""

    rate: float
    n: int


class Judged(Protocol):
    """What the success rule reads: a stored Row, or a pair recomputed on the page."""

    success: bool
    rms: float


def succeeded(row: Judged, cap: float | None) -> bool:
    """The one rule: a verified success with RMS distortion within the cap (None: the study's own cap)."""
    return bool(row.success) and (cap is None or row.rms <= cap)


def _rate(rows: Sequence[Row], cap: float | None) -> Rate:
    return Rate(sum(succeeded(r, cap) for r in rows) / len(rows) if rows else 0.0, len(rows))


def caps_within(study_cap: float) -> tuple[float, ...]:
    """The curve's caps a study can speak for: those of CAPS up to its own cap, and its cap itself.

    Why: a row stores only a success within the study's cap, so above that cap every point would repeat the last
    one (a study at 0.005 printed 66.7% at every cap up to 0.03, the paper's 0.01 included).
    """
    caps = [c for c in CAPS if c <= study_cap]
    return tuple(caps if caps and caps[-1] == study_cap else [*caps, float(study_cap)])


def success_by_cap(rows: Sequence[Row], caps: Iterable[float]) -> list[tuple[float, float]]:
    """(cap, share of all rows that succeed with rms <= cap) for each cap (see caps_within)."""
    return [(cap, _rate(rows, cap).rate) for cap in caps]


def _by(rows: Iterable[Row], key: str, cap: float | None) -> dict[Any, Rate]:
    groups: dict[Any, list[Row]] = defaultdict(list)
    for r in rows:
        groups[getattr(r, key)].append(r)
    return {k: _rate(v, cap) for k, v in sorted(groups.items())}


def modify_rates(rows: Iterable[Row], cap: float | None = None) -> dict[int, Rate]:
    """Per source class: how often its images could be made into another class (seed 000's left histogram)."""
    return _by(rows, "source", cap)


def mimic_rates(rows: Iterable[Row], cap: float | None = None) -> dict[int, Rate]:
    """Per target class: how often images of other classes could be made to look like it (the right histogram)."""
    return _by(rows, "target", cap)


def mean_rms_of_successes(rows: Iterable[Row], key: str, cap: float | None = None) -> dict[Any, float]:
    """Per class (key "source" or "target"): the mean RMS of its successful rows within the cap; inf where none.

    The finer measure that ranks classes tied on their rate: among classes all relabelled every time, the one whose
    pairs needed the least change is the easiest.
    """
    total: dict[Any, list[float]] = defaultdict(list)
    for r in rows:
        total.setdefault(getattr(r, key), [])
        if succeeded(r, cap):
            total[getattr(r, key)].append(r.rms)
    return {c: statistics.fmean(v) if v else float("inf") for c, v in total.items()}


def ranked(
    rates: dict[Any, Rate], k: int = 5, finer: dict[Any, float] | None = None
) -> tuple[list[tuple[Any, Rate]], list[tuple[Any, Rate]]]:
    """(easiest k, hardest k): highest rate first / lowest first; a tie on the rate is broken by `finer` (mean RMS
    of the successes: less is easier), then by class index. The hardest list never repeats a class of the easiest
    (when every class ties, a class index order would otherwise show the same classes under both)."""
    fine = finer or {}
    easiest = sorted(rates.items(), key=lambda kv: (-kv[1].rate, fine.get(kv[0], 0.0), kv[0]))[:k]
    shown = {c for c, _ in easiest}
    rest = [kv for kv in rates.items() if kv[0] not in shown]
    hardest = sorted(rest, key=lambda kv: (kv[1].rate, -fine.get(kv[0], 0.0), kv[0]))[:k]
    return easiest, hardest


def ties(rates: dict[Any, Rate]) -> dict[str, Any]:
    """How many classes share the highest and the lowest rate: what a ranked list must say beside it."""
    values = [v.rate for v in rates.values()]
    if not values:
        return {"top_rate": None, "at_top": 0, "bottom_rate": None, "at_bottom": 0}
    top, bottom = max(values), min(values)
    return {
        "top_rate": top,
        "at_top": sum(v == top for v in values),
        "bottom_rate": bottom,
        "at_bottom": sum(v == bottom for v in values),
    }


def modify_vs_mimic(rows: Sequence[Row], cap: float | None = None) -> list[tuple[int, float, float]]:
    """(class, modify rate, mimic rate) for classes that are both a source and a target: the scatter plot."""
    modify, mimic = modify_rates(rows, cap), mimic_rates(rows, cap)
    return [(c, modify[c].rate, mimic[c].rate) for c in sorted(modify.keys() & mimic.keys())]


def summary(rows: Sequence[Row], cap: float | None = None) -> dict[str, Any]:
    """The closing note's figures: success rate, mean distortion and iterations, median modify and mimic rates."""
    ok = [r for r in rows if succeeded(r, cap)]
    modify, mimic = modify_rates(rows, cap), mimic_rates(rows, cap)
    return {
        "rows": len(rows),
        "images": len({r.image_id for r in rows}),
        "successes": len(ok),
        "success_rate": len(ok) / len(rows) if rows else 0.0,
        "mean_rms_successful": statistics.fmean(r.rms for r in ok) if ok else None,
        "mean_iterations": statistics.fmean(r.iterations for r in rows) if rows else None,
        "median_modify_rate": statistics.median(v.rate for v in modify.values()) if modify else None,
        "median_mimic_rate": statistics.median(v.rate for v in mimic.values()) if mimic else None,
        "seconds": sum(r.seconds for r in rows),
        "queries": query_summary(rows, cap),
    }


def query_summary(rows: Sequence[Row], cap: float | None = None) -> dict[str, Any] | None:
    """Median and mean queries per pair (all rows, and the successes) of a black-box study; None when no row holds
    queries (white-box attacks, files written before the column). A failure counts what it spent (mostly the
    budget)."""
    counted = [r for r in rows if r.queries is not None]
    if not counted:
        return None
    ok = [r.queries for r in counted if succeeded(r, cap)]
    spent = [r.queries for r in counted]
    return {
        "rows": len(counted),
        "median": statistics.median(spent),
        "mean": statistics.fmean(spent),
        "median_successful": statistics.median(ok) if ok else None,
        "mean_successful": statistics.fmean(ok) if ok else None,
    }


@lru_cache(maxsize=4)
def load_class_groups(path: str | Path = CLASS_GROUPS_FILE) -> tuple[tuple[str, ...], dict[int, str]]:
    """(groups in their file order, ImageNet class index -> group) from data/class_groups.json."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    by_wnid: dict[str, str] = data["classes"]
    return tuple(data["groups"]), {i: by_wnid[wnid] for i, wnid in enumerate(imagenet_wnids())}


def group_rates(
    rows: Sequence[Row], class_group: dict[int, str], cap: float | None = None
) -> dict[str, dict[str, Any]]:
    """Per group: modify rate (rows from its classes), mimic rate (rows toward them), and how many classes of the
    group the rows touch. Groups with no rows are left out."""
    src: dict[str, list[Row]] = defaultdict(list)
    tgt: dict[str, list[Row]] = defaultdict(list)
    classes: dict[str, set[int]] = defaultdict(set)
    for r in rows:
        src[class_group[r.source]].append(r)
        tgt[class_group[r.target]].append(r)
        classes[class_group[r.source]].add(r.source)
        classes[class_group[r.target]].add(r.target)
    return {
        g: {"modify": _rate(src[g], cap), "mimic": _rate(tgt[g], cap), "classes": len(classes[g])}
        for g in sorted(classes)
    }


def group_matrix(
    rows: Sequence[Row], class_group: dict[int, str], groups: Sequence[str], cap: float | None = None
) -> list[list[Rate | None]]:
    """matrix[i][j]: success rate of rows from group i toward group j (None where there are no such rows)."""
    cells: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for r in rows:
        cells[class_group[r.source], class_group[r.target]].append(r)
    return [[_rate(cells[a, b], cap) if (a, b) in cells else None for b in groups] for a in groups]


def report(
    rows: Sequence[Row],
    categories: Sequence[str],
    *,
    class_group: dict[int, str] | None = None,
    groups: Sequence[str] | None = None,
    cap: float | None = None,
    study_cap: float,
    k: int = 5,
) -> dict[str, Any]:
    """Everything `cli.py report --json` prints, as plain JSON-able values (class names beside indices).

    `study_cap`: the RMS cap the study was swept with; the curve stops there (see caps_within). Rankings break rate
    ties by the mean RMS of the successes and say how many classes share the top and the bottom rate.
    """
    mean_rms = {
        "source": mean_rms_of_successes(rows, "source", cap),
        "target": mean_rms_of_successes(rows, "target", cap),
    }

    def named(items: list[tuple[int, Rate]], key: str) -> list[dict[str, Any]]:
        def finite(v: float) -> float | None:
            return None if v == float("inf") else v

        return [
            {"class": c, "name": categories[c], "rate": v.rate, "n": v.n, "mean_rms": finite(mean_rms[key][c])}
            for c, v in items
        ]

    modify, mimic = modify_rates(rows, cap), mimic_rates(rows, cap)
    easy_modify, hard_modify = ranked(modify, k, mean_rms["source"])
    easy_mimic, hard_mimic = ranked(mimic, k, mean_rms["target"])
    out: dict[str, Any] = {
        "summary": summary(rows, cap),
        "success_by_cap": [{"cap": c, "rate": r} for c, r in success_by_cap(rows, caps_within(study_cap))],
        "paper_cap_within_study": PAPER_CAP <= study_cap,
        "easiest_to_modify": named(easy_modify, "source"),
        "hardest_to_modify": named(hard_modify, "source"),
        "easiest_to_mimic": named(easy_mimic, "target"),
        "hardest_to_mimic": named(hard_mimic, "target"),
        "modify_ties": ties(modify),
        "mimic_ties": ties(mimic),
    }
    if class_group is not None:
        order = list(groups) if groups is not None else sorted(set(class_group.values()))
        table = group_rates(rows, class_group, cap)
        present = [g for g in order if g in table]
        out["groups"] = [
            {
                "group": g,
                "classes": table[g]["classes"],
                "modify": table[g]["modify"].rate if table[g]["modify"].n else None,  # None: no rows from it
                "modify_n": table[g]["modify"].n,
                "mimic": table[g]["mimic"].rate if table[g]["mimic"].n else None,
                "mimic_n": table[g]["mimic"].n,
            }
            for g in present
        ]
        matrix = group_matrix(rows, class_group, present, cap)
        out["group_matrix"] = {
            "groups": present,
            "rates": [[None if cell is None else cell.rate for cell in line] for line in matrix],
        }
    return out


def _csv(header: Sequence[str], lines: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(lines)
    return out.getvalue()


def rows_csv(rows: Iterable[Row], categories: Sequence[str]) -> str:
    """Every stored row with the class names beside the indices (the CLI's rows.csv and the page's download)."""
    names = [f.name for f in fields(Row)]
    header = [*names, "source_name", "target_name", "final_name"]
    return _csv(
        header, ([*astuple(r), categories[r.source], categories[r.target], categories[r.final_class]] for r in rows)
    )


def rates_csv(rates: dict[int, Rate], categories: Sequence[str], kind: str) -> str:
    """A per-class table (kind: "modify" per source class, "mimic" per target class), highest rate first."""
    items = sorted(rates.items(), key=lambda kv: (-kv[1].rate, kv[0]))
    return _csv(["class", "name", f"{kind}_rate", "rows"], ([c, categories[c], v.rate, v.n] for c, v in items))


def groups_csv(groups: Sequence[dict[str, Any]]) -> str:
    """report()["groups"] as a table (rates empty where a group has no rows on that side)."""
    keys = ("group", "classes", "modify", "modify_n", "mimic", "mimic_n")
    return _csv(keys, ([g[k] if g[k] is not None else "" for k in keys] for g in groups))
