"""The three experiment pages, run headless with AppTest on the offline models: they render, their Run buttons
produce results, and bad input is one st.error line, never an exception."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
PAGES = {"fooling": "pages/fooling_images.py", "transfer": "pages/transfer.py", "robustness": "pages/robustness.py"}
TIMEOUT = 600  # a loaded 2-core machine; the default actions take seconds when it is idle


def _page(name: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / PAGES[name]), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.mark.parametrize(
    "name,title",
    [
        ("fooling", "Fooling images"),
        ("transfer", "Transfer between models"),
        ("robustness", "Robustness to transformations"),
    ],
)
def test_pages_render_with_their_defaults(name: str, title: str) -> None:
    at = _page(name)
    _clean(at)
    assert at.title[0].value == title
    assert any("Run" in i.value for i in at.info)  # nothing runs before the button is pressed


def test_fooling_grow_reaches_the_confidence() -> None:
    at = _page("fooling")
    at.button(key="exp.fool.run").click().run()
    _clean(at)
    data = at.session_state["exp.fool.result.grow"]["main"]
    assert data["success"] == [True] and data["done"]
    assert float(data["probs"][0][data["targets"][0]]) >= 0.99
    assert any("reached" in m.value for m in at.markdown)
    assert len(at.get("image")) >= 1 and len(at.get("plotly_chart")) >= 2


def test_fooling_evolution_reports_queries() -> None:
    at = _page("fooling")
    at.segmented_control(key="exp.fool.mode").set_value("evolve").run()
    at.number_input(key="exp.fool.gens").set_value(2)
    at.number_input(key="exp.fool.pop").set_value(4)
    at.button(key="exp.fool.run").click().run()
    _clean(at)
    data = at.session_state["exp.fool.result.evolve"]["main"]
    assert data["queries"] == 1 + 2 * 5 and data["index"] == 2
    assert any("11 queries" in m.value for m in at.markdown)


def test_fooling_visualise_beside_the_fooling_image() -> None:
    at = _page("fooling")
    at.segmented_control(key="exp.fool.mode").set_value("visualize").run()
    at.number_input(key="exp.fool.vsteps").set_value(2)
    at.button(key="exp.fool.run").click().run()
    _clean(at)
    store = at.session_state["exp.fool.result.visualize"]
    assert store["fool"]["success"] == [True] and store["vis"]["index"] == 2
    assert len(at.get("image")) >= 2


def test_fooling_gallery_one_image_per_class() -> None:
    at = _page("fooling")
    at.segmented_control(key="exp.fool.mode").set_value("gallery").run()
    at.multiselect(key="exp.fool.classes").set_value([879, 1])  # umbrella, goldfish
    at.slider(key="exp.fool.conf").set_value(0.5)
    at.button(key="exp.fool.run").click().run()
    _clean(at)
    assert any("2 of 2 classes reached" in m.value for m in at.markdown)
    assert len(at.session_state["exp.fool.result.gallery"]["main"]["png"]) == 2


def test_transfer_run_fills_the_table_and_the_matrix() -> None:
    at = _page("transfer")
    at.multiselect(key="exp.transfer.evals").set_value(["efficientnet_lite0", "efficientnet_lite1"])
    at.button(key="exp.transfer.run").click().run()
    _clean(at)
    table = at.dataframe[0].value
    assert list(table["model"]) == ["efficientnet_lite0 (attacked)", "efficientnet_lite1"]
    assert bool(table["fooled"].iloc[0])  # the relabel fools the model it was made on
    history = at.session_state["exp.transfer.history"]
    assert len(history) == 1 and set(history[0]["cells"]) == {"efficientnet_lite0", "efficientnet_lite1"}
    assert len(at.get("plotly_chart")) == 1


def test_transfer_bad_parameter_is_one_error_line() -> None:
    at = _page("transfer")
    at.radio(key="exp.transfer.preset").set_value("custom").run()
    at.selectbox(key="exp.transfer.attack").set_value("pgd").run()
    at.number_input(key="exp.transfer.pgd.eps").set_value(-1.0).run()
    assert not at.exception
    assert len(at.error) == 1 and "Eps must be between" in at.error[0].value
    assert at.button(key="exp.transfer.run").disabled


def test_robustness_plain_and_eot() -> None:
    at = _page("robustness")
    at.slider(key="exp.robust.samples").set_value(2)
    at.button(key="exp.robust.run").click().run()
    _clean(at)
    result = at.session_state["exp.robust.result"]
    assert set(result["outcomes"]) == {"plain", "EOT"}
    plain = result["reports"]["plain"]
    assert plain is not None and plain.rows[0].still_fooled
    eot = result["outcomes"]["EOT"]
    assert eot.verdict.rms_distortion > result["outcomes"]["plain"].verdict.rms_distortion
    assert len(at.get("plotly_chart")) == 2 and len(at.dataframe) == 1


def test_robustness_target_equal_to_the_class_is_one_error_line() -> None:
    at = _page("robustness")
    at.selectbox(key="exp.robust.target").set_value(282)  # tiger cat: Lite0's class of chelsea
    at.checkbox(key="exp.robust.eot").uncheck()
    at.button(key="exp.robust.run").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "target equals the image's current class" in at.error[0].value
