"""The Attack Lab page, headless (streamlit.testing.v1.AppTest), and the pure parts of its Streamlit glue.

AppTest sees the final state of each script run, so a click on Run is checked once the attack has finished. Runs
are kept short: the default story (chelsea -> umbrella with relabel) succeeds in about 6 steps.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import json
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from attacks import ATTACKS, DEFAULT_CONFIDENCE
from experiments.lab import figures as lab_figures
from experiments.lab import record as lab_record
from experiments.lab import view as lab_view
from experiments.robustness import figures as robustness_figures
from models import IMAGENET_CATEGORIES, class_index
from ui import figures, run
from ui import state as S

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 300  # seconds per script run: generous, CI machines may be slow and busy


def _app(**query: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.query_params.update(query)
    return at.run()


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _huge_png_header(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose IHDR claims width x height (with a correct CRC): only the header is ever read."""
    data = _png(Image.new("RGB", (1, 1)))
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))
    return data[:8] + chunk + data[8 + len(chunk) :]


# ------------------------------------------------------------------------------------------------ the page


@pytest.fixture(scope="module")
def finished() -> AppTest:
    """The default page after one press on Run (chelsea -> umbrella, relabel, paper defaults)."""
    at = _app()
    assert not at.exception
    at.button(key="run").click().run()
    return at


def test_first_load_shows_the_setup_and_no_run() -> None:
    at = _app()
    assert not at.exception, at.exception
    assert not _errors(at)
    assert at.title[0].value == "Attack Lab"
    assert at.selectbox(key=S.IMAGE).value == "chelsea"
    assert at.selectbox(key=S.TARGET).value == class_index("umbrella")
    assert not at.button(key="run").disabled and at.button(key="stop").disabled
    assert "lab.record" not in at.session_state  # opening the page never starts a run
    assert at.query_params["target"] == "umbrella" and at.query_params["image"] == "chelsea"
    assert at.query_params["confidence"] == "0.9"


def test_default_run_completes_with_charts_images_and_verdict(finished: AppTest) -> None:
    at = finished
    assert not at.exception, at.exception
    assert not _errors(at)
    record = at.session_state["lab.record"]
    assert record.status == "finished"
    assert record.verdict is not None and record.verdict.success
    assert record.verdict.label == "umbrella"
    assert record.flip_step is not None and record.steps[-1] >= record.flip_step
    # The default goal: stop once p(umbrella) >= 0.9 on the 8-bit image, within the paper's RMS cap.
    assert record.confidence == S.DEFAULT_CONFIDENCE
    assert record.verdict.target_probability >= S.DEFAULT_CONFIDENCE and record.verdict.rms_distortion <= 0.01
    assert len(at.get("plotly_chart")) >= 2  # probability bars and the history lines
    captions = [c for img in at.get("image") for c in img.captions]
    assert any(c.startswith("Original") for c in captions)
    assert any(c.startswith("Adversarial") for c in captions)
    assert any(c.startswith("Difference ×10") for c in captions)
    assert sum("· adversarial" in c or "· original" in c for c in captions) == 4  # Grad-CAM
    assert any("umbrella" in s.value and "RMS distortion" in s.value for s in at.success)
    assert len(at.get("download_button")) == 2
    assert not at.button(key="run").disabled  # the page is usable again after the run
    assert at.session_state[S.SETUP_OPEN] is False  # Run folded the setup so the live view is in sight


def test_downloaded_png_is_the_verified_image(finished: AppTest) -> None:
    record = finished.session_state["lab.record"]
    with Image.open(io.BytesIO(record.adversarial_png)) as im:
        pixels = np.asarray(im.convert("RGB"))
    assert np.array_equal(pixels, record.last_image)
    assert int(np.abs(pixels.astype(int) - record.original.astype(int)).max()) == record.verdict.max_change_255
    report = record.report()
    assert report["settings"]["target"] == "umbrella" and report["verdict"]["success"]
    assert len(report["history"]["step"]) == len(record.steps)


def test_replay_scrubber_redraws_an_earlier_step(finished: AppTest) -> None:
    at = finished
    record = at.session_state["lab.record"]
    slider = at.slider(key=f"replay-{record.run_id}")
    assert slider.value == len(record.steps) - 1
    slider.set_value(0).run()
    assert not at.exception, at.exception
    assert any(c == "Adversarial at step 0" for img in at.get("image") for c in img.captions)
    # A short run keeps every step's image (the replay shows the bars' own step, never an older image).
    assert len(record.steps) <= record.snapshots.capacity
    assert all(record.snapshots.at(s)[0] == s for s in record.steps), sorted(record.snapshots.frames)
    # A step between snapshots (a long run, thinned): the caption says whose image it is, beside the bars of the step.
    snapped = [s for s in record.steps if record.snapshots.at(s) is not None and record.snapshots.at(s)[0] != s]
    if snapped:
        slider.set_value(record.steps.index(snapped[0])).run()
        shown = record.snapshots.at(snapped[0])[0]
        want = f"Replay at step {snapped[0]}: image of step {shown}, the nearest snapshot"
        assert any(c == want for img in at.get("image") for c in img.captions)


