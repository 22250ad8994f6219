"""The Defenses and detection page, headless with AppTest on Lite0: it opens, a small defenses Run fills the table,
and "Spot the adversarial" deals and reveals the same attacked set for the same seed, from the URL."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from experiments.defenses import view as defenses_view

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "pages" / "defenses.py")
K = "exp.def."
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


def test_page_opens_idle() -> None:
    at = _page()
    assert at.title[0].value == "Defenses and detection"
    assert any("Press **Run**" in i.value for i in at.info)
    assert not at.session_state[K + "job"].busy
    assert "seed" not in at.query_params  # nothing dealt, nothing computed, until asked


@pytest.mark.slow
def test_defenses_run_on_a_small_setting_fills_the_table() -> None:
    at = _page()
    at.multiselect(key=K + "defenses").set_value(["bits"])
    at.slider(key=K + "images").set_value(2)
    at.number_input(key=K + "relabel.steps").set_value(20)
    at.number_input(key=K + "relabel.step_size").set_value(1.0)
    at.button(key=K + "run").click().run()
    _clean(at)
    job = at.session_state[K + "job"]
    assert job.status == "finished"
    report = job.data["report"]
    (row,) = report.rows
    assert row.defense == "bits" and report.images_total == 2 and row.adaptive_fooled is not None
    table = at.dataframe[0].value
    assert list(table["defense"]) == ["Bit-depth reduction (bits=5)"]
    assert table["adaptive by"][0] == "BPDA"


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
