"""The classroom challenge: the store's rules (who may do what, bad input writes nothing), concurrency (30 threads,
several processes, kill -9 mid-submission), scoring on the saved PNG, and the pages headless (AppTest).

The browser walk (teacher + several students) is tests/e2e/test_challenge_walk.py; the figures come from
benchmarks/bench_challenge.py.
"""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest
from tinynet import TinyClassifier

from attacks import Goal, make_attack
from attacks.runner import run_batch
from experiments.challenge import challenge as ch_engine
from experiments.challenge import store as ch_store
from experiments.challenge.store import ChallengeError, ChallengeStore, Score
from models import class_index, pil_to_tensor, tensor_to_pil

ROOT = Path(__file__).resolve().parents[1]


def _png(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def _score(success: bool = True, rms: float = 0.005, png: bytes = b"png") -> Score:
    return Score(success, success, True, "umbrella", 0.9, rms, 3, png, "relabel", {"steps": 5}, steps=5)


@pytest.fixture()
def db(tmp_path: Path) -> ChallengeStore:
    return ChallengeStore(tmp_path / "challenges.sqlite")


@pytest.fixture()
def made(db: ChallengeStore) -> tuple[ChallengeStore, str, str]:
    code, token = db.create(
        image_png=b"original", image_name="cat", model="efficientnet_lite0", source=281, target=879,
        budget_kind="rms", budget=0.01,
    )  # fmt: skip
    return db, code, token


def _rows(db: ChallengeStore, table: str) -> int:
    with sqlite3.connect(db.path) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


# ------------------------------------------------------------------------------------------------ the store


def test_a_challenge_is_created_with_a_short_code_and_a_secret_token_kept_only_as_a_hash(made) -> None:
    db, code, token = made
    assert len(code) == ch_store.CODE_LENGTH and set(code) <= set(ch_store.CODE_ALPHABET)
    assert len(token) >= 24 and token not in code
    with sqlite3.connect(db.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        stored = conn.execute("SELECT token_hash FROM challenges").fetchone()[0]
    assert token not in stored and len(stored) == 64
    ch = db.get(code.lower())  # codes are read off a projector: case does not matter
    assert ch.is_open() and ch.target == 879 and ch.budget_kind == "rms" and ch.image_png == b"original"
    assert db.is_teacher(code, token) and not db.is_teacher(code, token + "x")


def test_ranking_is_success_then_smallest_rms_then_first_and_each_player_shows_once(made) -> None:
    db, code, _ = made
    for name in ("ana", "ben", "cy"):
        db.join(code, name, f"key-{name}")
    db.submit(code, "ana", "key-ana", "a1", _score(True, 0.008), now=time.time())
    db.submit(code, "ben", "key-ben", "b1", _score(False, 0.001))
    db.submit(code, "cy", "key-cy", "c1", _score(True, 0.004))
    db.submit(code, "ana", "key-ana", "a2", _score(True, 0.003))  # ana improves
    db.submit(code, "ana", "key-ana", "a3", _score(False, 0.0001))  # and a worse try does not replace it
    board = db.board(code)
    assert [(e.nickname, e.rms, e.tries) for e in board.entries] == [
        ("ana", 0.003, 3),
        ("cy", 0.004, 1),
        ("ben", 0.001, 1),
    ]
    assert (board.tried, board.fooled, board.submissions, board.smallest_rms) == (3, 2, 5, 0.003)
    assert db.rank(code, "CY") == (2, 3) and db.rank(code, "nobody") is None
    # Only each player's best entry keeps its image (the stored PNGs stay bounded).
    with sqlite3.connect(db.path) as conn:
        kept = conn.execute("SELECT COUNT(*) FROM entries WHERE png IS NOT NULL").fetchone()[0]
    assert kept == 3
    assert all(db.image(code, e.id) == b"png" for e in board.entries)
    lines = db.csv(code).splitlines()
    assert lines[0].startswith("id,nickname,") and len(lines) == 1 + 5


def test_a_resubmitted_run_is_not_duplicated(made) -> None:
    db, code, _ = made
    db.join(code, "ana", "k")
    first = db.submit(code, "ana", "k", "run-1", _score())
    assert db.submit(code, "ana", "k", "run-1", _score(rms=0.001)) == first
    assert _rows(db, "entries") == 1


def test_nobody_can_take_or_submit_under_another_players_nickname(made) -> None:
    db, code, _ = made
    assert db.join(code, "  Ana   Lee ", "mine") == "Ana Lee"
    with pytest.raises(ChallengeError, match="taken"):
        db.join(code, "ana lee", "theirs")
    with pytest.raises(ChallengeError, match="not yours"):
        db.submit(code, "Ana Lee", "theirs", "x", _score())
    assert db.join(code, "ANA LEE", "mine") == "Ana Lee"  # the owner may come back
    assert _rows(db, "entries") == 0 and _rows(db, "players") == 1


@pytest.mark.parametrize(
    ("raw", "problem"),
    [("", "type a nickname"), ("   ", "type a nickname"), ("<>/\\\\!?", "type a nickname"), ("x" * 21, "at most 20")],
)
def test_a_bad_nickname_is_one_line_and_writes_nothing(made, raw: str, problem: str) -> None:
    db, code, _ = made
    with pytest.raises(ChallengeError, match=problem) as err:
        db.join(code, raw, "k")
    assert "\n" not in str(err.value)
    assert _rows(db, "players") == 0


def test_nicknames_are_cleaned_of_markup_and_control_characters() -> None:
    assert ch_store.clean_nickname("<script>al\x00ert</script>") == "scriptalertscript"
    assert ch_store.clean_nickname("Zoë  O'Neil\n") == "Zoë O'Neil"
    assert ch_store.clean_nickname("ｆｕｌｌ") == "full"  # NFKC: full-width letters read as the same name


def test_a_wrong_teacher_token_changes_nothing(made) -> None:
    db, code, token = made
    for action in (db.close, db.reveal, db.delete):
        with pytest.raises(ChallengeError, match="not the teacher's link"):
            action(code, "guess")
    ch = db.get(code)
    assert ch.is_open() and not ch.revealed
    db.reveal(code, token)
    db.close(code, token)
    assert db.get(code).revealed and not db.get(code).is_open()
    db.delete(code, token)
    with pytest.raises(ChallengeError, match="no challenge"):
        db.get(code)
    assert _rows(db, "challenges") == 0


def test_a_closed_or_expired_challenge_takes_no_player_and_no_entry(db: ChallengeStore) -> None:
    t0 = 1_000_000.0
    code, token = db.create(
        image_png=b"o", image_name="cat", model="m", source=1, target=None, budget_kind="linf", budget=8,
        time_limit_min=10, now=t0,
    )  # fmt: skip
    db.join(code, "ana", "k", now=t0 + 60)
    db.submit(code, "ana", "k", "s1", _score(), now=t0 + 120)
    with pytest.raises(ChallengeError, match="closed"):
        db.join(code, "ben", "k2", now=t0 + 601)
    with pytest.raises(ChallengeError, match="closed"):
        db.submit(code, "ana", "k", "s2", _score(), now=t0 + 601)
    assert _rows(db, "entries") == 1 and _rows(db, "players") == 1
    db.close(code, token, closed=True)
    with pytest.raises(ChallengeError, match="closed"):
        db.join(code, "cy", "k3", now=t0 + 1)


def test_unknown_codes_and_out_of_range_settings_are_one_line_and_write_nothing(db: ChallengeStore) -> None:
    base = dict(image_png=b"o", image_name="cat", model="m", source=1, target=2)
    bad = [
        (dict(budget_kind="rms", budget=0.5), "between 0.0005 and 0.2"),
        (dict(budget_kind="linf", budget=0), "between 1 and 64"),
        (dict(budget_kind="l2", budget=1), "unknown budget kind"),
        (dict(budget_kind="rms", budget="lots"), "must be a number"),
        (dict(budget_kind="rms", budget=0.01, allowed="whitebox"), "unknown attack rule"),
        (dict(budget_kind="rms", budget=0.01, time_limit_min=0.5), "time limit"),
        (dict(budget_kind="rms", budget=0.01, target=1), "own class"),
    ]
    for extra, problem in bad:
        with pytest.raises(ChallengeError, match=problem) as err:
            db.create(**{**base, **extra})
        assert "\n" not in str(err.value)
    assert not db.path.exists()  # refused before the file is even made
    for call in (lambda: db.get("NOPE42"), lambda: db.join("NOPE42", "ana", "k"), lambda: db.board("NOPE42")):
        with pytest.raises(ChallengeError, match="no challenge 'NOPE42'"):
            call()


def test_old_challenges_are_purged_with_their_entries(db: ChallengeStore) -> None:
    t0 = 2_000_000.0
    code, _ = db.create(
        image_png=b"o", image_name="c", model="m", source=1, target=2, budget_kind="rms", budget=0.01, now=t0
    )
    db.join(code, "ana", "k", now=t0)
    db.submit(code, "ana", "k", "s", _score(), now=t0)
    assert db.purge(now=t0 + ch_store.KEEP_DAYS * 86400 - 1) == 0
    assert db.purge(now=t0 + ch_store.KEEP_DAYS * 86400 + 1) == 1
    assert (_rows(db, "challenges"), _rows(db, "players"), _rows(db, "entries")) == (0, 0, 0)


def test_a_database_of_another_kind_is_refused_in_one_line(tmp_path: Path) -> None:
    other = tmp_path / "study.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE rows (a INTEGER)")
    with pytest.raises(ChallengeError, match="something else"):
        ChallengeStore(other).get("ABC")
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ChallengeError, match="not a challenge database"):
        ChallengeStore(garbage).get("ABC")
    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO meta VALUES ('app', 'someone-else')")
    with pytest.raises(ChallengeError, match="belongs to 'someone-else'"):
        ChallengeStore(foreign).get("ABC")