@pytest.mark.parametrize(
    ("query", "expect_target"),
    [
        ({"attack": "fgsm", "target": "untargeted", "eps": "8"}, None),
        ({"attack": "bim", "target": "least-likely", "steps": "2"}, "least-likely"),
    ],
    ids=["fgsm-untargeted", "bim-least-likely"],
)
def test_other_attacks_and_special_targets_run(query: dict[str, str], expect_target: str | None) -> None:
    at = _app(**query)
    at.button(key="run").click().run()
    assert not at.exception, at.exception
    assert not _errors(at)
    record = at.session_state["lab.record"]
    assert record.status == "finished" and record.attack_name == query["attack"]
    # one confidence rule, targeted or not (issue 17 item 4: untargeted runs were forced to 0, the slider hidden)
    assert record.confidence == at.slider(key=S.CONFIDENCE).value == DEFAULT_CONFIDENCE
    if expect_target is None:
        assert record.target is None and record.report()["target"] is None
    else:
        assert record.target == int(record.probs0.argmin())
    assert len(at.get("plotly_chart")) >= 2
    assert len(at.success) + len(at.warning) == 1  # a verdict either way


def test_upload_that_is_not_an_image_is_one_error() -> None:
    at = _app()
    at.session_state[S.SOURCE] = "Upload"
    at.run()
    at.get("file_uploader")[0].set_value(("notes.txt", b"this is not an image", "text/plain")).run()
    assert not at.exception, at.exception
    assert any("not an image" in e for e in _errors(at))
    assert at.button(key="run").disabled
    assert not any("Press **Run**" in i.value for i in at.info)  # no invitation to press a disabled button
    assert any("Run needs" in w.value for w in at.warning)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (_png(Image.new("RGB", (64, 64), "red"))[:60], "truncated or corrupt"),
        (_huge_png_header(60000, 60000), "megapixels"),
    ],
    ids=["truncated", "enormous"],
)
def test_bad_uploads_are_one_error_each(content: bytes, words: str) -> None:
    at = _app()
    at.session_state[S.SOURCE] = "Upload"
    at.run()
    at.get("file_uploader")[0].set_value(("photo.png", content, "image/png")).run()
    assert not at.exception, at.exception
    errors = _errors(at)
    assert len(errors) == 1 and words in errors[0], errors


def test_good_upload_is_used() -> None:
    at = _app()
    captions = [c for img in at.get("image") for c in img.captions]
    assert "224×224 pixels" in captions and not any("chelsea" in c for c in captions)  # a sample: no id (a walk)
    at.session_state[S.SOURCE] = "Upload"
    at.run()
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    at.get("file_uploader")[0].set_value(("mine.png", _png(image), "image/png")).run()
    assert not at.exception, at.exception
    assert not _errors(at)
    assert any("mine.png" in c for img in at.get("image") for c in img.captions)
    assert not any("enlarged" in c.value for c in at.caption)


def test_tiny_upload_says_it_is_enlarged() -> None:
    at = _app()
    at.session_state[S.SOURCE] = "Upload"
    at.run()
    at.get("file_uploader")[0].set_value(("tiny.png", _png(Image.new("RGB", (4, 4), "red")), "image/png")).run()
    assert not at.exception, at.exception
    assert any(c.value.startswith("Your image is only 4×4 pixels") for c in at.caption)


