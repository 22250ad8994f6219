"""The Defenses and detection page, headless with AppTest on Lite0: it opens, a small defenses Run fills the table,
and "Spot the adversarial" deals and reveals the same attacked set for the same seed, from the URL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from experiments.defenses import view as defenses_view

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "pages" / "defenses.py")
K = "exp.def."
SHIPPED = ROOT / "data" / "defenses" / "efficientnet_lite0_default.json"
TIMEOUT = 600  # a loaded 2-core machine


def _page(seed: str | None = None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    if seed is not None:
        at.query_params["seed"] = seed
    at.run()
    _clean(at)
    return at


def _clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_page_opens_idle_on_the_shipped_table() -> None:
    """Issue 20: the page opens on the precomputed defense table and bars (scripts/make_defenses.py), with the
    sizes and settings beside them, and computes nothing until asked."""
    at = _page()
    assert at.title[0].value == "Defenses and detection"
    assert not at.session_state[K + "job"].busy
    assert "seed" not in at.query_params  # nothing dealt, nothing computed, until asked
    shipped = json.loads(SHIPPED.read_text())
    table = at.table[0].value
    rows = shipped["report"]["rows"]
    assert len(table) == len(rows) == len(at.session_state[K + "defenses"])
    for (_, cells), row in zip(table.iterrows(), rows, strict=True):
        # The counts, recomputed from the stored rates and denominators (not from the counts the table prints).
        assert cells["clean"] == f"{round(row['clean_accuracy'] * row['images'])}/{row['images']}"
        assert cells["bare fooled"] == f"{round(row['bare_success_rate'] * row['images'])}/{row['images']}"
        n = row["clean_correct"]
        assert cells["ignores it"] == f"{round(row['nonadaptive_success_rate'] * n)}/{n}"
        assert cells["knows it"] == f"{round(row['adaptive_success_rate'] * n)}/{n}"
        # Issue 21: the shipped table has the black-box attacker (Square, queries only) and its median queries.
        assert cells["black-box"] == f"{round(row['blackbox_success_rate'] * n)}/{n}"
        assert cells["queries"] == f"{row['blackbox_queries_median']:.0f}"
    note = " ".join(c.value for c in at.caption)
    assert "black-box: Square (eps 8, queries 1000" in note and "**black-box**" in note
    assert "scripts/make_defenses.py" in note and f"first {shipped['report']['images_total']} labelled samples" in note
    assert at.get("plotly_chart"), "the grouped bars"


@pytest.mark.slow
def test_the_shipped_table_is_what_evaluate_defenses_gives_for_the_page_defaults() -> None:
    """The shipped numbers recomputed: the page's own default settings (as pages/defenses.py sets them), run through
    evaluate_defenses here, give the same counts as data/defenses/."""
    from attacks import ATTACKS  # noqa: PLC0415
    from experiments.defenses.defenses import DEFENSES, evaluate_defenses  # noqa: PLC0415
    from images.imagesets import labelled_set  # noqa: PLC0415
    from models import load_model  # noqa: PLC0415

    at = _page()
    state = at.session_state
    defenses = {d: {p.name: state[f"{K}{d}.{p.name}"] for p in DEFENSES[d].params} for d in state[K + "defenses"]}
    attack = state[K + "attack"]
    params = {p.name: state[f"{K}{attack}.{p.name}"] for p in ATTACKS[attack].params}
    shipped = json.loads(SHIPPED.read_text())
    assert shipped["settings"]["defenses"] == defenses and shipped["settings"]["attack_params"] == params
    assert shipped["settings"]["blackbox"] == {p.name: p.default for p in ATTACKS["square"].params}
    model = load_model("efficientnet_lite0", device="cpu")
    images = labelled_set("samples", model)[: state[K + "images"]]
    *_, last = evaluate_defenses(model, images, defenses=defenses, attack=attack, attack_params=params, seed=0)
    counts = ("clean_correct", "bare_fooled", "nonadaptive_fooled", "adaptive_fooled", "images")
    again = [{k: getattr(r, k) for k in counts} for r in last.report.rows]
    assert again == [{k: r[k] for k in counts} for r in shipped["report"]["rows"]]


@pytest.mark.slow
def _small_setting() -> AppTest:
    """The page set to one defense on 2 images with a short Relabel: a run of seconds."""
    at = _page()
    at.multiselect(key=K + "defenses").set_value(["bits"])
    at.slider(key=K + "images").set_value(2)
    at.number_input(key=K + "relabel.steps").set_value(20)
    at.number_input(key=K + "relabel.step_size").set_value(1.0)
    return at


def test_defenses_run_on_a_small_setting_fills_the_table() -> None:
    at = _small_setting()
    at.button(key=K + "run").click().run()
    _clean(at)
    job = at.session_state[K + "job"]
    assert job.status == "finished"
    report = job.data["report"]
    (row,) = report.rows
    assert row.defense == "bits" and report.images_total == 2 and row.adaptive_fooled is not None
    table = at.table[0].value
    assert list(table["defense"]) == ["Bit-depth reduction (bits=5)"]
    assert table["by"][0] == "BPDA"
    assert "black-box" not in table.columns  # off by default: it adds minutes


def test_the_black_box_attacker_from_the_page_fills_its_column() -> None:
    """The page's checkbox runs Square against the defended model; its column is the report's own count."""
    at = _small_setting()
    at.checkbox(key=K + "blackbox").check()
    at.button(key=K + "run").click().run()
    _clean(at)
    report = at.session_state[K + "job"].data["report"]
    (row,) = report.rows
    assert report.blackbox_attack == "square" and row.blackbox_fooled is not None
    table = at.table[0].value
    assert table["black-box"][0] == f"{row.blackbox_fooled}/{row.clean_correct}"


def _revealed(seed: str) -> list[str]:
    at = _page(seed)  # a shared link: the grid is dealt at once
    at.checkbox(key=f"{K}tick.{seed}.0").check()
    at.button(key=K + "reveal").click().run()
    _clean(at)
    return [m.value for m in at.markdown if "squeezing:" in m.value]


@pytest.mark.slow
def test_spot_the_adversarial_is_the_same_grid_for_the_same_seed() -> None:
    first = _revealed("3")
    defenses_view.spot_grid.clear()  # computed afresh, not read back from the cache
    second = _revealed("3")
    assert len(first) == 8 and first == second
    attacked = ["**attacked**" in m for m in first]
    assert 2 <= sum(attacked) <= 5  # some, not all
    assert first[0].startswith(":red" if not attacked[0] else ":green")  # the first box was ticked


def test_the_bar_chart_names_each_denominator_and_labels_bars_with_counts() -> None:
    """Issue 17 item 11: the grouped bars mixed denominators (all images vs those the defense keeps right) with
    nothing to say so. Each series' legend names its denominator; each bar is labelled k/n and its height is k/n."""
    from experiments.defenses.defenses import DefenseReport, DefenseRow  # noqa: PLC0415

    row = DefenseRow("bits", "Bit-depth reduction", {"bits": 5.0}, "BPDA", 8, 6, 7, 2, 5, 6, 0.1)
    report = DefenseReport("m", "relabel", {}, True, 10, 8, 7, 0, [row])
    traces = defenses_view.bar_chart(report)["data"]
    want = {"clean accuracy": (6, 8), "bare model": (7, 8), "ignores": (2, 6), "knows": (5, 6)}
    for trace, (words, (k, n)) in zip(traces, want.items(), strict=True):
        assert words in trace["name"]
        assert ("of all images" in trace["name"]) == (n == row.images)
        assert trace["text"] == [f"{k}/{n}"] and trace["y"] == [pytest.approx(k / n)]


def test_the_black_box_column_shows_only_when_the_report_ran_it() -> None:
    """Issue 21: a report with the black-box attacker gets its column (k/n of the images kept right), the median
    queries and a fifth bar series; one without (a live run with the box unticked) shows neither."""
    from experiments.defenses.defenses import DefenseReport, DefenseRow  # noqa: PLC0415

    row = DefenseRow("jpeg", "JPEG", {"quality": 75.0}, "BPDA", 17, 17, 16, 5, 15, 15, 1.0, None, 13, 1.0, 40.5)
    plain = DefenseReport("m", "relabel", {}, True, 17, 16, 0, 0, [row])
    assert "black-box" not in defenses_view.table(plain).columns and len(defenses_view.bar_chart(plain)["data"]) == 4
    bb = DefenseReport("m", "relabel", {}, True, 17, 16, 0, 0, [row], blackbox_attack="square", blackbox_params={})
    shown = defenses_view.table(bb).iloc[0]
    assert shown["black-box"] == "13/17" and shown["queries"] == "1"
    trace = defenses_view.bar_chart(bb)["data"][-1]
    assert "black-box" in trace["name"] and trace["text"] == ["13/17"] and trace["y"] == [pytest.approx(13 / 17)]
