"""The study's figures from a hand-made set of rows whose every number is worked out by hand below."""

from __future__ import annotations

import pytest

from experiments.susceptibility import (
    Rate,
    group_matrix,
    group_rates,
    mimic_rates,
    modify_rates,
    modify_vs_mimic,
    ranked,
    report,
    success_by_cap,
    summary,
)
from experiments.sweep_store import Row

# Three classes: 0 and 1 are "pets", 2 is "cloth". (source, target, success, rms, iterations)
_SPEC = [
    (0, 1, True, 0.002, 2),
    (0, 2, True, 0.008, 6),
    (1, 0, True, 0.004, 3),
    (1, 2, False, 0.010, 10),
    (2, 0, False, 0.010, 10),
    (2, 1, True, 0.012, 12),
]
ROWS = [Row(f"img{s}", s, t, ok, it, r, r * 3, 0.9 if ok else 0.1, t if ok else s, 0.5) for s, t, ok, r, it in _SPEC]
GROUP = {0: "pet", 1: "pet", 2: "cloth"}
NAMES = ("cat", "dog", "towel")


def test_success_rate_per_distortion_cap():
    curve = dict(success_by_cap(ROWS, caps=(0.001, 0.003, 0.005, 0.01, 0.03)))
    assert curve == pytest.approx({0.001: 0.0, 0.003: 1 / 6, 0.005: 2 / 6, 0.01: 3 / 6, 0.03: 4 / 6})


def test_modify_and_mimic_rates_and_their_extremes():
    assert modify_rates(ROWS) == {0: Rate(1.0, 2), 1: Rate(0.5, 2), 2: Rate(0.5, 2)}
    assert mimic_rates(ROWS) == {0: Rate(0.5, 2), 1: Rate(1.0, 2), 2: Rate(0.5, 2)}
    assert modify_rates(ROWS, cap=0.005) == {0: Rate(0.5, 2), 1: Rate(0.5, 2), 2: Rate(0.0, 2)}
    easiest, hardest = ranked(modify_rates(ROWS), k=2)
    assert [c for c, _ in easiest] == [0, 1] and [c for c, _ in hardest] == [1, 2]  # ties broken by class
    assert modify_vs_mimic(ROWS) == [(0, 1.0, 0.5), (1, 0.5, 1.0), (2, 0.5, 0.5)]


def test_summary_figures():
    s = summary(ROWS)
    assert s["rows"] == 6 and s["images"] == 3 and s["successes"] == 4
    assert s["success_rate"] == pytest.approx(4 / 6)
    assert s["mean_rms_successful"] == pytest.approx((0.002 + 0.008 + 0.004 + 0.012) / 4)
    assert s["mean_iterations"] == pytest.approx(43 / 6)
    assert s["median_modify_rate"] == 0.5 and s["median_mimic_rate"] == 0.5
    assert summary(ROWS, cap=0.01)["success_rate"] == pytest.approx(3 / 6)
    assert summary([])["success_rate"] == 0.0 and summary([])["median_modify_rate"] is None


def test_groups_table_and_matrix():
    table = group_rates(ROWS, GROUP)
    assert table["pet"] == {"modify": Rate(3 / 4, 4), "mimic": Rate(3 / 4, 4), "classes": 2}
    assert table["cloth"] == {"modify": Rate(1 / 2, 2), "mimic": Rate(1 / 2, 2), "classes": 1}
    matrix = group_matrix(ROWS, GROUP, ["pet", "cloth"])
    assert matrix == [[Rate(1.0, 2), Rate(0.5, 2)], [Rate(0.5, 2), None]]  # no cloth -> cloth pair


def test_report_is_plain_json_with_names():
    import json

    out = report(ROWS, NAMES, class_group=GROUP, groups=["cloth", "pet", "fish"], k=1)
    json.dumps(out)
    assert out["easiest_to_modify"] == [{"class": 0, "name": "cat", "rate": 1.0, "n": 2}]
    assert out["hardest_to_mimic"][0]["name"] == "cat"
    assert [g["group"] for g in out["groups"]] == ["cloth", "pet"]  # file order, groups without rows left out
    assert out["group_matrix"] == {"groups": ["cloth", "pet"], "rates": [[None, 0.5], [0.5, 1.0]]}
    assert [p["cap"] for p in out["success_by_cap"]][:2] == [0.001, 0.002]
    only_toward_cloth = report([r for r in ROWS if r.target == 2], NAMES, class_group=GROUP)
    cloth = next(g for g in only_toward_cloth["groups"] if g["group"] == "cloth")
    assert cloth["modify"] is None and cloth["modify_n"] == 0 and cloth["mimic"] == 0.5  # no rows: no rate