def test_animated_upload_says_only_its_first_frame_is_used() -> None:
    frames = [Image.new("RGB", (64, 64), c) for c in ("red", "green", "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    at = _app()
    at.session_state[S.SOURCE] = "Upload"
    at.run()
    at.get("file_uploader")[0].set_value(("anim.gif", buf.getvalue(), "image/gif")).run()
    assert not at.exception, at.exception
    assert any("3 frames" in c.value and "only the first frame is used" in c.value for c in at.caption)


def test_the_page_says_when_other_sessions_are_running() -> None:
    """The shared counter of runs being driven (ui.run.busy_note): another session's run of another page shows as a
    caption on the Lab; another Lab run does not (the scheduler batches the Lab's runs and a queued one says its
    place), but it does on a page whose runs are not scheduled."""
    running = run._running_now()
    busy = ":material/hourglass_top: The server is busy: another run"
    for other, shown in (("another-session/exp.univ.job", True), ("another-session/lab.job", False)):
        with running.lock:
            running.ids.add(other)
        try:
            assert any(c.value.startswith(busy) for c in _app().caption) == shown, other
        finally:
            with running.lock:
                running.ids.discard(other)
    with running.lock:
        running.ids.add("another-session/lab.job")
    try:
        page = AppTest.from_file(str(ROOT / "pages" / "universal.py"), default_timeout=120).run()
        assert any(c.value.startswith(busy) for c in page.caption)
    finally:
        with running.lock:
            running.ids.discard("another-session/lab.job")
    assert not any("server is busy" in c.value for c in _app().caption)


def test_unreachable_online_model_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import models.zoo
    from models import weights_cached

    if weights_cached("resnet50"):
        pytest.skip("resnet50 weights are cached on this machine")
    monkeypatch.setattr(models.zoo, "_network_reachable", lambda url, timeout=3.0: False)  # never download
    at = _app()
    at.selectbox(key=S.MODEL).set_value("resnet50").run()
    assert not at.exception, at.exception
    assert any(
        "weights for resnet50 are not in the local cache and cannot be downloaded: no network" in e for e in _errors(at)
    )
    assert at.button(key="run").disabled
    at.selectbox(key=S.MODEL).set_value("efficientnet_lite0").run()  # the page stays usable
    assert not _errors(at) and not at.button(key="run").disabled


def test_target_equal_to_the_current_class_is_refused() -> None:
    at = _app(target="tiger cat")  # Lite0's top class for chelsea
    assert not at.exception, at.exception
    assert any("current class (tiger cat)" in e for e in _errors(at))
    assert at.button(key="run").disabled


def test_shared_url_sets_the_page_up_without_running() -> None:
    at = _app(
        image="coffee",
        model="efficientnet_lite0",
        target="tarantula",
        attack="bim",
        steps="7",
        eps="3",
        step_size="0.5",
    )
    assert not at.exception, at.exception
    assert not _errors(at)
    assert at.selectbox(key=S.IMAGE).value == "coffee"
    assert at.selectbox(key=S.TARGET).value == class_index("tarantula")
    assert at.selectbox(key=S.ATTACK).value == "bim"
    assert at.number_input(key=S.param_key("bim", "steps")).value == 7
    assert at.number_input(key=S.param_key("bim", "eps")).value == 3.0
    assert "lab.record" not in at.session_state
    assert at.query_params["steps"] == "7" and at.query_params["attack"] == "bim"


def test_bad_link_values_are_reported_and_ignored() -> None:
    at = _app(image="nope", target="not a class", steps="-4", step_size="abc")
    assert not at.exception, at.exception
    errors = _errors(at)
    assert any("The link's image 'nope'" in e for e in errors)
    assert any("unknown class name" in e for e in errors)
    assert any("steps was ignored" in e for e in errors)
    assert any("The link's step size was ignored: 'abc' is not a number." == e for e in errors), errors
    assert at.selectbox(key=S.IMAGE).value == "chelsea"  # the defaults stay


def test_story_preset_sets_image_and_target() -> None:
    at = _app()
    at.pills[0].set_value("Dog → half track").run()
    assert not at.exception, at.exception
    assert at.selectbox(key=S.IMAGE).value == "imagenet_00"
    assert at.selectbox(key=S.TARGET).value == class_index("half track")
    assert at.pills[0].value is None


def test_two_sessions_share_the_model_and_get_their_own_results(finished: AppTest) -> None:
    """A second session with another story gets its own record; both use the one cached model.

    (AppTest cannot run two sessions at the same moment; tests/e2e runs two browsers at once.)
    """
    other = _app(image="coffee", target="tarantula")
    other.button(key="run").click().run()
    assert not other.exception, other.exception
    mine, theirs = finished.session_state["lab.record"], other.session_state["lab.record"]
    assert mine is not theirs
    assert (mine.verdict.label, theirs.verdict.label) == ("umbrella", "tarantula")
    assert mine.image_name == "chelsea" and theirs.image_name == "coffee"
    from ui import loaders

    assert loaders.get_model("efficientnet_lite0") is loaders.get_model("efficientnet_lite0")


def test_a_replayed_run_says_so_instead_of_its_blink_of_a_time(finished: AppTest) -> None:
    """Issue 20 (a walk): the same default run again, after the first finished, is replayed from the scheduler;
    its status line said "0.1 s" as if the attack took that long."""
    again = _app()
    again.button(key="run").click().run()
    assert not again.exception, again.exception
    first, second = finished.session_state["lab.record"], again.session_state["lab.record"]
    assert second.replayed and second.shared  # (the first may be a replay too: the suite ran it before)
    assert second.verdict.label == first.verdict.label == "umbrella"
    line = next(m.value for m in again.markdown if m.value.startswith("**Step "))
    assert "replayed from an identical finished run" in line, line
    assert " s · " not in line.split("replayed")[0], line  # no own time before it
    assert "running" not in line and "finished" not in line.split("finished run")[1], line  # no "· running" after it


# ------------------------------------------------------------------------------------------------ the glue


def test_stop_keeps_what_was_reached(lite0) -> None:
    """What the Stop rerun does: verify the last recorded image and keep the history (no Streamlit needed)."""
    from attacks import make_attack
    from images import load_image
    from ui import loaders
    from ui.pickers import AttackChoice, ImageChoice, ModelInput

    png = loaders.to_png(lite0.preprocess(load_image("chelsea")))
    probs = lite0.probabilities(lite0.to_tensor(load_image("chelsea")))[0].numpy()
    seen = ModelInput("efficientnet_lite0", lite0, png, probs)
    attack = make_attack("relabel", step_size=0.05, steps=500)
    choice = AttackChoice("relabel", dict(attack.hparams), attack)
    record = lab_view.new_record(seen, ImageChoice("chelsea", "chelsea"), class_index("umbrella"), choice, {})
    for _ in range(3):
        record.record(next(record.steps_iter))
    lab_view.finish(record, "stopped")
    assert record.status == "stopped" and record.steps == [0, 1, 2] and record.steps_iter is None
    assert record.verdict is not None and not record.verdict.success
    assert record.verdict.rms_distortion == pytest.approx(record.rms[-1], abs=1e-6)
    assert np.array_equal(np.asarray(loaders.from_png(record.adversarial_png)), record.last_image)


def test_bar_rows_keep_their_order() -> None:
    rows = figures.BarRows(source=0, target=1, n_rows=5)
    p = np.zeros(10)
    p[[0, 1, 2, 3, 4]] = [0.5, 0.1, 0.2, 0.15, 0.05]
    assert rows.update(p) == [0, 1, 2, 3, 4]
    p[7], p[4] = 0.3, 0.0  # a newcomer takes the weakest other row's place, in place
    assert rows.update(p) == [0, 1, 2, 3, 7]
    p[2] = 0.0
    p[3] = 0.6  # reordering of probabilities does not reorder rows
    assert rows.update(p) == [0, 1, 2, 3, 7]


def test_figures_have_fixed_axes_and_mark_the_flip() -> None:
    bars = figures.probability_bars([5, 6], [0.2, 0.7], ["a", "b"], source=5, target=6)
    assert bars["layout"]["xaxis"]["range"] == [0, 1]
    assert bars["data"][0]["marker"]["color"] == [figures.SOURCE_COLOUR, figures.TARGET_COLOUR]
    lines = lab_figures.history_lines(
        list(range(5000)),
        [0.5] * 5000,
        [0.1] * 5000,
        [0.001] * 5000,
        source_label="cat",
        target_label="umbrella",
        flip_step=4321,
        rms_cap=0.01,
    )
    assert len(lines["data"][0]["x"]) <= 410 and 4321 in lines["data"][0]["x"]
    assert any(s.get("x0") == 4321 for s in lines["layout"]["shapes"])
    # An early flip's note stands right of its line (it was cut at the chart's left edge), a late one left of it.
    early = lab_figures.history_lines(
        list(range(100)),
        [0.5] * 100,
        [0.1] * 100,
        [0.0] * 100,
        source_label="a",
        target_label="b",
        flip_step=4,
        rms_cap=None,
    )
    assert early["layout"]["annotations"][0]["xanchor"] == "left"
    assert lines["layout"]["annotations"][0]["xanchor"] == "right"
    # A series at p = 0 everywhere is drawn above the axis line, not under it.
    zero = figures.lines([1, 2], {"plain": [0.0, 0.0]}, title="t", x_title="x", y_title="y")
    assert zero["layout"]["yaxis"]["range"][0] < 0 and zero["data"][0]["cliponaxis"] is False
    bars = robustness_figures.still_fooled_bars({"plain": [("Rotation", 0, 5)]}, {"plain": "blue"})
    assert bars["data"][0]["x"][0] > 0 and bars["data"][0]["text"] == ["0/5"]
    labels = figures.row_labels([134, 517, 1], IMAGENET_CATEGORIES, source=1, target=None)
    assert len(set(labels)) == 3  # the two "crane" classes stay distinguishable


def test_a_line_drawn_over_another_is_dashed_so_both_show() -> None:
    """Issue 20: the patch page's grey control lay on the noise control (both ~0%) and, drawn last in one solid
    colour, hid it. A series covering a stretch of an earlier one is dashed with open markers; one lying on it at
    every point says so in its legend; a crossing at one point, or a series apart, keeps the plain solid line."""
    sizes = ["5%", "10%", "15%", "20%", "25%"]
    heldout = {"patch": [0.15, 0.86, 0.99, 0.98, 0.98], "noise": [0, 0, 0, 0.005, 0.005], "grey": [0, 0, 0, 0, 0.005]}
    patch, noise, grey = figures.lines(sizes, heldout, title="t", x_title="x", y_title="", categorical_x=True)["data"]
    for solid in (patch, noise):
        assert "dash" not in solid["line"] and "marker" not in solid
    assert grey["line"]["dash"] in figures.OVERLAP_DASHES and grey["marker"]["symbol"].endswith("-open")
    assert grey["name"] == "grey (≈ noise)" and grey["y"] == heldout["grey"]  # the values are the data's
    # Partly on it: dashed, but its legend claims nothing.
    part = figures.lines([1, 2, 3], {"a": [0, 0, 0.5], "b": [0, 0, 0.9]}, title="t", x_title="x", y_title="")
    assert part["data"][1]["line"]["dash"] == "dash" and part["data"][1]["name"] == "b"
    # Crossing once hides nothing (b stays solid); c lies on a everywhere: dashed, and its legend says so.
    cross = figures.lines(
        [1, 2, 3], {"a": [0, 0.5, 1], "b": [1, 0.5, 0], "c": [0, 0.5, 1]}, title="t", x_title="x", y_title=""
    )
    assert "dash" not in cross["data"][1]["line"]
    assert cross["data"][2]["line"]["dash"] == "dash" and cross["data"][2]["name"] == "c (≈ a)"


def test_throttle_keeps_drawing_within_its_budget() -> None:
    throttle = run.Throttle(min_interval=0.1, budget=0.1)
    now, drawn = 0.0, 0.0
    for _ in range(1000):  # a simulated run: 0.05 s steps, a draw costs 0.03 s
        now += 0.05
        if throttle.due(now):
            now += 0.03
            throttle.spent(now - 0.03, now, now)
            drawn += 0.03
    assert drawn / now <= 0.1 + 1e-9


def test_snapshots_stay_bounded_over_a_long_run() -> None:
    snaps = lab_record.Snapshots(capacity=16)
    frame = np.zeros((4, 4, 3), np.uint8)
    for step in range(0, 10000, 7):
        snaps.add(step, frame)
    assert len(snaps.frames) <= 16 and max(snaps.frames) == 9996 and min(snaps.frames) == 0
    assert snaps.at(5000)[0] <= 5000
    # every step of a 1000-step run: the kept ones evenly spaced (one stride), the last step always among them
    snaps = lab_record.Snapshots(capacity=16)
    for step in range(1000):
        snaps.add(step, frame)
    kept = sorted(snaps.frames)
    assert len(kept) <= 16 and kept[-1] == 999 and kept[0] == 0
    assert len({b - a for a, b in zip(kept[:-1], kept[1:-1], strict=False)}) == 1, kept


def test_no_gradients_in_pages_or_ui() -> None:
    for path in [ROOT / "app.py", *(ROOT / "pages").glob("*.py"), *(ROOT / "ui").glob("*.py")]:
        text = path.read_text()
        assert not re.search(r"autograd|\.backward\(|requires_grad_\(True\)", text), path


def _imports(path: Path) -> list[tuple[str, str | None]]:
    """(module, alias) of every import in a file, at any depth (a function-level import counts too)."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, a.asname) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            found += [(f"{node.module}.{a.name}", a.asname) for a in node.names]
    return found


def test_pages_and_ui_import_no_torch_and_use_no_one_letter_aliases() -> None:
    """Pages are short scripts; ui/ and each feature's view.py are Streamlit glue: tensor work lives in the
    feature's engine modules (and the core)."""
    views = list((ROOT / "experiments").rglob("view.py"))
    assert len(views) >= 8  # lab, fooling, transfer, robustness, study, universal, defenses, explainers
    files = [*(ROOT / "pages").glob("*.py"), *(ROOT / "ui").glob("*.py"), *views]
    for path in files:
        for module, alias in _imports(path):
            assert module.split(".")[0] != "torch", f"{path.name} imports {module}"
            assert alias is None or len(alias) > 1, f"{path.name} imports {module} as {alias}"
    for path in (ROOT / "pages").glob("*.py"):
        assert len(path.read_text().splitlines()) <= 155, f"{path.name} is no longer a short page"


def test_engine_and_experiments_import_no_streamlit() -> None:
    """Only the Streamlit layer imports Streamlit: app.py, ui/, pages/, files named view.py (and the UI benchmark,
    which drives pages). Checked over every package and its subpackages (experiments/explainers too)."""
    allowed_dirs = {"ui", "pages", "tests", "cloud"}
    checked = 0
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0].startswith(".") or rel.parts[0] in allowed_dirs or path.name == "view.py":
            continue
        if rel.as_posix() in {"app.py", "benchmarks/bench_ui.py", "benchmarks/bench_challenge.py"}:
            continue
        checked += 1
        assert all(m.split(".")[0] != "streamlit" for m, _ in _imports(path)), rel
    assert checked > 60


def test_no_engine_module_loads_streamlit_even_indirectly() -> None:
    """The direct-import guard above misses an engine module that imports a ui/ module (which imports Streamlit).
    Importing every engine module of the core and the features in a fresh interpreter must leave Streamlit unloaded."""
    engine = [
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for top in ("attacks", "models", "images", "experiments")
        for p in (ROOT / top).rglob("*.py")
        if p.name not in ("view.py", "__init__.py")
    ]
    assert len(engine) > 40
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in engine)
    code += "loaded = sorted(m for m in sys.modules if m == 'streamlit' or m.startswith('ui.'))\nprint(loaded)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "streamlit" not in out.stdout.strip().strip("[]"), out.stdout


