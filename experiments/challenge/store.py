"""The classroom challenge's storage: one SQLite file (WAL mode) holding challenges, players and their entries.

Why SQLite and not session state: a challenge outlives any one browser session and a server restart, and thirty
sessions write to it at once. Every call opens its own short connection (safe from any thread or process) and
every write is one `BEGIN IMMEDIATE` transaction, so concurrent submissions serialise on the file lock instead
of losing or duplicating rows; a submission carries its own id (UNIQUE), so a retried or rerun submit is a no-op.

Who may do what is checked here, not by the page: the teacher's token (stored only as a hash) alone closes,
reveals or deletes a challenge; a nickname belongs to the player key that claimed it, so nobody else can submit
under it; entries are never updated or deleted one by one. No torch here: scoring lives in challenge.py.

Bounds: a challenge is deleted `KEEP_DAYS` after it was made; it takes at most MAX_PLAYERS nicknames and
MAX_ENTRIES submissions; only each player's best entry keeps its PNG (each at most MAX_PNG_BYTES); no new
challenge is made while the file is over MAX_DB_BYTES.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import os
import re
import secrets
import sqlite3
import time
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
#: The database file unless ADVLAB_CHALLENGE_DB names another (README: "Classroom challenge").
DEFAULT_DB = ROOT / "var" / "challenges.sqlite"
APP_ID = "adversarial-lab-challenges"
SCHEMA_VERSION = "1"

CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: a code is read off a projector
CODE_LENGTH = 6
NICKNAME_MAX = 20
KEEP_DAYS = 7
MAX_PLAYERS = 200
MAX_ENTRIES = 2000
MAX_PNG_BYTES = 2 * 1024 * 1024
MAX_DB_BYTES = 500 * 1024 * 1024
MAX_TIME_LIMIT_MIN = 24 * 60

BUDGET_KINDS = ("rms", "linf")
#: Budget ranges: RMS distortion of [0,1] pixels; L-inf in 1/255 grey levels.
BUDGET_RANGES = {"rms": (0.0005, 0.2), "linf": (1.0, 64.0)}
ALLOWED = ("any", "relabel", "blackbox")


class ChallengeError(ValueError):
    """A refused challenge operation; the message is one line for the page or the CLI."""


@dataclass(frozen=True)
class Challenge:
    """One challenge's fixed settings and state (the token hash never leaves this module)."""

    code: str
    created: float
    closes_at: float | None
    closed: bool
    revealed: bool
    image_name: str
    image_png: bytes  # (H, W) 8-bit RGB: exactly the model's input, every player's starting point
    model: str
    source: int
    target: int | None  # None: untargeted (any class but the source)
    budget_kind: str  # "rms" or "linf"
    budget: float  # RMS, or L-inf in 1/255
    allowed: str  # one of ALLOWED
    confidence: float

    def is_open(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        return not self.closed and (self.closes_at is None or now < self.closes_at)

    def seconds_left(self, now: float | None = None) -> float | None:
        if self.closes_at is None:
            return None
        return max(0.0, self.closes_at - (time.time() if now is None else now))


@dataclass(frozen=True)
class Score:
    """What the server measured on a submitted 8-bit image (challenge.score), with how the run got there."""

    success: bool  # fooled AND within the budget: what the board ranks first
    fooled: bool  # the plain model's verdict on the saved image (target reached / label changed)
    within_budget: bool
    label: str
    probability: float
    rms: float
    linf_255: int
    png: bytes
    attack: str
    params: dict[str, Any] = field(default_factory=dict)
    steps: int = 0
    queries: int | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class Entry:
    """One row of the board: a player's best submission (or, in `entries`, any submission)."""

    id: int
    nickname: str
    submitted: float
    attack: str
    success: bool
    fooled: bool
    within_budget: bool
    label: str
    probability: float
    rms: float
    linf_255: int
    steps: int
    queries: int | None
    seconds: float
    tries: int = 1


@dataclass(frozen=True)
class Board:
    """Everything the teacher's board shows: the ranked best entries and the counts."""

    challenge: Challenge
    entries: list[Entry]  # best per player, ranked: success, then smallest RMS, then first submitted
    submissions: int

    @property
    def tried(self) -> int:
        return len(self.entries)

    @property
    def fooled(self) -> int:
        return sum(e.success for e in self.entries)

    @property
    def smallest_rms(self) -> float | None:
        """The smallest RMS distortion among successful entries (None when nobody succeeded)."""
        ok = [e.rms for e in self.entries if e.success]
        return min(ok) if ok else None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS challenges (
    code TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL,
    created REAL NOT NULL,
    closes_at REAL,
    closed INTEGER NOT NULL DEFAULT 0,
    revealed INTEGER NOT NULL DEFAULT 0,
    image_name TEXT NOT NULL,
    image_png BLOB NOT NULL,
    model TEXT NOT NULL,
    source INTEGER NOT NULL,
    target INTEGER,
    budget_kind TEXT NOT NULL CHECK (budget_kind IN ('rms', 'linf')),
    budget REAL NOT NULL,
    allowed TEXT NOT NULL,
    confidence REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS players (
    code TEXT NOT NULL REFERENCES challenges(code) ON DELETE CASCADE,
    name_key TEXT NOT NULL,
    nickname TEXT NOT NULL,
    key_hash TEXT NOT NULL,
    joined REAL NOT NULL,
    PRIMARY KEY (code, name_key)
);
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    code TEXT NOT NULL REFERENCES challenges(code) ON DELETE CASCADE,
    name_key TEXT NOT NULL,
    submission TEXT NOT NULL,
    submitted REAL NOT NULL,
    attack TEXT NOT NULL,
    params TEXT NOT NULL,
    success INTEGER NOT NULL,
    fooled INTEGER NOT NULL,
    within_budget INTEGER NOT NULL,
    label TEXT NOT NULL,
    probability REAL NOT NULL,
    rms REAL NOT NULL,
    linf_255 INTEGER NOT NULL,
    steps INTEGER NOT NULL,
    queries INTEGER,
    seconds REAL NOT NULL,
    png BLOB,
    UNIQUE (code, submission)
);
CREATE INDEX IF NOT EXISTS entries_by_player ON entries (code, name_key);
"""


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def clean_nickname(raw: str) -> str:
    """A nickname as shown on the board: NFKC-normalised, control characters and markup removed, spaces collapsed,
    1..NICKNAME_MAX characters of letters, digits, spaces and - _ . ' (no other personal data is asked for)."""
    text = unicodedata.normalize("NFKC", str(raw))
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    text = re.sub(r"[^\w \-.']", "", text)
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        raise ChallengeError("type a nickname (letters, digits, spaces, - _ . ')")
    if len(text) > NICKNAME_MAX:
        raise ChallengeError(f"a nickname has at most {NICKNAME_MAX} characters; {text[:NICKNAME_MAX]!r} is allowed")
    return text


def check_budget(kind: str, value: float) -> float:
    """The budget in its kind's range, else one line saying the range."""
    if kind not in BUDGET_KINDS:
        raise ChallengeError(f"unknown budget kind {kind!r}; choose one of: {', '.join(BUDGET_KINDS)}")
    low, high = BUDGET_RANGES[kind]
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ChallengeError(f"the budget must be a number, not {value!r}") from None
    if not low <= value <= high:
        unit = "RMS distortion" if kind == "rms" else "L-inf budget (1/255)"
        raise ChallengeError(f"the {unit} must be between {low:g} and {high:g}, not {value:g}")
    return value


def default_path() -> Path:
    return Path(os.environ.get("ADVLAB_CHALLENGE_DB") or DEFAULT_DB)


class ChallengeStore:
    """The challenges of one database file; cheap to create, safe to share between threads and processes."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        self._ready = False

    # --- connections -------------------------------------------------------------------------------------------

    @contextmanager
    def _connect(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        """One connection per call; a write holds the file's write lock from its first statement (BEGIN IMMEDIATE),
        so two submissions never read the same state and both write."""
        self._prepare()
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA busy_timeout = 30000")
            if write:
                conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if write:
                    conn.execute("ROLLBACK")
                raise
            if write:
                conn.execute("COMMIT")
        finally:
            conn.close()

    def _prepare(self) -> None:
        """Create the file on first use (WAL mode, the schema, our app id); refuse a database of anything else."""
        if self._ready:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            try:
                conn.execute("PRAGMA busy_timeout = 30000")
                conn.execute("PRAGMA journal_mode = WAL")
                tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            except sqlite3.DatabaseError as err:
                raise ChallengeError(f"{self.path} is not a challenge database ({err})") from None
            if tables and "meta" not in tables:
                raise ChallengeError(f"{self.path} is a database of something else, not of challenges")
            if not tables:
                # One transaction (BEGIN IMMEDIATE inside the script): two processes creating the file at once
                # serialise, and the second's IF NOT EXISTS / OR IGNORE change nothing.
                conn.executescript(
                    f"BEGIN IMMEDIATE;{_SCHEMA}"
                    f"INSERT OR IGNORE INTO meta VALUES ('app', '{APP_ID}');"
                    f"INSERT OR IGNORE INTO meta VALUES ('version', '{SCHEMA_VERSION}');COMMIT;"
                )
            try:
                meta = dict(conn.execute("SELECT key, value FROM meta"))
            except sqlite3.DatabaseError as err:
                raise ChallengeError(f"{self.path} is a database of something else ({err})") from None
        finally:
            conn.close()
        if meta.get("app") != APP_ID:
            raise ChallengeError(f"{self.path} belongs to {meta.get('app')!r}, not to the classroom challenge")
        if meta.get("version") != SCHEMA_VERSION:
            raise ChallengeError(
                f"{self.path} has challenge schema {meta.get('version')}, this version reads {SCHEMA_VERSION}"
            )
        self._ready = True

    # --- the teacher's side ------------------------------------------------------------------------------------

    def create(
        self,
        *,
        image_png: bytes,
        image_name: str,
        model: str,
        source: int,
        target: int | None,
        budget_kind: str,
        budget: float,
        allowed: str = "any",
        time_limit_min: float | None = None,
        confidence: float = 0.0,
        now: float | None = None,
    ) -> tuple[str, str]:
        """A new challenge; returns (code, teacher token). Also deletes challenges older than KEEP_DAYS."""
        budget = check_budget(budget_kind, budget)
        if allowed not in ALLOWED:
            raise ChallengeError(f"unknown attack rule {allowed!r}; choose one of: {', '.join(ALLOWED)}")
        if time_limit_min is not None and not 1 <= time_limit_min <= MAX_TIME_LIMIT_MIN:
            raise ChallengeError(f"the time limit must be 1 to {MAX_TIME_LIMIT_MIN} minutes, or none")
        if not 0.0 <= confidence < 1.0:
            raise ChallengeError(f"the confidence must be in [0, 1), not {confidence:g}")
        if target is not None and target == source:
            raise ChallengeError("the target is the image's own class; pick another target, or untargeted")
        if len(image_png) > MAX_PNG_BYTES:
            raise ChallengeError(f"the challenge image is over {MAX_PNG_BYTES // 2**20} MB")
        now = time.time() if now is None else now
        self.purge(now)
        if self.path.exists() and self.path.stat().st_size > MAX_DB_BYTES:
            raise ChallengeError("the challenge database is full; delete old challenges first")
        token = secrets.token_urlsafe(24)
        closes = now + 60 * time_limit_min if time_limit_min else None
        with self._connect(write=True) as conn:
            for _ in range(100):
                code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
                if conn.execute("SELECT 1 FROM challenges WHERE code = ?", (code,)).fetchone() is None:
                    break
            else:  # pragma: no cover - 31^6 codes
                raise ChallengeError("no free challenge code; delete old challenges")
            conn.execute(
                "INSERT INTO challenges (code, token_hash, created, closes_at, image_name, image_png, model, source, "
                "target, budget_kind, budget, allowed, confidence) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    code,
                    _hash(token),
                    now,
                    closes,
                    image_name[:200],
                    image_png,
                    model,
                    int(source),
                    None if target is None else int(target),
                    budget_kind,
                    budget,
                    allowed,
                    float(confidence),
                ),
            )
        return code, token

    def _teacher(self, conn: sqlite3.Connection, code: str, token: str) -> None:
        row = conn.execute("SELECT token_hash FROM challenges WHERE code = ?", (normal_code(code),)).fetchone()
        if row is None:
            raise ChallengeError(f"there is no challenge {normal_code(code)!r} (it may have expired or been deleted)")
        if not hmac.compare_digest(row[0], _hash(str(token))):
            raise ChallengeError("this is not the teacher's link for this challenge (wrong key)")

    def is_teacher(self, code: str, token: str) -> bool:
        with self._connect(write=False) as conn:
            try:
                self._teacher(conn, code, token)
            except ChallengeError:
                return False
        return True

    def close(self, code: str, token: str, *, closed: bool = True) -> None:
        """Stop (or reopen) submissions; entries stay."""
        with self._connect(write=True) as conn:
            self._teacher(conn, code, token)
            conn.execute("UPDATE challenges SET closed = ? WHERE code = ?", (int(closed), normal_code(code)))

    def reveal(self, code: str, token: str, *, revealed: bool = True) -> None:
        """Show (or hide) every player's best image on the board."""
        with self._connect(write=True) as conn:
            self._teacher(conn, code, token)
            conn.execute("UPDATE challenges SET revealed = ? WHERE code = ?", (int(revealed), normal_code(code)))

    def delete(self, code: str, token: str) -> None:
        """The challenge, its players, entries and images, gone."""
        with self._connect(write=True) as conn:
            self._teacher(conn, code, token)
            conn.execute("DELETE FROM challenges WHERE code = ?", (normal_code(code),))

    def purge(self, now: float | None = None) -> int:
        """Delete challenges made more than KEEP_DAYS ago; returns how many."""
        now = time.time() if now is None else now
        with self._connect(write=True) as conn:
            return conn.execute("DELETE FROM challenges WHERE created < ?", (now - KEEP_DAYS * 86400,)).rowcount

    # --- reading -------------------------------------------------------------------------------------------------

    def get(self, code: str) -> Challenge:
        """The challenge, or one line saying there is none."""
        with self._connect(write=False) as conn:
            return self._get(conn, code)

    def _get(self, conn: sqlite3.Connection, code: str) -> Challenge:
        code = normal_code(code)
        row = conn.execute(
            "SELECT code, created, closes_at, closed, revealed, image_name, image_png, model, source, target, "
            "budget_kind, budget, allowed, confidence FROM challenges WHERE code = ?",
            (code,),
        ).fetchone()
        if row is None:
            raise ChallengeError(f"there is no challenge {code!r} (it may have expired or been deleted)")
        return Challenge(
            code=row[0],
            created=row[1],
            closes_at=row[2],
            closed=bool(row[3]),
            revealed=bool(row[4]),
            image_name=row[5],
            image_png=bytes(row[6]),
            model=row[7],
            source=row[8],
            target=row[9],
            budget_kind=row[10],
            budget=row[11],
            allowed=row[12],
            confidence=row[13],
        )

    _ENTRY_COLUMNS = (
        "e.id, p.nickname, e.submitted, e.attack, e.success, e.fooled, e.within_budget, e.label, e.probability, "
        "e.rms, e.linf_255, e.steps, e.queries, e.seconds"
    )
    _RANK = "e.success DESC, e.rms ASC, e.submitted ASC, e.id ASC"

    @staticmethod
    def _entry(row: tuple, tries: int = 1) -> Entry:
        return Entry(
            id=row[0],
            nickname=row[1],
            submitted=row[2],
            attack=row[3],
            success=bool(row[4]),
            fooled=bool(row[5]),
            within_budget=bool(row[6]),
            label=row[7],
            probability=row[8],
            rms=row[9],
            linf_255=row[10],
            steps=row[11],
            queries=row[12],
            seconds=row[13],
            tries=tries,
        )

    def board(self, code: str) -> Board:
        """Each player's best entry, ranked; one read transaction, so the counts and rows agree."""
        with self._connect(write=False) as conn:
            conn.execute("BEGIN")
            challenge = self._get(conn, code)
            rows = conn.execute(
                f"SELECT {self._ENTRY_COLUMNS}, e.name_key FROM entries e JOIN players p "
                "ON p.code = e.code AND p.name_key = e.name_key WHERE e.code = ? "
                f"ORDER BY {self._RANK}",
                (challenge.code,),
            ).fetchall()
            conn.execute("COMMIT")
        best: dict[str, tuple] = {}
        tries: dict[str, int] = {}
        for row in rows:
            key = row[-1]
            tries[key] = tries.get(key, 0) + 1
            best.setdefault(key, row)  # rows come ranked: the first of a player is their best
        entries = [self._entry(row[:-1], tries[key]) for key, row in best.items()]
        return Board(challenge, entries, len(rows))

    def entries(self, code: str) -> list[Entry]:
        """Every submission, in the order they arrived (the CSV)."""
        with self._connect(write=False) as conn:
            code = self._get(conn, code).code
            rows = conn.execute(
                f"SELECT {self._ENTRY_COLUMNS} FROM entries e JOIN players p "
                "ON p.code = e.code AND p.name_key = e.name_key WHERE e.code = ? ORDER BY e.id",
                (code,),
            ).fetchall()
        return [self._entry(r) for r in rows]

    def image(self, code: str, entry_id: int) -> bytes | None:
        """The PNG of an entry (kept for each player's best entry only)."""
        with self._connect(write=False) as conn:
            row = conn.execute(
                "SELECT png FROM entries WHERE code = ? AND id = ?", (normal_code(code), int(entry_id))
            ).fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    def csv(self, code: str) -> str:
        """Every submission as CSV: the teacher's record of the lesson."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(
            [
                "id",
                "nickname",
                "submitted_utc",
                "attack",
                "success",
                "fooled",
                "within_budget",
                "label",
                "probability",
                "rms",
                "linf_255",
                "steps",
                "queries",
                "seconds",
            ]
        )
        for e in self.entries(code):
            writer.writerow(
                [
                    e.id,
                    e.nickname,
                    time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e.submitted)),
                    e.attack,
                    int(e.success),
                    int(e.fooled),
                    int(e.within_budget),
                    e.label,
                    f"{e.probability:.4f}",
                    f"{e.rms:.6f}",
                    e.linf_255,
                    e.steps,
                    "" if e.queries is None else e.queries,
                    f"{e.seconds:.2f}",
                ]
            )
        return out.getvalue()

    def rank(self, code: str, nickname: str) -> tuple[int, int] | None:
        """(rank, players) of a player's best entry on the board, or None before their first entry."""
        key = clean_nickname(nickname).casefold()
        board = self.board(code)
        names = [e.nickname.casefold() for e in board.entries]
        return (names.index(key) + 1, len(names)) if key in names else None

    # --- the students' side --------------------------------------------------------------------------------------

    def nickname_of(self, code: str, player_key: str) -> str | None:
        """The nickname this player key claimed in the challenge, or None: a reloaded page (the key travels in the
        student's own address) plays on under the same name."""
        with self._connect(write=False) as conn:
            row = conn.execute(
                "SELECT nickname FROM players WHERE code = ? AND key_hash = ?", (normal_code(code), _hash(player_key))
            ).fetchone()
        return None if row is None else row[0]

    def join(self, code: str, nickname: str, player_key: str, now: float | None = None) -> str:
        """Claim a nickname in a challenge for this player key; returns the cleaned nickname. The same key may
        join again; another key may not take the name."""
        name = clean_nickname(nickname)
        now = time.time() if now is None else now
        with self._connect(write=True) as conn:
            challenge = self._get(conn, code)
            if not challenge.is_open(now):
                raise ChallengeError(f"challenge {challenge.code} is closed")
            row = conn.execute(
                "SELECT key_hash, nickname FROM players WHERE code = ? AND name_key = ?",
                (challenge.code, name.casefold()),
            ).fetchone()
            if row is not None:
                if not hmac.compare_digest(row[0], _hash(player_key)):
                    raise ChallengeError(f"the nickname {name!r} is taken in this challenge; pick another")
                return row[1]
            (players,) = conn.execute("SELECT COUNT(*) FROM players WHERE code = ?", (challenge.code,)).fetchone()
            if players >= MAX_PLAYERS:
                raise ChallengeError(f"challenge {challenge.code} is full ({MAX_PLAYERS} players)")
            conn.execute(
                "INSERT INTO players VALUES (?, ?, ?, ?, ?)",
                (challenge.code, name.casefold(), name, _hash(player_key), now),
            )
        return name

    def submit(
        self,
        code: str,
        nickname: str,
        player_key: str,
        submission: str,
        score: Score,
        now: float | None = None,
    ) -> int:
        """Record a scored submission; returns its entry id. The same `submission` id again returns the first
        one's id and writes nothing. Only the player's best entry keeps its PNG."""
        name = clean_nickname(nickname)
        now = time.time() if now is None else now
        if len(score.png) > MAX_PNG_BYTES:
            raise ChallengeError(f"the image is over {MAX_PNG_BYTES // 2**20} MB")
        with self._connect(write=True) as conn:
            challenge = self._get(conn, code)
            old = conn.execute(
                "SELECT id FROM entries WHERE code = ? AND submission = ?", (challenge.code, submission)
            ).fetchone()
            if old is not None:
                return int(old[0])
            if not challenge.is_open(now):
                raise ChallengeError(f"challenge {challenge.code} is closed: this run was not submitted")
            row = conn.execute(
                "SELECT key_hash FROM players WHERE code = ? AND name_key = ?", (challenge.code, name.casefold())
            ).fetchone()
            if row is None or not hmac.compare_digest(row[0], _hash(player_key)):
                raise ChallengeError(f"the nickname {name!r} is not yours in this challenge")
            (count,) = conn.execute("SELECT COUNT(*) FROM entries WHERE code = ?", (challenge.code,)).fetchone()
            if count >= MAX_ENTRIES:
                raise ChallengeError(f"challenge {challenge.code} has its {MAX_ENTRIES} entries; it takes no more")
            best = conn.execute(
                "SELECT e.id, e.success, e.rms FROM entries e WHERE e.code = ? AND e.name_key = ? "
                f"ORDER BY {self._RANK} LIMIT 1",
                (challenge.code, name.casefold()),
            ).fetchone()
            better = best is None or (score.success, -score.rms) > (bool(best[1]), -best[2])
            cur = conn.execute(
                "INSERT INTO entries (code, name_key, submission, submitted, attack, params, success, fooled, "
                "within_budget, label, probability, rms, linf_255, steps, queries, seconds, png) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    challenge.code,
                    name.casefold(),
                    submission,
                    now,
                    score.attack,
                    json.dumps(score.params, sort_keys=True),
                    int(score.success),
                    int(score.fooled),
                    int(score.within_budget),
                    score.label,
                    float(score.probability),
                    float(score.rms),
                    int(score.linf_255),
                    int(score.steps),
                    score.queries,
                    float(score.seconds),
                    score.png if better else None,
                ),
            )
            if better and best is not None:
                conn.execute("UPDATE entries SET png = NULL WHERE id = ?", (best[0],))
            return int(cur.lastrowid)


def normal_code(code: str) -> str:
    """A code as typed: case and spaces do not matter."""
    return re.sub(r"\s+", "", str(code)).upper()
