"""The projector theme (.streamlit/config.toml): a light and a dark variant, and the blue source / red target of every
chart (ui.figures), and the green RMS limit of the Lab's, readable on both, by the WCAG 2 contrast ratio computed here
from the hex values.

Why 4.5:1 and not the 3:1 WCAG asks of graphics: a washed-out projector loses contrast, so the colours keep the margin
WCAG asks of body text. Only a pure white and a pure black page leave room for one colour to pass against both.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from ui import figures

ROOT = Path(__file__).resolve().parents[1]
MIN_RATIO = 4.5


def luminance(hex_colour: str) -> float:
    """WCAG 2 relative luminance of "#rrggbb"."""
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def theme() -> dict:
    return tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["theme"]


def test_the_formula_on_known_pairs() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)  # WCAG's classic just-failing grey


@pytest.mark.parametrize("variant", ["light", "dark"])
@pytest.mark.parametrize("colour", ["SOURCE_COLOUR", "TARGET_COLOUR", "RMS_COLOUR"])
def test_source_target_and_rms_colours_read_on_both_backgrounds(variant: str, colour: str) -> None:
    background = theme()[variant]["backgroundColor"]
    ratio = contrast(getattr(figures, colour), background)
    assert ratio >= MIN_RATIO, f"{colour} on the {variant} page: {ratio:.2f}:1"


@pytest.mark.parametrize("variant", ["light", "dark"])
def test_text_reads_on_its_background(variant: str) -> None:
    t = theme()[variant]
    assert contrast(t["textColor"], t["backgroundColor"]) >= 15
    assert contrast(t["textColor"], t["secondaryBackgroundColor"]) >= 12  # widgets, the sidebar


def test_the_heatmap_runs_to_the_target_red() -> None:
    fig = figures.heatmap(["a"], ["b"], [[0.5]], [["50%"]], title="t")
    assert fig["data"][0]["colorscale"][-1][1] == figures.TARGET_COLOUR


def test_cloud_reads_the_same_config() -> None:
    """Community Cloud runs `streamlit run cloud/streamlit_app.py` from the repository root and reads only the root's
    .streamlit/config.toml: a second one beside the entry point would be ignored, so there must be none."""
    assert not (ROOT / "cloud" / ".streamlit").exists()
    assert "paddingTop" in theme()