def test_router_relies_on_a_streamlit_internal_that_still_exists() -> None:
    """ui/router.py switches off Streamlit's pages-folder mode through PagesManager.uses_pages_directory, which no
    public API offers (see its docstring). A Streamlit release that renames the flag must fail here, not in class."""
    from streamlit.runtime.pages_manager import PagesManager

    assert isinstance(PagesManager.uses_pages_directory, (bool, type(None)))


def test_app_is_a_router_only() -> None:
    """app.py: page config, navigation and the presenter view's switch (which decides where the links go), nothing
    heavier: ui.presenter imports Streamlit alone."""
    text = (ROOT / "app.py").read_text()
    assert "st.navigation(PAGES" in text and ".run()" in text and 'layout="wide"' in text
    assert "import torch" not in text and re.findall(r"^from ui import (.+)$", text, re.M) == ["presenter"]
    imports = re.findall(r"^(?:from|import) (\S+)", (ROOT / "ui" / "presenter.py").read_text(), re.M)
    assert set(imports) == {"__future__", "streamlit"}, imports


def test_parse_target_and_url_text_round_trip() -> None:
    for choice in [*S.TARGET_SPECIALS, class_index("umbrella"), 134, 517]:
        assert S.parse_target(S.target_text(choice)) == choice


def test_a_job_that_ends_hands_its_free_memory_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """ui.run: every end of a job (finished, stopped, failed) calls glibc's malloc_trim, which gave ~260 MiB back
    after a Lite0 run (benchmarks/bench_cloud.py: 1191 -> 1047 MiB after one run)."""
    from ui import run

    calls = []
    monkeypatch.setattr(run, "return_free_memory", lambda: calls.append(1))
    job = run.Job("k")
    for status in ("finished", "stopped", "failed"):
        job.status, job.work = "running", iter(())
        job.end(status)
        assert job.work is None
    assert len(calls) == 3
    if sys.platform.startswith("linux"):
        assert run._LIBC is not None  # glibc found: the trim really runs here and on Cloud


