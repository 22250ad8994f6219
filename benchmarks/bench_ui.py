"""How responsive is the Attack Lab's live view? Click-to-first-update latency and the share of a run spent drawing.

Not a test: it prints figures. The page's own code runs headless through streamlit.testing.v1.AppTest (real widget
and element serialization, real PNG encoding and Grad-CAM), and the live view times itself with perf_counter (see
ui.run.Timing): `first update` runs from Run's callback (the click reaching the server) to the first bars;
`render share` is drawing time / wall time of the attack loop. With --browser it also measures, in headless
Chromium, the time from the click to the first live status line on screen.

    python benchmarks/bench_ui.py [--repeats 3] [--browser]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (label, URL query): the default story, and a longer run (small steps) where the throttles matter.
SCENARIOS = [
    ("default story, chelsea -> umbrella (relabel 0.25)", {}),
    ("long run, relabel step 0.02, 120 steps", {"step_size": "0.02", "steps": "120", "max_rms": "0.01"}),
]


def _run_once(query: dict[str, str]):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=900)
    at.query_params.update(query)
    at.run()
    at.button(key="run").click().run()
    if at.exception:
        raise SystemExit(f"the page raised: {at.exception}")
    return at.session_state["lab.record"], at.session_state["lab.job"].timing


def bench_apptest(repeats: int) -> None:
    for label, query in SCENARIOS:
        rows = []
        for _ in range(repeats):
            rec, t = _run_once(query)
            rows.append(
                (
                    t.first_update,
                    t.active,
                    len(rec.steps),
                    t.render_fraction,
                    rec.throttles.charts,
                    rec.throttles.images,
                    rec.throttles.cams,
                    len(rec.snapshots.frames),
                    rec.status,
                )
            )
        first = [r[0] for r in rows]
        frac = [r[3] for r in rows]
        print(f"\n{label}  ({repeats} runs, AppTest)")
        print(
            f"  click -> first bars (server): median {statistics.median(first) * 1e3:7.1f} ms, "
            f"max {max(first) * 1e3:7.1f} ms"
        )
        print(f"  render share of the run:      median {statistics.median(frac):6.1%}, max {max(frac):6.1%}")
        for _, active, steps, share, charts, images, cams, snaps, status in rows:
            print(
                f"    {status:8s} {steps:4d} steps in {active:6.2f} s ({steps / active:5.2f} steps/s); "
                f"draws: charts {charts.count} ({charts.seconds:.2f} s), images {images.count} "
                f"({images.seconds:.2f} s), Grad-CAM {cams.count} ({cams.seconds:.2f} s); "
                f"snapshots kept {snaps}; share {share:.1%}"
            )


def bench_browser(repeats: int) -> None:
    import re
    import socket
    import subprocess
    import urllib.request

    from playwright.sync_api import sync_playwright

    chromium = "/usr/bin/chromium"
    if not os.path.exists(chromium):
        print(f"\nbrowser: skipped ({chromium} is missing)")
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        latencies = []
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=chromium,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                ],
            )
            for _ in range(repeats):
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                page.set_default_timeout(600_000)
                page.goto(url)
                page.wait_for_selector("[data-testid='stPlotlyChart']")
                page.wait_for_selector("[data-test-script-state='notRunning']")
                start = time.perf_counter()
                page.locator(".st-key-run button:visible").first.click()
                page.get_by_text(re.compile(r"^Step \d+ / \d+")).wait_for()
                latencies.append(time.perf_counter() - start)
                page.wait_for_selector("[data-testid='stAlertContentSuccess'], [data-testid='stAlertContentWarning']")
                page.close()
            browser.close()
        print(
            f"\nbrowser (headless Chromium, {repeats} runs): click -> first live update on screen: "
            f"median {statistics.median(latencies) * 1e3:.0f} ms, max {max(latencies) * 1e3:.0f} ms"
        )
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--browser", action="store_true", help="also measure in headless Chromium")
    args = parser.parse_args()
    import torch

    clock = time.get_clock_info("perf_counter")
    print(f"timer: time.perf_counter ({clock.implementation}), resolution {clock.resolution * 1e9:.0f} ns")
    print(
        f"machine: {os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"load average {os.getloadavg()[0]:.2f} (other processes slow every figure down)"
    )
    _run_once({"steps": "1"})  # warm the caches: model, sample, thumbnails
    bench_apptest(args.repeats)
    if args.browser:
        bench_browser(args.repeats)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory of this process: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