def test_thirty_students_submitting_at_once_lose_no_row_and_duplicate_none(made) -> None:
    db, code, _ = made
    barrier = threading.Barrier(30)
    errors: list[BaseException] = []

    def student(i: int) -> None:
        try:
            mine = ChallengeStore(db.path)  # each session its own store object, as each server process would
            mine.join(code, f"s{i:02d}", f"k{i}")
            barrier.wait()
            for attempt in range(2):  # a rerun submits the same run again: still one row
                mine.submit(code, f"s{i:02d}", f"k{i}", f"run-{i}", _score(rms=0.001 * (i + 1)))
                del attempt
            mine.submit(code, f"s{i:02d}", f"k{i}", f"run-{i}-b", _score(False))
        except BaseException as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=student, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    board = db.board(code)
    assert board.submissions == 60 and board.tried == 30 and board.fooled == 30
    assert [e.nickname for e in board.entries] == [f"s{i:02d}" for i in range(30)]  # ranked by rms
    with sqlite3.connect(db.path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(DISTINCT submission) FROM entries").fetchone()[0] == 60


_WRITER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {root!r})
    from experiments.challenge.store import ChallengeStore, Score
    db = ChallengeStore({path!r})
    code, who, n = {code!r}, sys.argv[1], int(sys.argv[2])
    db.join(code, who, "key-" + who)
    png = bytes(range(256)) * 400  # ~100 kB, the size of a real model-input PNG
    for i in range(n):
        score = Score(True, True, True, "umbrella", 0.9, 0.001 + i * 1e-6, 3, png, "relabel", steps=i)
        db.submit(code, who, "key-" + who, f"{{who}}-{{i}}", score)
        print(i, flush=True)
    """
)


def _writer(db: ChallengeStore, code: str, who: str, n: int) -> subprocess.Popen:
    script = _WRITER.format(root=str(ROOT), path=str(db.path), code=code)
    return subprocess.Popen([sys.executable, "-c", script, who, str(n)], stdout=subprocess.PIPE, text=True)


def test_several_processes_submitting_at_once_lose_no_row(made) -> None:
    db, code, _ = made
    procs = [_writer(db, code, f"p{i}", 25) for i in range(4)]
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0 and out.split()[-1] == "24"
    board = db.board(code)
    assert board.submissions == 100 and board.tried == 4


def test_a_server_killed_mid_submission_leaves_a_sound_database_with_every_committed_row(made) -> None:
    db, code, _ = made
    proc = _writer(db, code, "victim", 100_000)
    assert proc.stdout is not None
    seen = -1
    while seen < 40:  # let it commit a few dozen entries, then kill it in the middle of the next ones
        seen = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    with sqlite3.connect(db.path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("SELECT steps, length(png) IS NULL FROM entries ORDER BY id").fetchall()
    committed = [r[0] for r in rows]
    assert committed == list(range(len(committed)))  # no gap, no duplicate, no half row
    assert len(committed) >= seen + 1  # every submission it reported as done is there
    board = db.board(code)  # and the store still works on it
    assert board.submissions == len(committed)


# ------------------------------------------------------------------------------------------------ scoring


@pytest.fixture(scope="module")
def tiny_challenge(tmp_path_factory):
    """A challenge on the tiny classifier: a random 16x16 image, untargeted, RMS budget 0.05."""
    model = TinyClassifier()
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 256, (1, 3, 16, 16), generator=g).float() / 255  # (1, 3, 16, 16)
    source = int(model.probabilities(x).argmax())
    db = ChallengeStore(tmp_path_factory.mktemp("tinych") / "c.sqlite")
    code, _ = db.create(
        image_png=_png(tensor_to_pil(x)), image_name="noise", model="tiny", source=source, target=None,
        budget_kind="rms", budget=0.05,
    )  # fmt: skip
    finished = run_batch(make_attack("pgd", eps=24, step_size=4, steps=20), model, x, Goal(torch.tensor([source])))
    adversarial = tensor_to_pil(finished.last.x_adv[0:1])
    return model, db.get(code), x, adversarial


def test_a_submission_is_scored_on_its_png_against_the_challenges_own_original(tiny_challenge) -> None:
    model, ch, x, adversarial = tiny_challenge
    png = _png(adversarial)
    s = ch_engine.score(ch, model, png, attack="pgd")
    # The same figures another way: numpy on the decoded 8-bit arrays, the plain model's argmax.
    a = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float64) / 255
    o = np.asarray(Image.open(io.BytesIO(ch.image_png)).convert("RGB"), dtype=np.float64) / 255
    assert s.rms == pytest.approx(float(np.sqrt(((a - o) ** 2).mean())), rel=1e-5)
    assert s.linf_255 == int(round(np.abs(a - o).max() * 255))
    top = int(model.probabilities(pil_to_tensor(Image.open(io.BytesIO(png)).convert("RGB"))).argmax())
    assert s.fooled == (top != ch.source) and s.fooled
    assert s.within_budget == (s.rms <= ch.budget) and s.success == (s.fooled and s.within_budget)
    unchanged = ch_engine.score(ch, model, ch.image_png, attack="pgd")
    assert not unchanged.fooled and unchanged.rms == 0 and not unchanged.success


def test_a_fooling_image_over_the_budget_does_not_count(tiny_challenge) -> None:
    model, ch, _, adversarial = tiny_challenge
    tight = ch_store.Challenge(**{**ch.__dict__, "budget": 0.0005})
    s = ch_engine.score(tight, model, _png(adversarial), attack="pgd")
    assert s.fooled and not s.within_budget and not s.success


def test_a_bad_submission_is_refused_in_one_line(tiny_challenge) -> None:
    model, ch, _, adversarial = tiny_challenge
    cases = [
        (_png(adversarial, "JPEG"), "pgd", "must be a PNG"),
        (_png(adversarial.resize((8, 8))), "pgd", "is 8×8, the challenge's 16×16"),
        (b"not an image", "pgd", "cannot be read"),
    ]
    for data, attack, problem in cases:
        with pytest.raises(ChallengeError, match=problem):
            ch_engine.score(ch, model, data, attack=attack)
    relabel_only = ch_store.Challenge(**{**ch.__dict__, "allowed": "relabel"})
    with pytest.raises(ChallengeError, match="pgd is not allowed"):
        ch_engine.score(relabel_only, model, _png(adversarial), attack="pgd")


def test_the_attack_rules_and_budget_presets() -> None:
    from attacks import ATTACKS
    from attacks.queries import BlackBoxAttack

    assert ch_engine.allowed_attacks("any") == list(ATTACKS)
    assert ch_engine.allowed_attacks("relabel") == ["relabel"]
    black = ch_engine.allowed_attacks("blackbox")
    assert black and all(issubclass(ATTACKS[a], BlackBoxAttack) for a in black) and "pgd" not in black
    base = dict(
        code="X", created=0.0, closes_at=None, closed=False, revealed=False, image_name="c", image_png=b"",
        model="m", source=1, target=2, allowed="any", confidence=0.0,
    )  # fmt: skip
    rms = ch_store.Challenge(**base, budget_kind="rms", budget=0.02)
    linf = ch_store.Challenge(**base, budget_kind="linf", budget=6.0)
    assert ch_engine.budget_params(rms, "relabel") == {"max_rms": 0.02}
    assert ch_engine.budget_params(linf, "pgd") == {"eps": 6.0} and ch_engine.budget_params(linf, "relabel") == {}


# ------------------------------------------------------------------------------------------------ the pages


@pytest.fixture()
def app_db(tmp_path: Path, monkeypatch) -> ChallengeStore:
    path = tmp_path / "pages.sqlite"
    monkeypatch.setenv("ADVLAB_CHALLENGE_DB", str(path))
    return ChallengeStore(path)


def _page(path: str, **query: str) -> AppTest:
    """A page as its own script (the Lab through app.py, as its other tests run it), with the link's query."""
    at = AppTest.from_file(str(ROOT / ("app.py" if path == "pages/attack_lab.py" else path)), default_timeout=300)
    at.query_params.update(query)
    return at.run()


