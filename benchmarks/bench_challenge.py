"""Classroom challenge figures: submissions per second (store alone, and scored on Lite0 as the Lab submits them),
the board's refresh time with 30 entries (the store's read and the whole page, headless), and the database after a
kill -9 of a process in the middle of submitting.

    python benchmarks/bench_challenge.py [--students 30]

Timer: time.perf_counter (sub-microsecond resolution). Figures depend on the machine's load: say which it was.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments.challenge.challenge import score  # noqa: E402
from experiments.challenge.store import ChallengeStore, Score  # noqa: E402


def _at_once(work: Callable[[int], None], n: int) -> float:
    """Wall seconds for n threads running work(0..n-1) (each waits on a shared barrier first) until all end."""
    t0 = time.perf_counter()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def _png(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=30)
    args = parser.parse_args()
    n = args.students

    import numpy as np
    from PIL import Image

    from images import load_image
    from models import class_index, load_model, pil_to_tensor

    model = load_model("efficientnet_lite0", device="cpu")
    original = model.preprocess(load_image("chelsea"))
    source = int(model.probabilities(pil_to_tensor(original)).argmax())
    rng = np.random.default_rng(0)
    base = np.asarray(original, dtype=np.int16)
    pngs = [
        _png(Image.fromarray(np.clip(base + rng.integers(-2, 3, base.shape), 0, 255).astype(np.uint8)))
        for _ in range(n)
    ]
    tmp = Path(tempfile.mkdtemp())
    db = ChallengeStore(tmp / "bench.sqlite")
    code, token = db.create(
        image_png=_png(original), image_name="chelsea", model="efficientnet_lite0", source=source,
        target=class_index("umbrella"), budget_kind="rms", budget=0.01,
    )  # fmt: skip
    ch = db.get(code)
    for i in range(n):
        db.join(code, f"s{i:02d}", f"k{i}")

    # 1. The store alone: n threads, each submitting 20 pre-scored entries at once.
    per = 20
    barrier = threading.Barrier(n)
    fake = Score(True, True, True, "umbrella", 0.9, 0.004, 2, pngs[0], "relabel", steps=6)

    def writer(i: int) -> None:
        barrier.wait()
        for j in range(per):
            db.submit(code, f"s{i:02d}", f"k{i}", f"store-{i}-{j}", fake)

    dt = _at_once(writer, n)
    print(f"store alone: {n * per} submissions from {n} threads in {dt:.2f} s = {n * per / dt:.0f} per s")

    # 2. As the Lab submits: score the PNG on Lite0 (one page-work thread), then write. n students at once.
    code2, _ = db.create(
        image_png=_png(original), image_name="chelsea", model="efficientnet_lite0", source=source,
        target=class_index("umbrella"), budget_kind="rms", budget=0.01,
    )  # fmt: skip
    ch2 = db.get(code2)
    for i in range(n):
        db.join(code2, f"s{i:02d}", f"k{i}")
    lock = threading.Lock()  # serving.page_work's single thread, as on the server
    barrier = threading.Barrier(n)

    def student(i: int) -> None:
        barrier.wait()
        with lock:
            scored = score(ch2, model, pngs[i], attack="relabel", steps=6)
        db.submit(code2, f"s{i:02d}", f"k{i}", f"lab-{i}", scored)

    dt = _at_once(student, n)
    board = db.board(code2)
    print(
        f"scored on Lite0 and written: {n} submissions in {dt:.2f} s = {n / dt:.1f} per s "
        f"({board.submissions} rows, {board.fooled} fooled within budget)"
    )

    # 3. The board with n entries: the store's read, and the whole page headless (AppTest, 3 best images drawn).
    reps = 20
    t0 = time.perf_counter()
    for _ in range(reps):
        db.board(code2)
    print(f"board read ({n} entries): {(time.perf_counter() - t0) / reps * 1000:.1f} ms")
    os.environ["ADVLAB_CHALLENGE_DB"] = str(db.path)
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "pages" / "challenge.py"), default_timeout=120)
    at.query_params.update({"code": code2, "key": db_token(db, code2)})
    at.run()
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - t0)
    print(f"board page rerun ({n} entries, headless): median {sorted(times)[2] * 1000:.0f} ms of 5")
    del ch, token

    # 4. kill -9 mid-submission.
    script = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
        "from experiments.challenge.store import ChallengeStore, Score\n"
        f"db = ChallengeStore({str(db.path)!r}); db.join({code!r}, 'victim', 'kv')\n"
        "png = bytes(range(256)) * 400\n"
        "for i in range(10**6):\n"
        "    db.submit(" + repr(code) + ", 'victim', 'kv', f'v{i}', "
        "Score(True, True, True, 'u', 0.9, 0.001, 1, png, 'relabel', steps=i))\n"
        "    print(i, flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    last = -1
    while last < 200:
        last = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(db.path) as conn:
        check = conn.execute("PRAGMA integrity_check").fetchone()[0]
        steps = [r[0] for r in conn.execute("SELECT steps FROM entries WHERE submission LIKE 'v%' ORDER BY id")]
    print(
        f"kill -9 after {last + 1} reported submissions: integrity {check}, {len(steps)} rows kept, "
        f"contiguous: {steps == list(range(len(steps)))}"
    )


def db_token(db: ChallengeStore, code: str) -> str:
    """A fresh teacher token for the benchmark's page run (the real one is only ever shown to the teacher)."""
    import secrets

    from experiments.challenge.store import _hash

    token = secrets.token_urlsafe(24)
    with sqlite3.connect(db.path) as conn:
        conn.execute("UPDATE challenges SET token_hash = ? WHERE code = ?", (_hash(token), code))
    return token


if __name__ == "__main__":
    main()