def test_a_run_interrupted_before_its_first_step_resumes() -> None:
    """ui.run.job: a rerun landing after Run built the work but before its first step (a challenge's nickname Enter
    under load) used to settle the run "stopped" at step 0; a created, a paused and a plain iterator resume, a
    finished or closed generator does not."""
    from ui import run

    def work():
        yield 1
        yield 2

    job = run.Job("k", status="running")
    job.work = work()
    assert job._resumable()  # created, never advanced
    next(job.work)
    assert job._resumable()  # paused at a yield
    job.work.close()
    assert not job._resumable()  # closed by an interruption
    job.work = iter([1, 2])
    assert job._resumable()
    job.work = None
    assert not job._resumable()


def _greyed_then_fixed(words: str, **query: str) -> AppTest:
    """The Lab opened on a link whose Run is greyed with `words` said beside it; its one-click fix pressed."""
    at = _app(**query)
    assert not at.exception, at.exception
    assert at.button(key="run").disabled
    assert any(words in w.value for w in at.warning), [w.value for w in at.warning]
    at.button(key="lab-fix").click().run()
    assert not at.exception, at.exception
    return at


def test_a_greyed_run_says_why_beside_it_and_offers_the_fix() -> None:
    """Issue 20: untargeted + Relabel (targeted only) greys Run; the reason is in the status line beside it (not only
    in the setup), with a button that switches to PGD, after which Run is on and the reason gone."""
    at = _greyed_then_fixed("Relabel needs a target class", target="untargeted", attack="relabel")
    assert at.selectbox(key=S.ATTACK).value == "pgd"
    assert not at.button(key="run").disabled
    assert not any("needs a target class" in w.value for w in at.warning)
    # The current class as the target: said beside Run too; the fix (the least likely class) suits every attack.
    at = _app(target="tiger cat")
    assert any("already the image's class (tiger cat)" in w.value for w in at.warning)
    at.button(key="lab-fix").click().run()
    assert at.selectbox(key=S.TARGET).value == S.LEAST_LIKELY and not at.button(key="run").disabled


