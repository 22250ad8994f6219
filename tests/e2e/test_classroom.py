"""A few students at once in one headless Chromium (each its own browser context, its own Streamlit session):
everyone presses Run within a second on the Attack Lab's default story and everyone gets the same verdict, the run
computed once and shared (serving.scheduler). The 30-student figures come from benchmarks/bench_classroom.py."""

from __future__ import annotations

import pytest
from test_attack_lab import RUN_TIMEOUT_S, VERDICT, _button, _open

pytestmark = pytest.mark.e2e

STUDENTS = 3


def test_a_small_class_pressing_run_together_gets_one_shared_verdict(browser, server: str) -> None:
    contexts = [browser.new_context(viewport={"width": 1366, "height": 768}) for _ in range(STUDENTS)]
    try:
        pages = [c.new_page() for c in contexts]
        for page in pages:
            page.set_default_timeout(RUN_TIMEOUT_S * 1000)
            _open(page, server, "?target=goldfish")
        for page in pages:  # within a second, as a class does
            _button(page, "run").click()
        verdicts = []
        for page in pages:
            page.wait_for_selector(VERDICT)
            verdicts.append(page.locator(VERDICT).first.inner_text())
        assert len(set(verdicts)) == 1 and "Fooled" in verdicts[0], verdicts
        shared = [p.get_by_text("computed once for everyone").count() > 0 for p in pages]
        assert sum(shared) >= STUDENTS - 1, shared  # all but (at most) the first joined the first one's run
        assert not any(p.locator("[data-testid='stException']").count() for p in pages)
    finally:
        for c in contexts:
            c.close()