def test_the_teacher_creates_a_challenge_and_gets_the_board(app_db: ChallengeStore) -> None:
    at = _page("pages/challenge.py")
    assert not at.exception, at.exception
    at.number_input(key="ch.budget.rms").set_value(0.02)
    at.button[[b.label for b in at.button].index("Create the challenge")].click().run()
    assert not at.exception, at.exception
    code, key = at.query_params["code"], at.query_params["key"]
    ch = app_db.get(code)
    assert ch.target == class_index("umbrella") and ch.budget == 0.02 and app_db.is_teacher(code, key)
    assert ch.source == class_index("tiger cat") or ch.source != ch.target  # the model's own class of the cat
    labels = [b.label for b in at.button]
    assert "Close" in labels and "Reveal all" in labels
    assert [m.label for m in at.metric][:2] == ["Students who submitted", "Fooled within the budget"]


def test_a_student_reaching_the_board_without_the_key_sees_no_controls(app_db: ChallengeStore) -> None:
    code, token = app_db.create(
        image_png=_png(Image.new("RGB", (224, 224), "grey")), image_name="grey", model="efficientnet_lite0",
        source=1, target=2, budget_kind="rms", budget=0.01,
    )  # fmt: skip
    for query in ({"code": code}, {"code": code, "key": "guess"}):
        at = _page("pages/challenge.py", **query)
        assert not at.exception, at.exception
        labels = [b.label for b in at.button]
        assert "Close" not in labels and "Reveal all" not in labels and not at.metric
        assert not at.get("download_button")
    assert "wrong key" in _page("pages/challenge.py", code=code, key="guess").error[0].value
    assert "no challenge 'ZZZZZZ'" in _page("pages/challenge.py", code="ZZZZZZ").error[0].value