def test_the_time_in_the_queue_is_not_the_runs_own_time() -> None:
    """Helper walk: a run that waited 24 s behind another said "26.6 s · 0.5 steps/s". steps() keeps the time
    until the first step apart (record.queued_s), which the status line and the saved seconds take off."""
    import time
    import types

    from serving.scheduler import Waiting

    def work():
        yield Waiting(1, 3.0)
        time.sleep(0.3)
        yield Waiting(1, 2.7)
        yield "step 0"
        time.sleep(0.2)
        yield "step 1"

    seen: list[str] = []
    record = types.SimpleNamespace(steps_iter=work(), waiting=None, queued_s=0.0, record=seen.append)
    items = lab_view.steps(record)
    next(items), next(items)
    assert record.waiting == "Waiting for the server: 1 run ahead of yours, about 3 s."
    list(items)
    assert seen == ["step 0", "step 1"] and record.waiting is None
    assert 0.3 <= record.queued_s < 0.45  # the wait before step 0, not the 0.2 s between the steps


def test_the_attack_picker_marks_the_black_box_attacks() -> None:
    """Helper walk: twelve attacks with no hint which never see the weights. Exactly the query-only ones (their
    model access is the Oracle, attacks.queries) are marked."""
    from attacks.queries import BlackBoxAttack

    options = _app().selectbox(key=S.ATTACK).options
    marked = {o.split(" · ")[0] for o in options if o.endswith(" · black-box")}
    expected = {c.title.split(" (")[0] for c in ATTACKS.values() if issubclass(c, BlackBoxAttack)}
    assert marked == expected and {"Square Attack L-inf", "SimBA", "HopSkipJump L2"} <= marked
    assert "PGD L-inf" in options
    # SimBA's ε is a step length, not a budget (its budget is the queries): its own label says so.
    labels = [n.label for n in _app(attack="simba").number_input]
    assert "Step length ε (L2, 0-1 pixels)" in labels and "Budget ε" not in labels


