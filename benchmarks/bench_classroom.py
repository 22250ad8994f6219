"""A class at once: N students, each in their own browser context, press Run on the Attack Lab within a second.

Not a test: it prints figures. Serves the app (`streamlit run app.py`), opens N headless Chromium contexts at
1366x768, waits until every page is usable, clicks Run in each, then polls every page (0.2 s) for the first live
bars (or the queue line) and the verdict, timed from that page's own click, sampling the server's resident memory
(process tree, /proc) as it goes.
Scenarios: (a) everyone on the default story; (b) everyone toward a different target class. Every verdict is
compared with the same run made alone by the engine (attacks.runner.attack_targets, seed 0 as the page's, same
confidence): the label it reaches and whether it fooled.

    python benchmarks/bench_classroom.py [--sessions 1 10 30] [--scenarios same different]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from bench_cloud import ARGS, CHROMIUM, VERDICT, _free_port, rss_mib  # noqa: E402

BARS = re.compile(r"^Step \d+ / \d+|Waiting for the server")
EXCEPTION = "[data-testid='stException']"


def expected(targets: list[str | None]) -> dict[str | None, tuple[str, bool]]:
    """(label, fooled) of each default-story run alone, by the engine the page's scheduler drives."""
    from attacks import DEFAULT_CONFIDENCE, make_attack
    from attacks.runner import attack_targets
    from images import load_image
    from models import class_index, load_model

    model = load_model("efficientnet_lite0")
    original = model.preprocess(load_image("chelsea"))
    out = {}
    for t in targets:
        (r,) = attack_targets(
            model,
            original,
            make_attack("relabel"),
            [class_index(t or "umbrella")],
            confidence=DEFAULT_CONFIDENCE,
            seed=0,
        )
        out[t] = (r.verdict.label, r.success)
    return out


def one_class(browser, url: str, queries: list[str], server_pid: int) -> dict[str, object]:
    contexts = [browser.new_context(viewport={"width": 1366, "height": 768}) for _ in queries]
    pages = [c.new_page() for c in contexts]
    for page, q in zip(pages, queries, strict=True):
        page.set_default_timeout(900_000)
        page.goto(url + q)
    for page in pages:
        page.wait_for_selector(".st-key-run button:visible:not([disabled])")
        page.wait_for_selector("[data-test-script-state='notRunning']")
    rss_open = rss_mib(server_pid)
    peak = rss_open
    start = time.perf_counter()
    clicks = []
    for page in pages:
        page.locator(".st-key-run button:visible").first.click(no_wait_after=True)
        clicks.append(time.perf_counter() - start)  # each student's times count from their own click
    clicked = clicks[-1]
    first: list[float | None] = [None] * len(pages)
    done: list[float | None] = [None] * len(pages)
    texts: list[str] = [""] * len(pages)
    while any(d is None for d in done):
        peak = max(peak, rss_mib(server_pid))
        for i, page in enumerate(pages):
            if done[i] is not None:
                continue
            now = time.perf_counter() - start - clicks[i]
            if first[i] is None and page.get_by_text(BARS).count():
                first[i] = now
            if page.locator(VERDICT).count():
                done[i] = now
                texts[i] = page.locator(VERDICT).first.inner_text()
        if time.perf_counter() - start > 1200:
            break
        time.sleep(0.2)
    exceptions = sum(p.locator(EXCEPTION).count() for p in pages)
    for c in contexts:
        c.close()
    return {
        "rss_open": rss_open,
        "peak": peak,
        "clicked": clicked,
        "first": [f for f in first if f is not None],
        "done": [d for d in done if d is not None],
        "texts": texts,
        "exceptions": exceptions,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 10, 30])
    parser.add_argument("--scenarios", nargs="+", default=["same", "different"], choices=["same", "different"])
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from models import IMAGENET_CATEGORIES

    clock = time.get_clock_info("perf_counter")
    print(f"timer: time.perf_counter, resolution {clock.resolution * 1e9:.0f} ns; polled every 0.2 s")
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f} at start")
    n_max = max(args.sessions)
    targets = [c for c in IMAGENET_CATEGORIES[300:] if "," not in c][:n_max]  # far from cats, one name each
    want = expected([None, *targets] if "different" in args.scenarios else [None])
    print("alone:", {k or "umbrella": v for k, v in list(want.items())[:3]}, "...")
    for scenario in args.scenarios:
        for n in args.sessions:
            port = _free_port()
            cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true"]
            cmd += ["--server.port", str(port), "--browser.gatherUsageStats", "false"]
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            url = f"http://127.0.0.1:{port}/"
            try:
                while True:
                    try:
                        with urllib.request.urlopen(url + "_stcore/health", timeout=2):
                            break
                    except OSError:
                        time.sleep(0.2)
                chosen = [None] * n if scenario == "same" else targets[:n]
                queries = ["" if t is None else f"?target={quote(t)}" for t in chosen]
                with sync_playwright() as p:
                    browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                    r = one_class(browser, url, queries, proc.pid)
                    browser.close()
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            right = sum(
                (want[t][0] in text) and (("Fooled" in text) == want[t][1])
                for t, text in zip(chosen, r["texts"], strict=True)
            )
            fooled = sum("Fooled" in text for text in r["texts"])
            done = sorted(r["done"])
            first = sorted(r["first"])
            print(
                f"{scenario:<9} N={n:<3} verdicts {len(done)}/{n}, equal to alone {right}/{n}, fooled {fooled}/{n}; "
                f"first bars {first[0] if first else float('nan'):.1f} s; verdict first {done[0]:.1f} / median "
                f"{statistics.median(done):.1f} / last {done[-1]:.1f} s; RSS open {r['rss_open']:.0f} -> peak "
                f"{r['peak']:.0f} MiB; exceptions {r['exceptions']}; last click {r['clicked']:.1f} s after the first"
            )


if __name__ == "__main__":
    main()
