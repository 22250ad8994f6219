"""A setting changed in the same request as the Run click is the one the run uses.

Streamlit drops a value that arrives for a widget registered as disabled, and the pages disable their settings
while a run is going on; a number typed without pressing Enter reaches the server together with the click. The Run
callbacks re-assign the settings (ui.state.pin_values) so that the change survives. Also: a run that was stopped
says so and shows the step it really reached.
"""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 600  # a loaded 2-core machine


def test_attack_lab_uses_a_parameter_changed_with_the_click() -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.number_input(key="relabel-steps").set_value(3)  # no run in between: arrives with the click
    at.button(key="run").click().run()
    assert not at.exception, at.exception
    record = at.session_state["lab.record"]
    assert record.params["steps"] == 3 and record.planned_steps == 3
    assert at.number_input(key="relabel-steps").value == 3 and not at.number_input(key="relabel-steps").disabled


def test_fooling_images_uses_a_setting_changed_with_the_click_and_reports_a_stop() -> None:
    at = AppTest.from_file(str(ROOT / "pages/fooling_images.py"), default_timeout=TIMEOUT).run()
    at.segmented_control(key="exp.fool.mode").set_value("evolve").run()
    at.number_input(key="exp.fool.gens").set_value(3)
    at.number_input(key="exp.fool.pop").set_value(4)
    at.button(key="exp.fool.run").click().run()
    assert not at.exception, at.exception
    store = at.session_state["exp.fool.result.evolve"]
    assert store["main"]["index"] == 3 and store["main"]["queries"] == 1 + 3 * 5
    assert not at.button(key="exp.fool.run").disabled and at.button(key="exp.fool.stop").disabled

    # As after a Stop between two redraws: the drawn snapshot is older than the last step, which never finished.
    last = store["main.last"]
    last.done = False
    store["main"]["index"] = 1
    at.run()
    status = next(m.value for m in at.markdown if m.value.startswith("**Generation"))
    assert status.startswith("**Generation 3**") and status.endswith("stopped"), status