def test_a_result_whose_settings_changed_says_it_is_the_last_run() -> None:
    """Helper walk (issue 20): after a run, changing the attack left the old verdict with nothing saying whose it
    was. Now one line beside Run, in the old run's status line, says it is the last run's (its attack and goal)
    until Run; same settings: no line. Another image (a walk: the old "Step 11 / 200 … finished" stayed) too."""
    at = _app()
    at.button(key="run").click().run()
    assert not at.exception, at.exception

    def stale(at: AppTest) -> list[str]:
        return [c.value for c in [*at.caption, *at.markdown] if "This is your last run" in c.value]

    assert not stale(at)
    at.selectbox(key=S.ATTACK).set_value("pgd").run()
    assert stale(at) == [":material/history: " + lab_view.stale_note(at.session_state["lab.record"])]
    assert "Relabel" in stale(at)[0] and "tiger cat → umbrella" in stale(at)[0]
    at.button(key="run").click().run()
    assert not at.exception, at.exception
    assert not stale(at) and at.session_state["lab.record"].attack_name == "pgd"
    status = [m.value for m in at.markdown if m.value.startswith("**Step ")]
    assert status and "finished" in status[0]
    at.selectbox(key=S.IMAGE).set_value("imagenet_00").run()
    assert stale(at) and "PGD" in stale(at)[0] and not [m for m in at.markdown if m.value.startswith("**Step ")]


def test_a_targeted_label_only_attack_without_a_starting_photo_says_so_beside_run() -> None:
    """Issue 21: HopSkipJump (top label only) aimed at umbrella has no shipped umbrella photo to start from: Run is
    off with the reason beside it and a fix to a target it can reach (a class with a shipped photo the model gets
    right, as the scheduler will start it from); after the fix Run is on."""
    from images.imagesets import class_examples
    from ui import loaders

    at = _greyed_then_fixed("none ships for umbrella", attack="hopskipjump", target="umbrella")
    reachable = set(class_examples(loaders.get_model("efficientnet_lite0")))
    assert at.selectbox(key=S.TARGET).value in reachable and 879 not in reachable
    assert not at.button(key="run").disabled and not any("none ships" in w.value for w in at.warning)