def test_the_lab_locked_to_a_challenge_submits_each_finished_run(app_db: ChallengeStore, lite0, chelsea_input) -> None:
    source = int(lite0.probabilities(pil_to_tensor(chelsea_input)).argmax())
    code, _ = app_db.create(
        image_png=_png(chelsea_input), image_name="chelsea", model="efficientnet_lite0", source=source,
        target=class_index("umbrella"), budget_kind="rms", budget=0.01, allowed="relabel",
    )  # fmt: skip
    at = _page("pages/attack_lab.py", challenge=code)
    assert not at.exception, at.exception
    assert at.button(key="run").disabled  # no nickname yet
    assert at.selectbox(key="model").disabled and at.selectbox(key="target").disabled
    assert at.selectbox(key="attack").options == ["Relabel"]
    at.text_input(key="challenge.nick_input").input("Ana").run()
    assert not at.button(key="run").disabled
    at.button(key="run").click().run()
    assert not at.exception, at.exception
    record = at.session_state["lab.record"]
    board = app_db.board(code)
    assert [e.nickname for e in board.entries] == ["Ana"]
    entry = board.entries[0]
    # The board's verdict is the server's, on the saved PNG; it agrees with the Lab's own verify of that PNG.
    assert entry.fooled == record.verdict.success and entry.rms == pytest.approx(record.verdict.rms_distortion)
    assert entry.success and app_db.image(code, entry.id) == record.adversarial_png
    assert any("Submitted: fooled the model within the budget" in s.value for s in at.success)
    # The address keeps the challenge and, once joined, this session's player key (a reload plays on as Ana).
    key = at.session_state["challenge.player_key"]
    assert dict(at.query_params) == {"challenge": code, "player": key}

    def standing(at: AppTest) -> list[str]:
        texts = [e.value for e in [*at.success, *at.warning, *at.markdown]]
        return [t[t.index("You are") :] for t in texts if "You are" in t]

    assert standing(at) == ["You are **#1 of 1** on the board."]
    # one line for the submission and the place (the verdict's numbers are the story's, not repeated)
    assert [s.value for s in at.success if s.value.startswith("Submitted")] == [
        "Submitted: fooled the model within the budget. You are **#1 of 1** on the board."
    ]
    # A classmate submits a smaller change that works: Ana's place follows (the fragment reads the store).
    app_db.join(code, "Bo", "key-bo")
    app_db.submit(code, "Bo", "key-bo", "key-bo:1", _score(success=True, rms=entry.rms / 2))
    at.run()
    assert standing(at) == ["You are **#2 of 2** on the board."]
    again = _page("pages/attack_lab.py", challenge=code, player=key)  # a reload: the place, from the store
    assert standing(again) == standing(at)


