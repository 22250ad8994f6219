"""Does the app fit Streamlit Community Cloud's budget? Memory, cold start and one-core speed, in a real browser.

Not a test: it prints figures. It serves the app with `streamlit run app.py` (optionally pinned to one core with
`taskset -c 0` and torch at one thread, like Cloud's smallest container), drives Debian's headless Chromium with
Playwright, and reads the server's resident memory (VmRSS of the server and its children, from /proc) after:
the first page is usable; one default Attack Lab run; a 200-step run; three browser sessions each running once at
the same time. It also times the cold start (process start -> health -> first page usable), click -> first bars
and click -> verdict for the default story, and how long each page takes to open.

    python benchmarks/bench_cloud.py [--one-core] [--sessions 3]
    python benchmarks/bench_cloud.py --compare-torch /path/to/cpu-venv/bin/python
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
VERDICT = "[data-testid='stAlertContentSuccess'], [data-testid='stAlertContentWarning']"
#: A run that lasts all its steps (200 by default): steps of 0.01/255 cannot reach p(target) 0.9 sooner.
LONG_RUN = "?steps={steps}&step_size=0.01"


def rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants, MiB (from /proc, no extra package)."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, AttributeError):
            continue
    return total / 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _idle(page) -> None:
    page.wait_for_selector("[data-test-script-state='notRunning']")


def _verdict(page) -> str:
    """The verdict line: label, probability, RMS and max change of the saved image (equal runs say the same)."""
    return page.locator(VERDICT).first.inner_text().strip()


def _run_once(page, url: str) -> tuple[float, float]:
    """Click Run on the Attack Lab at `url`; seconds to the first live bars and to the verdict."""
    page.goto(url)
    page.wait_for_selector(".st-key-run button:visible:not([disabled])")
    _idle(page)
    start = time.perf_counter()
    page.locator(".st-key-run button:visible").first.click()
    page.get_by_text(re.compile(r"^Step \d+ / \d+")).first.wait_for()
    first = time.perf_counter() - start
    page.wait_for_selector(VERDICT)
    return first, time.perf_counter() - start


_IMPORT_RSS = (
    "import re; f=lambda: int(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) / 1024; "
    "a=f(); import torch; print(torch.__version__, round(f() - a))"
)


def torch_import_mib(python: str) -> str:
    """'<torch version> <MiB>': resident memory that `import torch` adds in that interpreter."""
    out = subprocess.run([python, "-c", _IMPORT_RSS], capture_output=True, text=True, check=True).stdout.split()
    return f"torch {out[0]}: import adds {out[1]} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one-core", action="store_true", help="taskset -c 0 and one torch thread")
    parser.add_argument("--sessions", type=int, default=3, help="browser sessions running at once")
    parser.add_argument("--long-steps", type=int, default=200, help="steps of the long run (fewer on a busy machine)")
    parser.add_argument(
        "--compare-torch",
        metavar="PYTHON",
        help="only compare what `import torch` costs here and in another interpreter (a venv with the CPU build, "
        "as on Cloud: python -m venv v && v/bin/pip install torch==2.13.0 takes this machine's CPU wheel)",
    )
    args = parser.parse_args()
    if args.compare_torch:
        print("this interpreter:", torch_import_mib(sys.executable))
        print(f"{args.compare_torch}:", torch_import_mib(args.compare_torch))
        return
    from playwright.sync_api import sync_playwright

    clock = time.get_clock_info("perf_counter")
    print(f"timer: time.perf_counter, resolution {clock.resolution * 1e9:.0f} ns; load {os.getloadavg()[0]:.2f}")
    port = _free_port()
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true"]
    cmd += ["--server.port", str(port), "--browser.gatherUsageStats", "false"]
    if args.one_core:
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        cmd = ["taskset", "-c", "0", *cmd]
    print("server:", "one core (taskset -c 0), torch 1 thread" if args.one_core else f"{os.cpu_count()} cores")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None:
                    raise SystemExit("streamlit exited") from None
                time.sleep(0.1)
        health = time.perf_counter() - t0
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            ctx = browser.new_context(viewport={"width": 1366, "height": 768})
            page = ctx.new_page()
            page.set_default_timeout(900_000)
            page.goto(url)
            page.wait_for_selector(".st-key-run button:visible:not([disabled])")
            _idle(page)
            usable = time.perf_counter() - t0
            print(f"cold start: health after {health:.1f} s, first page usable after {usable:.1f} s")
            print(f"memory, first page usable: {rss_mib(proc.pid):.0f} MiB")
            first, verdict = _run_once(page, url)
            print(f"first run (model load included): click -> first bars {first:.2f} s, -> verdict {verdict:.2f} s")
            print(f"memory after one default run: {rss_mib(proc.pid):.0f} MiB")
            first, verdict = _run_once(page, url)
            alone = _verdict(page)
            print(f"warm default run: click -> first bars {first:.2f} s, -> verdict {verdict:.2f} s")
            _run_once(page, url + LONG_RUN.format(steps=args.long_steps))
            print(f"memory after a {args.long_steps}-step run: {rss_mib(proc.pid):.0f} MiB")
            for link in ("fooling_images", "transfer", "robustness"):
                start = time.perf_counter()
                page.goto(f"{url}/{link}")
                page.wait_for_selector("h1")
                _idle(page)
                print(f"page {link}: opens in {time.perf_counter() - start:.2f} s")
            ctx.close()
            pages = []
            for _ in range(args.sessions):
                c = browser.new_context(viewport={"width": 1366, "height": 768})
                pg = c.new_page()
                pg.set_default_timeout(900_000)
                pg.goto(url)
                pg.wait_for_selector(".st-key-run button:visible:not([disabled])")
                _idle(pg)
                pages.append(pg)
            start = time.perf_counter()
            for pg in pages:
                pg.locator(".st-key-run button:visible").first.click()
            pages[-1].wait_for_timeout(2000)
            busy = sum(pg.get_by_text("The server is busy").count() > 0 for pg in pages)
            print(f"sessions that said 'The server is busy' while the others ran: {busy}/{len(pages)}")
            for pg in pages:
                pg.wait_for_selector(VERDICT)
            took = time.perf_counter() - start
            print(f"{args.sessions} sessions running at once: all verdicts after {took:.1f} s")
            same = [_verdict(pg) == alone for pg in pages]
            print(f"same verdict as one session alone: {sum(same)}/{len(same)} ({alone!r})")
            print(f"memory with {args.sessions} sessions each run once: {rss_mib(proc.pid):.0f} MiB")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


if __name__ == "__main__":
    main()
