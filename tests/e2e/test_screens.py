"""Every page after a default run, at a laptop's (1366x768) and a projector's (1920x1080) size: screenshots kept
under artifacts/screenshots/ (`<page>_<size>.png`: the first screen, scrolled to the top, its bottom edge the fold;
`<page>_<size>_full.png`: the whole page; artifacts/ is git-ignored, for CI to keep as artifacts), and no cut-off
text where the DOM shows it.

What the truncation check covers (`_CUT_JS`): an element whose text is wider than its box (scrollWidth >
clientWidth, the mark of `text-overflow: ellipsis` or `overflow: hidden`) among widget labels (`stWidgetLabel`),
the chosen value of a selectbox, button and download-button labels, expander headers, captions, metric labels, tab
labels, and the header cells of st.table (`stTable th`). Not covered: st.dataframe, whose grid is drawn on a canvas
(its headers are not DOM; the pages give those columns widths or short names instead), multiselect chips (Streamlit
cuts them by design; the pages use short chip labels), Plotly's SVG text, and words wrapped mid-word (wrapping does
not overflow; those are seen in the screenshots).

One default run per page at the first size, then the viewport is resized for the second screenshot, so the whole
file is a few runs long.

Issue 20 (made for a projector), at 1366x768 with the sidebar open: each page's main action (`MAIN_ACTION`: its Run
button, or what is dragged where a page has no Run on its first screen) lies within the first 768 px as the page
opens; after the default run no page scrolls sideways (the document and Streamlit's main block), no table is wider
than its frame (st.table's scrollWidth, st.dataframe's grid scroller: a hidden column at the right scrolls it), no
page shows an exception or the seed documents' file numbers ("seed 000"). ADVLAB_SHOTS=/some/dir puts the
screenshots there instead of artifacts/screenshots/.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"  # as tests/e2e/conftest.py's (never imported from a conftest)

SIZES = ((1366, 768), (1920, 1080))
IDLE = "[data-test-script-state='notRunning']"
MAIN = "[data-testid='stMain']"
VERDICT = "[data-testid='stAlertContentSuccess'], [data-testid='stAlertContentWarning']"
#: Elements whose text must never be cut: each is checked, and so is every element inside it.
TEXT = [
    "[data-testid='stWidgetLabel']",
    "[data-testid='stSelectbox'] [data-baseweb='select']",
    "[data-testid='stBaseButton-primary']",
    "[data-testid='stBaseButton-secondary']",
    "[data-testid='stDownloadButton'] button",
    "[data-testid='stExpander'] summary",
    "[data-testid='stCaptionContainer']",
    "[data-testid='stMetricLabel']",
    "[data-testid='stTab']",
    "[data-testid='stTable'] th",
]
_CUT_JS = """(selectors) => {
  const cut = [];
  for (const sel of selectors) {
    for (const root of document.querySelectorAll(sel)) {
      if (!root.offsetParent) continue;  // hidden twins of buttons with tooltips
      for (const el of [root, ...root.querySelectorAll('*')]) {
        if (el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1 && el.innerText.trim())
          cut.push(sel + ': ' + el.innerText.trim().slice(0, 80));
      }
    }
  }
  return [...new Set(cut)];
}"""


def _run(key: str, done: str = "", untick: str = ""):
    """Press the Run keyed `key` and wait until it is enabled again (the run over) and the script idle; `done`:
    a selector that must show too (the Attack Lab's verdict); `untick`: a checkbox's key to clear first."""

    def default_run(page) -> None:
        if untick:
            page.locator(f".st-key-{untick} label").first.click()
            page.wait_for_timeout(500)
            page.wait_for_selector(IDLE)
        page.locator(f".st-key-{key} button:visible").first.click()
        # the run under way (Run greyed), or, for a run the server already has (identical runs are shared and
        # replayed at once), its verdict: a replay can end before the greyed button is ever drawn
        page.wait_for_selector(f".st-key-{key} button:visible[disabled]" + (f", {done}" if done else ""))
        if done:
            page.wait_for_selector(done)
        page.wait_for_selector(f".st-key-{key} button:visible:not([disabled])")
        page.wait_for_selector(IDLE)
        page.wait_for_timeout(500)

    return default_run


#: How to make a default run on each page (by its URL path); a page in app.py not named here is shot as it opens.
RUNS = {
    "": _run("run", VERDICT),
    "fooling_images": _run("exp-fool-run"),
    "transfer": _run("exp-transfer-run"),
    # Without the EOT version: with it the run takes minutes on a busy 2-core machine (190 s at load 7).
    "robustness": _run("exp-robust-run", untick="exp-robust-eot"),
    "patch": _run("exp-patch-run"),  # training a patch: 60 steps, well under a minute
}


#: Each page's main action as it opens (a selector whose first visible match must end within the first screen).
MAIN_ACTION = {
    "": ".st-key-run button",
    "fooling_images": ".st-key-exp-fool-run button",
    "transfer": ".st-key-exp-transfer-run button",
    "robustness": ".st-key-exp-robust-run button",
    "susceptibility": ".st-key-exp-sus-shipped-cap",  # the shipped study: the cap slider that recounts every figure
    "universal": ".st-key-exp-univ-run button",
    "patch": ".st-key-exp-patch-run button",  # training Run, under the sliders that place the patch beside it
    "defenses": ".st-key-exp-def-run button",
    "how_it_works": ".st-key-how-nudge",
    "challenge": ".st-key-ch-create button",  # the teacher's form: Create beside the rules
}
#: Layout problems known at 1366 px and left to another page's owner: an expected failure (xfail) naming them, until
#: the entry is removed.
KNOWN: dict[str, str] = {}
#: The Attack Lab's story after its default run (issue 20 item 1): each must lie within the first 768-px screen.
LAB_STORY = {
    "Run": ".st-key-run button",
    "the verdict": VERDICT,
    # The visible images in page order: original, adversarial, difference (the setup panel is folded by Run).
    "the adversarial image": "[data-testid='stImage'] >> visible=true >> nth=1",
    "the difference image": "[data-testid='stImage'] >> visible=true >> nth=2",
    "the bars": "[data-testid='stPlotlyChart'] >> visible=true >> nth=0",
}
#: The patch page's result after its default run (issue 20 item 3): the run's line, the new patch placed on the photo
#: and its top-5 bars, beside Run, within the first 768-px screen.
PATCH_STORY = {
    "Run": ".st-key-exp-patch-run button",
    "the run's line": "text=/Step \\d+ of \\d+/",
    "the placed patch": "text=/^With the patch at/",
    "the bars": "[data-testid='stPlotlyChart'] >> visible=true >> nth=0",
}
#: The Attack Lab's tools that have nothing to show before a run (issue 20 item 1): hidden until the run draws them.
LAB_TOOLS = {"the amplify slider": ".st-key-gain", "the Grad-CAM heading": "h5:has-text('Grad-CAM')"}
_LAYOUT_JS = r"""(main) => {
  const problems = [];
  const doc = document.scrollingElement;
  if (doc.scrollWidth > doc.clientWidth)
    problems.push(`the page scrolls sideways: ${doc.scrollWidth} > ${doc.clientWidth}`);
  const m = document.querySelector(main);
  if (m.scrollWidth > m.clientWidth)
    problems.push(`the main block scrolls sideways: ${m.scrollWidth} > ${m.clientWidth}`);
  for (const t of document.querySelectorAll("[data-testid='stTable']")) {
    if (t.offsetParent && t.scrollWidth > t.clientWidth + 1)
      problems.push(`a table is ${t.scrollWidth - t.clientWidth} px wider than its frame`);
  }
  for (const t of document.querySelectorAll("[data-testid='stDataFrame']")) {
    const grid = t.querySelector('.dvn-scroller');
    if (t.offsetParent && grid && grid.scrollWidth > grid.clientWidth + 1)
      problems.push(`a dataframe hides ${grid.scrollWidth - grid.clientWidth} px of columns at the right`);
  }
  const text = m.innerText;
  if (/seed 00\d/i.test(text)) problems.push('the page says "seed 00N"');
  if (document.querySelector("[data-testid='stException']")) problems.push('an exception is on the page');
  return problems;
}"""


def _bottom(page, selector: str) -> float:
    """Bottom edge (px from the top of the viewport) of the first visible match, the main block scrolled to the top."""
    page.evaluate(f"document.querySelector({MAIN!r}).scrollTo(0, 0)")
    box = page.locator(f"{selector} >> visible=true").first.bounding_box()
    assert box is not None, f"{selector} is not on the page"
    return box["y"] + box["height"]


def _app_pages() -> list[str]:
    """URL paths of the pages app.py routes to, in its order (the default page at the root)."""
    paths = []
    for line in (ROOT / "app.py").read_text().splitlines():
        found = re.search(r'PAGES_DIR / "(\w+)\.py"', line)
        if found:
            paths.append("" if "default=True" in line else found.group(1))
    return paths


@pytest.mark.parametrize("path", _app_pages())
def test_page_after_a_default_run(page, server: str, path: str) -> None:
    shots = Path(os.environ.get("ADVLAB_SHOTS") or ARTIFACTS / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": SIZES[0][0], "height": SIZES[0][1]})
    page.goto(f"{server}/{path}")
    page.wait_for_selector("h1")
    page.wait_for_selector(IDLE)
    page.wait_for_timeout(500)
    bottom = _bottom(page, MAIN_ACTION[path])
    assert bottom <= SIZES[0][1], f"/{path}: the main action ends at {bottom:.0f} px, below the 768-px screen"
    if path == "":
        shown = [what for what, sel in LAB_TOOLS.items() if page.locator(sel).first.is_visible()]
        assert not shown, f"before any run the Lab shows {shown} with nothing under them"
    if path in RUNS:
        RUNS[path](page)
    if path == "":
        below = {what: _bottom(page, sel) for what, sel in LAB_STORY.items()}
        assert all(b <= SIZES[0][1] for b in below.values()), f"the Lab's story below the 768-px screen: {below}"
        hidden = [what for what, sel in LAB_TOOLS.items() if not page.locator(sel).first.is_visible()]
        assert not hidden, f"after the run the Lab does not show {hidden}"
    if path == "patch":
        below = {what: _bottom(page, sel) for what, sel in PATCH_STORY.items()}
        assert all(b <= SIZES[0][1] for b in below.values()), f"the patch's result below the 768-px screen: {below}"
    problems = page.evaluate(_LAYOUT_JS, MAIN)
    cut = {}
    for width, height in SIZES:
        name = f"{path or 'attack_lab'}_{width}x{height}"
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(800)  # the layout settles (Plotly redraws at the new width)
        cut[f"{width}x{height}"] = page.evaluate(_CUT_JS, TEXT)
        page.evaluate(f"document.querySelector({MAIN!r}).scrollTo(0, 0)")
        page.screenshot(path=str(shots / f"{name}.png"))  # what one sees first, the fold at the bottom edge
        # Streamlit scrolls inside its main block, so a "full page" shot is a viewport as tall as that block.
        full = page.evaluate(f"document.querySelector({MAIN!r}).scrollHeight")
        page.set_viewport_size({"width": width, "height": max(height, int(full))})
        page.wait_for_timeout(800)
        page.screenshot(path=str(shots / f"{name}_full.png"))
    if path in KNOWN and problems:
        pytest.xfail(f"{KNOWN[path]}: {problems}")
    assert not problems, f"/{path} at 1366x768: {problems}"
    assert not any(cut.values()), f"cut-off text on /{path}: {cut}"


_SLIDER_VALUES_JS = """() => [...document.querySelectorAll("[data-testid='stSliderThumbValue']")]
  .filter((v) => v.offsetParent)
  .map((v) => ({
    text: v.innerText,
    bottom: v.querySelector('p').getBoundingClientRect().bottom,
    thumb: v.parentElement.getBoundingClientRect().top,
  }))"""


def test_presenter_view_slider_values_clear_their_track(page, server: str) -> None:
    """Issue 20 item 2: the presenter view's larger text grew each slider's value label down into its track and
    thumb (the value's box is one fixed line tall, just above the thumb). Every value shown, in the unfolded setup,
    ends above its thumb."""
    page.set_viewport_size({"width": SIZES[0][0], "height": SIZES[0][1]})
    page.goto(f"{server}/?present=1")
    page.wait_for_selector("h1")
    page.wait_for_selector(IDLE)
    page.locator("[data-testid='stExpander'] summary").first.click()  # the setup, folded in the presenter view
    page.wait_for_selector("[data-testid='stSliderThumbValue'] >> visible=true")
    page.wait_for_timeout(500)
    values = page.evaluate(_SLIDER_VALUES_JS)
    assert values, "no slider value on the page"
    into = [v for v in values if v["bottom"] > v["thumb"] + 1]
    assert not into, f"slider values drawn into their track in the presenter view: {into}"
