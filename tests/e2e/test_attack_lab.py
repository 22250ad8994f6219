"""The Attack Lab in headless Chromium: pick, run, watch, stop, download, share a link."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from PIL import Image

from images import load_image
from models import class_index, load_model, pil_to_tensor

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
RUN_TIMEOUT_S = 300  # as the fixtures' default timeout: CI machines may be slow and busy

IDLE = "[data-test-script-state='notRunning']"
STATUS = re.compile(r"^Step \d+ / \d+")
SUCCESS = "[data-testid='stAlertContentSuccess']"
VERDICT = "[data-testid='stAlertContentSuccess'], [data-testid='stAlertContentWarning']"


def _open(page, server: str, query: str = "") -> None:
    page.goto(f"{server}/{query}")
    page.wait_for_selector("[data-testid='stPlotlyChart']")  # the idle bars: the first script run is done
    page.wait_for_selector(IDLE)


def _settle(page) -> None:
    """Wait for the rerun a widget change causes (it may not have started yet when we look)."""
    page.wait_for_timeout(300)
    page.wait_for_selector(IDLE)


def _choose(page, key: str, text: str) -> None:
    """Pick an option of a selectbox by typing to search it, then clicking the exact match."""
    box = page.locator(f".st-key-{key} input")
    box.click()
    box.fill(text)
    page.get_by_role("option", name=text, exact=True).click()
    _settle(page)


def _button(page, key: str):
    """The visible button of a keyed st.button (one with a tooltip renders a hidden twin)."""
    return page.locator(f".st-key-{key} button:visible").first


def _status(page) -> str:
    return page.get_by_text(STATUS).inner_text()


def _step(page) -> int:
    return int(re.match(r"Step (\d+)", _status(page)).group(1))


def _bar_title(page) -> str:
    return page.locator("[data-testid='stPlotlyChart'] .gtitle").first.text_content() or ""


def test_pick_run_watch_and_download(page, server: str, tmp_path) -> None:
    _open(page, server)
    _button(page, "use-imagenet_00").click()  # the bull mastiff, from the gallery
    _settle(page)
    _choose(page, "target", "half track")
    assert page.locator(".st-key-image input").input_value() == "ImageNet val #00 (bull mastiff)"

    clicked = time.perf_counter()
    _button(page, "run").click()
    page.get_by_text(STATUS).wait_for()
    first_update = time.perf_counter() - clicked
    titles = set()
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not page.locator(VERDICT).count() and time.monotonic() < deadline:
        titles.add(_bar_title(page))
        page.wait_for_timeout(100)
    page.wait_for_selector(SUCCESS)
    page.wait_for_selector(IDLE)
    verdict = page.locator(SUCCESS).inner_text()
    assert "half track" in verdict and "RMS distortion" in verdict and "/255" in verdict
    assert len({t for t in titles if "at step" in t}) >= 2, titles  # the bars moved through the steps
    print(f"click to first live update in the browser: {first_update:.2f} s")

    page.set_viewport_size({"width": 1600, "height": 2000})
    page.wait_for_timeout(500)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "attack_lab_finished.png"), full_page=True)

    with page.expect_download() as info:
        _button(page, "download-png").click()
    path = tmp_path / "adversarial.png"
    info.value.save_as(path)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (224, 224)
        adversarial = im.convert("RGB")
    with page.expect_download() as info:
        _button(page, "download-json").click()
    report = json.loads(Path(info.value.path()).read_text())
    assert report["settings"]["image"] == "imagenet_00" and report["settings"]["target"] == "half track"
    assert report["verdict"]["success"] and report["verdict"]["label"] == "half track"
    assert report["steps_run"] == len(report["history"]["step"])

    model = load_model("efficientnet_lite0")
    probs = model.probabilities(pil_to_tensor(adversarial))[0]
    assert int(probs.argmax()) == class_index("half track")
    original = model.preprocess(load_image("imagenet_00"))
    assert int(np.abs(np.asarray(adversarial, int) - np.asarray(original, int)).max()) <= 8  # invisible change


def test_stop_mid_run_keeps_what_was_reached(page, server: str) -> None:
    _open(page, server, "?image=chelsea&target=umbrella&attack=relabel&step_size=0.01&steps=10000&max_rms=0.01")
    _button(page, "run").click()
    page.get_by_text(STATUS).wait_for()
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while _step(page) < 3 and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert not page.locator(VERDICT).count(), "the long run finished before Stop could be pressed"
    pressed = time.perf_counter()
    _button(page, "stop").click()
    page.get_by_text(re.compile(r"· stopped")).wait_for()
    stopped_after = time.perf_counter() - pressed
    page.wait_for_selector(IDLE)
    verdict = page.locator(VERDICT).inner_text()
    assert ("Fooled!" in verdict or "Not fooled." in verdict) and "Stopped at step" in verdict
    reached = int(re.search(r"Stopped at step (\d+)", verdict).group(1))
    assert 3 <= reached < 10000
    assert _button(page, "download-png").is_enabled()
    assert _button(page, "run").is_enabled()
    print(f"Stop to 'stopped' on the page: {stopped_after:.2f} s (at step {reached})")
    time.sleep(2)
    assert f"Stopped at step {reached}" in page.locator(VERDICT).inner_text()  # nothing runs on after Stop


def test_shared_link_restores_the_settings_without_running(page, server: str) -> None:
    query = "?image=coffee&model=efficientnet_lite0&target=tarantula&attack=bim&eps=3&step_size=0.5&steps=7"
    _open(page, server, query)
    assert page.locator(".st-key-image input").input_value() == "Cup of coffee"
    assert page.locator(".st-key-target input").input_value() == "tarantula"
    assert page.locator(".st-key-attack input").input_value().startswith("BIM")
    assert page.locator(".st-key-bim-steps input").input_value() == "7"
    assert page.locator(".st-key-bim-eps input").input_value() == "3"
    assert page.get_by_text("Press Run to watch").count() == 1  # opening a link never starts a run
    assert not page.get_by_text(STATUS).count()
    params = parse_qs(urlparse(page.url).query)
    assert params["target"] == ["tarantula"] and params["steps"] == ["7"] and params["image"] == ["coffee"]

    _choose(page, "target", "goldfish")  # the URL follows the widgets, ready to be shared
    assert parse_qs(urlparse(page.url).query)["target"] == ["goldfish"]


def test_two_sessions_at_once_get_their_own_results(browser, server: str) -> None:
    contexts = [browser.new_context(viewport={"width": 1440, "height": 900}) for _ in range(2)]
    pages = [c.new_page() for c in contexts]
    try:
        stories = [("chelsea", "umbrella"), ("rocket", "banana")]
        for pg, (image, target) in zip(pages, stories, strict=True):
            pg.set_default_timeout(RUN_TIMEOUT_S * 1000)
            _open(pg, server, f"?image={image}&target={target}")
        for pg in pages:
            _button(pg, "run").click()
        for pg, (_, target) in zip(pages, stories, strict=True):
            pg.wait_for_selector(SUCCESS)
            assert f"classified as {target}" in pg.locator(SUCCESS).inner_text()
    finally:
        for c in contexts:
            c.close()
