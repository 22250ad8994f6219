"""The study's figures from a hand-made set of rows whose every number is worked out by hand below."""

from __future__ import annotations

import pytest

from experiments.study.store import Row
from experiments.study.susceptibility import (
    Rate,
    caps_within,
    group_matrix,
    group_rates,
    mean_rms_of_successes,
    mimic_rates,
    modify_rates,
    modify_vs_mimic,
    ranked,
    report,
    success_by_cap,
    summary,
    ties,
)

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
    # Ties broken by class index when no finer measure is given; the hardest list no longer repeats class 1 of the
    # easiest (issue 17 item 3: with every class tied the two lists showed the same classes).
    assert [c for c, _ in easiest] == [0, 1] and [c for c, _ in hardest] == [2]
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

    out = report(ROWS, NAMES, class_group=GROUP, groups=["cloth", "pet", "fish"], k=1, study_cap=0.03)
    json.dumps(out, allow_nan=False)
    mean_rms_cat = (0.002 + 0.008) / 2
    assert out["easiest_to_modify"] == [{"class": 0, "name": "cat", "rate": 1.0, "n": 2, "mean_rms": mean_rms_cat}]
    # cat and towel tie at 50% mimic; towel's one success needed more change (0.008 vs 0.004): the harder one
    assert out["hardest_to_mimic"][0]["name"] == "towel"
    assert [g["group"] for g in out["groups"]] == ["cloth", "pet"]  # file order, groups without rows left out
    assert out["group_matrix"] == {"groups": ["cloth", "pet"], "rates": [[None, 0.5], [0.5, 1.0]]}
    assert [p["cap"] for p in out["success_by_cap"]][:2] == [0.001, 0.002]
    only_toward_cloth = report([r for r in ROWS if r.target == 2], NAMES, class_group=GROUP, study_cap=0.03)
    cloth = next(g for g in only_toward_cloth["groups"] if g["group"] == "cloth")
    assert cloth["modify"] is None and cloth["modify_n"] == 0 and cloth["mimic"] == 0.5  # no rows: no rate


def test_the_curve_stops_at_the_studys_own_cap():
    """Regression (issue 17 item 2): a study swept with --max-rms 0.005 printed its last rate at every cap up to
    0.03, the paper's 0.01 included. Only caps the study tried are reported, and it says when 0.01 is beyond them."""
    capped = [r for r in ROWS if r.rms <= 0.005]  # what a 0.005 study could have stored as successes
    out = report(capped, NAMES, study_cap=0.005)
    assert [p["cap"] for p in out["success_by_cap"]] == [0.001, 0.002, 0.003, 0.004, 0.005]
    assert out["paper_cap_within_study"] is False
    assert caps_within(0.006)[-2:] == (0.005, 0.006)  # a cap between the curve's points ends it
    assert report(ROWS, NAMES, study_cap=0.03)["paper_cap_within_study"] is True


def test_tied_rates_are_ranked_by_the_mean_rms_of_their_successes():
    """Regression (issue 17 item 3): 652 classes tied at 100% mimic and "easiest" was the first class indices.
    A tie on the rate is now broken by the mean RMS of the successes (less change: easier), and the count of
    tied classes is reported."""
    rows = [
        Row("a", 0, 5, True, 3, 0.004, 0.01, 0.9, 5, 0.1),
        Row("b", 1, 6, True, 3, 0.001, 0.01, 0.9, 6, 0.1),
        Row("c", 2, 7, True, 3, 0.002, 0.01, 0.9, 7, 0.1),
        Row("d", 3, 8, False, 9, 0.010, 0.03, 0.1, 3, 0.1),
    ]
    rates = modify_rates(rows)
    easiest, hardest = ranked(rates, 2, mean_rms_of_successes(rows, "source"))
    assert [c for c, _ in easiest] == [1, 2]  # both at 100%: the smaller RMS first, not the smaller index
    assert [c for c, _ in hardest] == [3, 0]  # 0% first, then the tied class that needed the most change
    assert ties(rates) == {"top_rate": 1.0, "at_top": 3, "bottom_rate": 0.0, "at_bottom": 1}
    names = tuple(f"c{i}" for i in range(10))
    out = report(rows, names, study_cap=0.01, k=2)
    assert [c["class"] for c in out["easiest_to_modify"]] == [1, 2] and out["modify_ties"]["at_top"] == 3
    assert out["hardest_to_modify"][0]["mean_rms"] is None  # no success: no mean RMS (JSON null, not inf)


def test_the_per_class_histogram_counts_whole_classes() -> None:
    """Helper walk: a small study's histogram had ticks at 0.5 and 1.5 classes. Its y ticks step by whole classes
    (about five ticks up to the fullest bin), and every rate lands in one 5%-wide bin centred on a multiple of 5%."""
    from experiments.study import figures as study_figures
    from experiments.study import susceptibility as sus

    few = {0: sus.Rate(1.0, 2), 1: sus.Rate(0.5, 2)}
    assert study_figures.histogram(few, "modify")["layout"]["yaxis"]["dtick"] == 1
    many = {c: sus.Rate(1.0, 1) for c in range(23)} | {99: sus.Rate(0.0, 1)}  # 23 classes in the 100% bin
    fig = study_figures.histogram(many, "mimic")
    assert fig["layout"]["yaxis"]["dtick"] == 5 and fig["layout"]["yaxis"]["tick0"] == 0
    # The shipped study's 655 classes in one bin ticked at 131, 262, 393…: now round steps of 1, 2, 5, 10, 20…
    crowded = {c: sus.Rate(1.0, 1) for c in range(655)}
    assert study_figures.histogram(crowded, "mimic")["layout"]["yaxis"]["dtick"] == 200
    steps = [study_figures.nice_step(x) for x in (0.5, 1, 1.2, 2, 3, 7, 11, 26, 131)]
    assert steps == [1, 1, 2, 2, 5, 10, 20, 50, 200]


def test_group_heatmap_scale_starts_near_the_lowest_rate() -> None:
    """Issue 20 (a walk): rates of 95-100% on a 0-100% scale were one red; the scale now starts at 90% here."""
    from experiments.study import figures as study_figures

    fig = study_figures.group_heatmap(["a", "b"], ["c", "d"], [[0.953, 1.0], [None, 0.99]])
    assert fig["data"][0]["zmin"] == pytest.approx(0.9) and fig["data"][0]["zmax"] == 1
    low = study_figures.group_heatmap(["a"], ["c", "d"], [[0.31, 0.8]])
    assert low["data"][0]["zmin"] == pytest.approx(0.3)
