"""Real-browser fixtures: `streamlit run app.py` in a subprocess and Debian's headless Chromium via Playwright.

Without /usr/bin/chromium the e2e tests are skipped with the reason, except when CI is set: there a missing
browser is a failure, so the suite can never pass silently without its browser tests.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Seconds to wait for a run: the default story takes ~7 steps, a few seconds on an idle 2-core machine; CI may be
#: much slower and busier.
RUN_TIMEOUT_S = 300


def _need_chromium() -> None:
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} is missing (apt-get install -y chromium)"
    if os.environ.get("CI"):
        pytest.fail(f"e2e tests cannot run in CI: {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(log_name: str = "e2e_streamlit.log") -> Iterator[str]:
    """`streamlit run app.py` on a free port; yields its base URL once /_stcore/health answers, stops it after."""
    _need_chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    port = _free_port()
    challenges = ARTIFACTS / log_name.replace(".log", "_challenges.sqlite")  # this server's own challenge database
    for old in ARTIFACTS.glob(challenges.name + "*"):
        old.unlink()
    log = open(ARTIFACTS / log_name, "w")  # noqa: SIM115 (closed after the server stops)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        env={**os.environ, "ADVLAB_CHALLENGE_DB": str(challenges)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start (see {ARTIFACTS / log_name})")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def server() -> Iterator[str]:
    """The app served on a free port for the whole session."""
    with serve() as url:
        yield url


@pytest.fixture()
def fresh_server():
    """`serve` itself, for a test that needs a server nobody has visited yet (a first request)."""
    return serve


@pytest.fixture(scope="session")
def browser(server: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser):
    """A fresh browser session (its own Streamlit session) at laptop size; downloads allowed."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(RUN_TIMEOUT_S * 1000)
    yield pg
    context.close()
