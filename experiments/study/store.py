"""The susceptibility study's results in one SQLite file (standard library), with the study's parameters beside them.

Why SQLite: one file a user can copy, open from the page while the CLI is still filling it (WAL mode lets readers
in beside the single writer), and transactions that make a kill -9 at any moment lose nothing finished. Every batch
of rows is committed in one transaction (synchronous=FULL), and (image_id, target) is the primary key of `rows`,
so a resumed or retried unit can never duplicate a row.

Tables: `study` (one row: the parameters, JSON-encoded per column), `images` (what the model said about each image
before any attack: the screening the image choice is made from, so a resume chooses the same images), `rows`.
The file is marked with SQLite's application_id, so another program's database is refused with one line.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import astuple, dataclass, fields
from typing import Any

from images.imagesets import Screened

#: "ADLS" (Adversarial Lab sweep) in SQLite's application_id header field.
APPLICATION_ID = 0x41444C53
SCHEMA_VERSION = 1
#: The study's parameters, in the order they are described; a file holds exactly one study.
STUDY_FIELDS = (
    "model",
    "attack",
    "attack_params",
    "image_set",
    "selection",
    "targets",
    "max_rms",
    "seed",
    "criterion",
)


class StoreError(ValueError):
    """A database file that cannot be used for this study; str(err) is one line for the user."""


@dataclass(frozen=True)
class Row:
    """One finished attack (one image toward one target), verified on its 8-bit image by the plain model.

    success: the 8-bit image's top-1 is the target (with the study's confidence) and rms <= the study's cap.
    final_class: the 8-bit image's top-1 (what the image became, whether or not it is the target).
    seconds: the unit's wall time shared equally by its rows (the attacks ran as one batch).
    queries: images a black-box attack asked the model about for this pair (Step.queries); None for white-box
        attacks, and in files written before the column existed.
    """

    image_id: str
    source: int
    target: int
    success: bool
    iterations: int
    rms: float
    linf: float
    p_target: float
    final_class: int
    seconds: float
    queries: int | None = None


_ROW_COLUMNS = tuple(f.name for f in fields(Row))
_SCHEMA = f"""
CREATE TABLE study (
    {", ".join(f"{name} TEXT NOT NULL" for name in STUDY_FIELDS)},
    schema_version INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE images (
    image_id TEXT PRIMARY KEY,
    label INTEGER,
    predicted INTEGER,
    error TEXT
);
CREATE TABLE rows (
    image_id TEXT NOT NULL,
    source INTEGER NOT NULL,
    target INTEGER NOT NULL,
    success INTEGER NOT NULL,
    iterations INTEGER NOT NULL,
    rms REAL NOT NULL,
    linf REAL NOT NULL,
    p_target REAL NOT NULL,
    final_class INTEGER NOT NULL,
    seconds REAL NOT NULL,
    queries INTEGER,
    PRIMARY KEY (image_id, target)
);
PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {SCHEMA_VERSION};
"""


def describe_study(params: dict[str, Any]) -> str:
    """One line naming a study, for messages and report headers."""
    attack_params = ", ".join(f"{k}={v:g}" for k, v in params["attack_params"].items())
    chosen = {k: v for k, v in params["selection"].items() if v is not None}
    return (
        f"{params['model']}, {params['attack']}({attack_params}), images {params['image_set']} {chosen}, "
        f"targets {params['targets']}, max_rms {params['max_rms']:g}, seed {params['seed']}, {params['criterion']}"
    )


class SweepStore:
    """One study's database. Open with `open` (create, or check the parameters) or `read` (any study, no writes
    expected); use as a context manager or call close()."""

    def __init__(self, path: str | os.PathLike[str], conn: sqlite3.Connection, params: dict[str, Any]) -> None:
        self.path = os.fspath(path)
        self.conn = conn
        self.params = params

    @classmethod
    def open(cls, path: str | os.PathLike[str], params: dict[str, Any]) -> SweepStore:
        """Create the file for this study, or reopen it to resume; a file holding another study raises StoreError."""
        missing = [name for name in STUDY_FIELDS if name not in params]
        if missing:
            raise StoreError(f"study parameters lack {', '.join(missing)}")
        conn = _connect(path)
        try:
            if not _tables(conn):
                _create(conn, params)
            held = _check_ours(conn, path)
            wanted = json.loads(json.dumps({name: params[name] for name in STUDY_FIELDS}, sort_keys=True))
            if held != wanted:
                differ = [name for name in STUDY_FIELDS if held[name] != wanted[name]]
                raise StoreError(
                    f"{os.fspath(path)} holds a study of {describe_study(held)} (differs in: {', '.join(differ)}); "
                    "use another --db or the same parameters"
                )
            _add_queries_column(conn)
        except BaseException:
            conn.close()
            raise
        return cls(path, conn, held)

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> SweepStore:
        """Open an existing study database as it is (for a report or a page)."""
        if not os.path.isfile(path):
            raise StoreError(f"no database file {os.fspath(path)!r}")
        conn = _connect(path)
        try:
            if not _tables(conn):
                raise StoreError(f"{os.fspath(path)} is an empty database, not a sweep study")
            params = _check_ours(conn, path)
        except BaseException:
            conn.close()
            raise
        return cls(path, conn, params)

    def __enter__(self) -> SweepStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    def describe(self) -> str:
        return describe_study(self.params)

    # --- screening ---------------------------------------------------------------------------------------------

    def add_screened(self, screened: Iterable[Screened]) -> None:
        with self.conn:
            self.conn.executemany(
                "INSERT OR REPLACE INTO images (image_id, label, predicted, error) VALUES (?, ?, ?, ?)",
                [(s.image_id, s.label, s.predicted, s.error) for s in screened],
            )

    def screened(self) -> dict[str, Screened]:
        cur = self.conn.execute("SELECT image_id, label, predicted, error FROM images")
        return {r[0]: Screened(r[0], r[1], r[2], r[3]) for r in cur}

    # --- rows --------------------------------------------------------------------------------------------------

    def add_rows(self, rows: Iterable[Row]) -> int:
        """Commit rows in one transaction; a pair already stored is kept as it is. Returns how many were new."""
        values = [astuple(r) for r in rows]
        with self.conn:
            before = self.conn.total_changes
            self.conn.executemany(
                f"INSERT OR IGNORE INTO rows ({', '.join(_ROW_COLUMNS)}) VALUES ({', '.join('?' * len(_ROW_COLUMNS))})",
                values,
            )
            return self.conn.total_changes - before

    def done_pairs(self) -> set[tuple[str, int]]:
        return set(self.conn.execute("SELECT image_id, target FROM rows"))

    def count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM rows").fetchone()[0])

    def rows(self) -> list[Row]:
        columns = [c if c != "queries" or _has_queries(self.conn) else "NULL" for c in _ROW_COLUMNS]
        cur = self.conn.execute(f"SELECT {', '.join(columns)} FROM rows ORDER BY image_id, target")
        return [Row(r[0], r[1], r[2], bool(r[3]), r[4], r[5], r[6], r[7], r[8], r[9], r[10]) for r in cur]


def _connect(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """Connect and make sure it is SQLite at all (sqlite3.connect accepts any file until the first query)."""
    try:
        conn = sqlite3.connect(os.fspath(path), timeout=30.0)
    except sqlite3.Error as err:
        raise StoreError(f"cannot open {os.fspath(path)!r} as a database: {err}") from err
    try:
        conn.execute("PRAGMA schema_version").fetchone()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
    except sqlite3.DatabaseError as err:
        conn.close()
        raise StoreError(f"{os.fspath(path)} is not a sweep database ({err})") from err
    return conn


def _create(conn: sqlite3.Connection, params: dict[str, Any]) -> None:
    """Schema, marks and parameters in one transaction: a kill in between leaves an empty file, never half a study."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        if not _tables(conn):  # another process may have created it while we waited for the lock
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                f"INSERT INTO study ({', '.join(STUDY_FIELDS)}, schema_version, created) "
                f"VALUES ({', '.join('?' * (len(STUDY_FIELDS) + 2))})",
                [json.dumps(params[name], sort_keys=True) for name in STUDY_FIELDS] + [SCHEMA_VERSION, time.time()],
            )
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