def test_a_run_that_does_not_fool_says_why_and_what_to_change() -> None:
    """Issue 20 item 6: FGSM's default targeted run (one step of 8/255 toward umbrella) is not fooled; the verdict
    says why in one line and names the fix. The hint follows the record (checked against the verdict's own fields)."""
    at = _app(attack="fgsm")
    at.button(key="run").click().run()
    assert not at.exception, at.exception
    record = at.session_state["lab.record"]
    assert record.status == "finished" and not record.verdict.success
    warning = next(w.value for w in at.warning if w.value.startswith("Not fooled."))
    assert "Choose BIM or PGD" in warning
    assert lab_view.not_fooled_hint(record) in warning
    # Untargeted already: the hint does not offer "make it untargeted".
    untargeted = dataclasses.replace(record, target=None)
    assert "raise ε" in lab_view.not_fooled_hint(untargeted)
    assert "untargeted" not in lab_view.not_fooled_hint(untargeted)
    # A fooled run and a stopped one get no hint.
    record.verdict = type(record.verdict)(**{**record.verdict.__dict__, "success": True})
    assert lab_view.not_fooled_hint(record) is None


def test_presenter_view_from_the_link_and_the_toggle() -> None:
    """?present=1 opens the Lab in the presenter view: the toggle on, the setup folded, the sidebar hidden by the
    presenter style, and the link keeps present=1; turning the toggle off restores the sidebar and drops it."""
    from ui import presenter
    from ui.figures import PRESENTER_FONT_SCALE

    def styled(at: AppTest) -> bool:
        return any(presenter.PRESENTER_CSS in getattr(h, "proto", h).body for h in at.get("html"))

    at = _app(present="1")
    assert not at.exception, at.exception
    assert at.toggle(key=S.PRESENT).value and at.session_state[S.SETUP_OPEN] is False
    assert styled(at) and at.query_params["present"] == "1"
    at.toggle(key=S.PRESENT).set_value(False).run()
    assert not styled(at) and "present" not in at.query_params
    at = _app()
    assert not at.toggle(key=S.PRESENT).value and not styled(at)
    at.toggle(key=S.PRESENT).set_value(True).run()
    assert styled(at) and at.session_state[S.SETUP_OPEN] is False
    # After a run the bars' class names are drawn larger too (their axis has its own tick size).
    at.button(key="run").click().run()
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    ticks = [f["layout"]["yaxis"]["tickfont"]["size"] for f in specs if "tickfont" in f["layout"].get("yaxis", {})]
    assert ticks and all(t == round(15 * PRESENTER_FONT_SCALE) for t in ticks), ticks
    # and every label that sets its own size: the chart's RMS-limit line label (a walk: it stayed at 12 px)
    sizes = [a["font"]["size"] for f in specs for a in f["layout"].get("annotations", []) if "RMS limit" in a["text"]]
    assert sizes == [round(12 * PRESENTER_FONT_SCALE)], sizes
    assert all(f["layout"]["font"]["size"] == round(15 * PRESENTER_FONT_SCALE) for f in specs)


def test_the_presenter_view_is_on_every_page() -> None:
    """Issue 20: the presenter view was the Lab's alone. A link to any page with ?present=1 opens it there (the
    style, the toggle on, the charts' fonts scaled by the same widgets.chart every page draws through); switching
    page keeps it; the toggle turns it off on any page and drops present=1 from the link."""
    from ui import presenter
    from ui.figures import FONT, PRESENTER_FONT_SCALE

    def styled(at: AppTest) -> bool:
        return any(presenter.PRESENTER_CSS in getattr(h, "proto", h).body for h in at.get("html"))

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.query_params["present"] = "1"
    at.switch_page("pages/universal.py").run()
    assert not at.exception, at.exception
    assert styled(at) and at.toggle(key=S.PRESENT).value and at.query_params["present"] == "1"
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    big = round(FONT["size"] * PRESENTER_FONT_SCALE)
    assert specs and all(f["layout"]["font"]["size"] == big for f in specs)
    # and the parts Streamlit's chart theme sizes itself (a walk: the ticks stayed at 12 px): at least that size
    ticks = [a["tickfont"]["size"] for f in specs for k, a in f["layout"].items() if k.startswith(("xaxis", "yaxis"))]
    assert ticks and min(ticks) >= big, ticks
    assert all(f["layout"]["title"]["font"]["size"] >= big for f in specs if "title" in f["layout"])
    at.switch_page("pages/transfer.py").run()
    assert styled(at) and at.toggle(key=S.PRESENT).value
    at.switch_page("pages/universal.py").run()
    at.toggle(key=S.PRESENT).set_value(False).run()
    assert not styled(at) and "present" not in at.query_params
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert specs and all(f["layout"]["font"]["size"] == FONT["size"] for f in specs)