def test_a_reloaded_students_page_plays_on_under_its_nickname(app_db: ChallengeStore) -> None:
    """Issue 19: a reload starts a new session; the player key in the student's own address gets the nickname back
    (and with it the right to submit under it). A key that claimed nothing, or a malformed one, joins no one."""
    code, _ = app_db.create(
        image_png=_png(Image.new("RGB", (224, 224), "grey")), image_name="grey", model="efficientnet_lite0",
        source=1, target=2, budget_kind="rms", budget=0.01,
    )  # fmt: skip
    at = _page("pages/attack_lab.py", challenge=code)
    assert dict(at.query_params) == {"challenge": code}  # not joined: the students' link as the teacher gave it
    at.text_input(key="challenge.nick_input").input("Ana").run()
    assert not at.exception, at.exception
    key = at.query_params["player"]
    assert key == at.session_state["challenge.player_key"] and app_db.nickname_of(code, key) == "Ana"
    again = _page("pages/attack_lab.py", challenge=code, player=key)
    assert not again.exception, again.exception
    assert any("Playing as **Ana**" in m.value for m in again.info)
    assert not again.button(key="run").disabled and again.session_state["challenge.player_key"] == key
    for other in ("x" * 24, "bad key!"):
        stranger = _page("pages/attack_lab.py", challenge=code, player=other)
        assert not any("Playing as" in m.value for m in stranger.info)
        assert stranger.button(key="run").disabled and stranger.session_state["challenge.player_key"] != key