def _has_queries(conn: sqlite3.Connection) -> bool:
    return any(r[1] == "queries" for r in conn.execute("PRAGMA table_info(rows)"))


def _add_queries_column(conn: sqlite3.Connection) -> None:
    """A file written before `rows.queries` existed gets the column (NULL in its rows) when opened to be written;
    read-only opens (a report, the page, the shipped study) leave the file as it is and read NULL."""
    if not _has_queries(conn):
        with conn:
            conn.execute("ALTER TABLE rows ADD COLUMN queries INTEGER")


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _check_ours(conn: sqlite3.Connection, path: str | os.PathLike[str]) -> dict[str, Any]:
    """The stored study parameters, or StoreError when the file is another program's database."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    if app_id != APPLICATION_ID or not {"study", "images", "rows"} <= _tables(conn):
        raise StoreError(f"{os.fspath(path)} is an SQLite database of another program, not a sweep study")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version != SCHEMA_VERSION:
        raise StoreError(f"{os.fspath(path)} is a sweep database of format {version}; this one reads {SCHEMA_VERSION}")
    row = conn.execute(f"SELECT {', '.join(STUDY_FIELDS)} FROM study").fetchone()
    if row is None:
        raise StoreError(f"{os.fspath(path)} has no study parameters")
    return {name: json.loads(value) for name, value in zip(STUDY_FIELDS, row, strict=True)}
