"""The classroom challenge in a real browser: the teacher creates it, three students join from the students' link
(each its own browser context, its own Streamlit session), run and are submitted by the server, and the teacher's
board shows each of them with the verdict their own page showed; a taken nickname is refused, and a student who
opens the board's address without the teacher's key sees none of its controls. Screenshots of the board at
1366x768 and 1920x1080 go to artifacts/ (looked at before the challenge page was called done)."""

from __future__ import annotations

import csv
import io
import re

import pytest
from conftest import ARTIFACTS
from test_attack_lab import RUN_TIMEOUT_S, VERDICT, _button

pytestmark = pytest.mark.e2e

STUDENTS = ("Ana", "Ben", "Chloé")
IDLE = "[data-test-script-state='notRunning']"


def _context(browser, width: int = 1366, height: int = 768):
    context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(RUN_TIMEOUT_S * 1000)
    return context, page


def _join(page, server: str, code: str, nickname: str) -> None:
    page.goto(f"{server}/?challenge={code}")
    box = page.get_by_role("textbox", name="Your nickname")
    box.fill(nickname)
    box.press("Enter")


def _metric(page, label: str) -> str:
    block = page.locator("[data-testid='stMetric']").filter(has_text=label)
    return block.locator("[data-testid='stMetricValue']").inner_text()


def test_a_teacher_and_three_students_play_one_challenge(browser, server: str) -> None:
    contexts = []
    try:
        context, teacher = _context(browser)
        contexts.append(context)
        teacher.goto(f"{server}/challenge")
        teacher.get_by_role("button", name="Create the challenge").click()
        teacher.wait_for_url(re.compile(r"code=\w+&key="))
        code = re.search(r"code=(\w+)", teacher.url).group(1)
        key = re.search(r"key=([\w-]+)", teacher.url).group(1)
        teacher.get_by_text(f"Challenge {code}").first.wait_for()

        students = []
        for name in STUDENTS:
            context, page = _context(browser)
            contexts.append(context)
            _join(page, server, code, name)
            page.get_by_text(f"Playing as {name}").wait_for()
            # Joining reruns the page with a new header: the attack's number boxes keep the server's values (they
            # were remounted at their minimum, steps 1, and Run sent those).
            page.wait_for_selector(IDLE)
            assert page.locator(".st-key-relabel-steps input").input_value() == "200", name
            students.append(page)
        # Somebody else typing a nickname already taken: one line, and no entry for them.
        context, intruder = _context(browser)
        contexts.append(context)
        _join(intruder, server, code, "ana")
        intruder.get_by_text("is taken in this challenge").wait_for()
        assert intruder.locator(".st-key-run button:visible").first.is_disabled()

        for page in students:  # the class presses Run within a second, once each page has drawn the nickname
            page.wait_for_selector(IDLE)
            _button(page, "run").click()
        verdicts = {}
        for name, page in zip(STUDENTS, students, strict=True):
            page.get_by_text("Submitted:").wait_for()
            verdicts[name] = page.locator(VERDICT).filter(has_text="saved 8-bit image").first.inner_text()
            assert page.get_by_text(re.compile(r"You are #\d of \d on the board")).count() == 1
            assert not page.locator("[data-testid='stException']").count()

        # The teacher's board: every student, with the verdict their own page showed.
        for _ in range(120):  # the board refreshes itself every few seconds
            if _metric(teacher, "Students who submitted") == str(len(STUDENTS)):
                break
            teacher.wait_for_timeout(1000)
        assert _metric(teacher, "Students who submitted") == str(len(STUDENTS))
        fooled = sum("Fooled!" in v for v in verdicts.values())
        # The default challenge (Relabel, RMS budget) fools this image: a student ending "Not fooled" means a run was
        # cut short (a rerun landing before its first step used to settle it "stopped" at step 0).
        assert fooled == len(STUDENTS), verdicts
        assert _metric(teacher, "Fooled within the budget") == f"{fooled} of {len(STUDENTS)}", verdicts
        with teacher.expect_download() as download:
            teacher.get_by_test_id("stDownloadButton").get_by_role("button", name="CSV").click()
        rows = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
        assert sorted(r["nickname"] for r in rows) == sorted(STUDENTS)
        for row in rows:
            assert row["success"] == ("1" if "Fooled!" in verdicts[row["nickname"]] else "0"), (row, verdicts)
        teacher.screenshot(path=str(ARTIFACTS / "challenge_board_1366x768.png"))
        context, wide = _context(browser, 1920, 1080)
        contexts.append(context)
        wide.goto(f"{server}/challenge?code={code}&key={key}")
        wide.get_by_text("Smallest RMS that worked").wait_for()
        wide.wait_for_timeout(1500)
        wide.screenshot(path=str(ARTIFACTS / "challenge_board_1920x1080.png"))

        # A student who opens the board's address without the key reaches no control.
        student = students[0]
        student.goto(f"{server}/challenge?code={code}")
        student.get_by_text("teacher's link only").wait_for()
        for label in ("Close", "Reveal all", "Teacher's link · delete"):
            assert student.get_by_role("button", name=label).count() == 0, label
        assert student.get_by_test_id("stDownloadButton").count() == 0
        student.goto(f"{server}/challenge?code={code}&key=guess")
        student.get_by_text("wrong key").wait_for()
        assert student.get_by_role("button", name="Close").count() == 0
        assert not teacher.locator("[data-testid='stException']").count()
    finally:
        for c in contexts:
            c.close()