def test_the_lab_with_an_unknown_challenge_code_says_so_in_one_line(app_db: ChallengeStore) -> None:
    at = _page("pages/attack_lab.py", challenge="NOPE42")
    assert not at.exception, at.exception
    assert "no challenge 'NOPE42'" in at.error[0].value
    assert not at.button  # nothing to run against


def test_a_run_stopped_before_its_first_step_is_not_submitted(app_db: ChallengeStore, monkeypatch) -> None:
    """A Stop (or an interruption) before the attack took a step leaves the original: no entry on the board (it
    would rank a student "not fooled" for a run that never ran), and one line saying so."""
    import streamlit as st

    from experiments.challenge import view as ch_view

    code, _ = app_db.create(
        image_png=_png(Image.new("RGB", (32, 32))), image_name="grey", model="efficientnet_lite0", source=1,
        target=2, budget_kind="rms", budget=0.01, allowed="any",
    )  # fmt: skip
    app_db.join(code, "Ana", "key-ana")
    state: dict = {}
    monkeypatch.setattr(st, "session_state", state)
    record = type("R", (), {"status": "stopped", "steps": [0], "adversarial_png": b"png", "run_id": 7})()
    mode = ch_view.LabMode(challenge=app_db.get(code), nickname="Ana", player_key="key-ana")
    ch_view.submit(mode, record)
    assert app_db.board(code).entries == []
    assert "stopped before its first step" in next(iter(state.values()))[7]
