"""The class poll: a teacher asks one question, students answer from their own sessions, on SQLite.

The database is a file in the runs folder (``polls.sqlite3``; ``RESNET_EXPLORER_POLL_DB`` moves it), in WAL mode so
that readers never wait on the writer, and every replica behind ``make serve`` shares it (they share the runs
folder). SQLite is the embedded default: there is no server to start.

* A poll is opened for one question with a number of choices; opening it returns the poll's id (the students'
  link, ``poll=<id>``) and a secret key (the teacher's link, ``poll=<id>&key=<key>``). Only the key closes,
  reopens, resets and exports the poll; the database keeps the key's SHA-256, never the key.
* An answer row is keyed by poll, question and a random session id and stores the choice index only. A session
  may answer once and change its answer (the row is replaced); at most ``ANSWERS_PER_MINUTE`` answers a minute per
  session (the times of its recent answers are kept, nothing else).
* Polls expire ``POLL_LIFETIME`` seconds after they were opened; expired polls and their rows are deleted on the
  next write.

Every failure of the database (a corrupt file, a read-only or missing folder, a locked database that stays
locked) is a ``PollError`` with one sentence; the page shows it and works on without the poll.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import os
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .settings import runs_dir

POLL_DB_ENV = "RESNET_EXPLORER_POLL_DB"
POLL_LIFETIME = 24 * 3600
ANSWERS_PER_MINUTE = 10
MAX_CHOICES = 8
BUSY_TIMEOUT_S = 10.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS polls (
    poll_id TEXT PRIMARY KEY,
    question_id TEXT NOT NULL,
    choices INTEGER NOT NULL,
    key_hash TEXT NOT NULL,
    opened REAL NOT NULL,
    closed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS answers (
    poll_id TEXT NOT NULL REFERENCES polls(poll_id) ON DELETE CASCADE,
    question_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    choice INTEGER NOT NULL,
    PRIMARY KEY (poll_id, question_id, session_id)
);
CREATE TABLE IF NOT EXISTS recent_answers (
    poll_id TEXT NOT NULL REFERENCES polls(poll_id) ON DELETE CASCADE,
    session_id TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS recent_by_session ON recent_answers (poll_id, session_id, at);
"""


class PollError(RuntimeError):
    """The poll cannot do what was asked; the message is one sentence for the page."""


@dataclass(frozen=True)
class Poll:
    """One poll as the database holds it (the key's hash left out)."""

    poll_id: str
    question_id: str
    choices: int
    opened: float
    closed: bool

    @property
    def expires(self) -> float:
        return self.opened + POLL_LIFETIME


def poll_db_path() -> Path:
    """Where the polls live: ``$RESNET_EXPLORER_POLL_DB``, else ``polls.sqlite3`` in the runs folder."""
    env = os.environ.get(POLL_DB_ENV, "").strip()
    return Path(env).expanduser() if env else runs_dir() / "polls.sqlite3"


def new_session_id() -> str:
    """A random id for one browser session's answers (nothing about the student)."""
    return secrets.token_urlsafe(12)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()


class PollStore:
    """The polls in one SQLite file; every call opens its own connection (safe across threads and processes)."""

    def __init__(self, path: str | Path | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path) if path is not None else poll_db_path()
        self.clock = clock

    # ------------------------------------------------------------------------------------------ plumbing
    def _failure(self, error: Exception) -> PollError:
        text = str(error).lower()
        where = f"The class poll's database ({self.path.name})"
        if "not a database" in text or "malformed" in text or "corrupt" in text:
            return PollError(f"{where} is damaged, so the poll is off; the page works without it (move the file "
                             f"away, or set {POLL_DB_ENV}, to start a new one).")
        if "readonly" in text or "read-only" in text or "unable to open" in text or "permission" in text:
            return PollError(f"{where} cannot be written here, so the poll is off; the page works without it (make "
                             f"the runs folder writable, or set {POLL_DB_ENV} to a writable file).")
        if "locked" in text or "busy" in text:
            return PollError(f"{where} stayed busy for {BUSY_TIMEOUT_S:.0f} s, so this answer was not saved; "
                             "send it again.")
        return PollError(f"{where} could not be used ({type(error).__name__}), so the poll is off; the page "
                         "works without it.")

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise self._failure(sqlite3.OperationalError("unable to open: " + str(error))) from None
        try:
            connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            connection.execute("PRAGMA foreign_keys=ON")
            connection.execute("PRAGMA synchronous=NORMAL")  # WAL's recommended level: no fsync per answer
            if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
            if connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'recent_by_session'").fetchone() is None:
                # Created once, in a write transaction that waits its turn (another process may be creating it).
                connection.execute("BEGIN IMMEDIATE")
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    connection.execute(statement)
                connection.execute("COMMIT")
        except sqlite3.Error as error:
            raise self._failure(error) from None
        return connection

    def _run(self, work: Callable[[sqlite3.Connection], object], *, write: bool) -> object:
        connection = self._connect()
        try:
            if write:
                connection.execute("BEGIN IMMEDIATE")
            try:
                result = work(connection)
            except BaseException:
                if write:
                    connection.execute("ROLLBACK")
                raise
            if write:
                connection.execute("COMMIT")
            return result
        except sqlite3.Error as error:
            raise self._failure(error) from None
        finally:
            connection.close()

    def _expire(self, connection: sqlite3.Connection) -> None:
        connection.execute("DELETE FROM polls WHERE opened < ?", (self.clock() - POLL_LIFETIME,))

    @staticmethod
    def _poll(connection: sqlite3.Connection, poll_id: str) -> tuple[Poll, str] | None:
        row = connection.execute("SELECT poll_id, question_id, choices, opened, closed, key_hash FROM polls "
                                 "WHERE poll_id = ?", (poll_id,)).fetchone()
        if row is None:
            return None
        return Poll(row[0], row[1], int(row[2]), float(row[3]), bool(row[4])), row[5]

    def _teacher(self, connection: sqlite3.Connection, poll_id: str, key: str) -> Poll:
        found = self._poll(connection, poll_id)
        if found is None or found[0].expires < self.clock():
            raise PollError("This poll does not exist or has expired (polls last 24 hours); open a new one.")
        poll, key_hash = found
        if not key or not hmac.compare_digest(key_hash, _hash(key)):
            raise PollError("Only the teacher's link (with its key) can close, reset or export this poll.")
        return poll

    # ------------------------------------------------------------------------------------------ the poll
    def open_poll(self, question_id: str, choices: int) -> tuple[str, str]:
        """A new poll on ``question_id`` with ``choices`` answers: (poll id for the students, key for the teacher)."""
        if not 2 <= int(choices) <= MAX_CHOICES:
            raise PollError(f"A poll has 2 to {MAX_CHOICES} choices.")
        poll_id, key = secrets.token_urlsafe(6), secrets.token_urlsafe(18)

        def work(connection: sqlite3.Connection) -> None:
            self._expire(connection)
            connection.execute("INSERT INTO polls (poll_id, question_id, choices, key_hash, opened) VALUES "
                               "(?, ?, ?, ?, ?)", (poll_id, question_id, int(choices), _hash(key), self.clock()))

        self._run(work, write=True)
        return poll_id, key

    def poll(self, poll_id: str) -> Poll | None:
        """The poll, or None when there is none (or it has expired)."""
        found = self._run(lambda c: self._poll(c, poll_id), write=False)
        if found is None or found[0].expires < self.clock():
            return None
        return found[0]

    def answer(self, poll_id: str, session_id: str, choice: int) -> None:
        """Record (or change) this session's answer; refused when the poll is closed, gone, or answered too often."""
        now = self.clock()

        def work(connection: sqlite3.Connection) -> None:
            self._expire(connection)
            found = self._poll(connection, poll_id)
            if found is None or found[0].expires < now:
                raise PollError("This poll does not exist or has expired; ask your teacher for the new link.")
            poll = found[0]
            if poll.closed:
                raise PollError("This poll is closed: your teacher is showing the answers.")
            if not 0 <= int(choice) < poll.choices:
                raise PollError(f"An answer is one of the poll's {poll.choices} choices.")
            (recent,) = connection.execute(
                "SELECT COUNT(*) FROM recent_answers WHERE poll_id = ? AND session_id = ? AND at > ?",
                (poll_id, session_id, now - 60)).fetchone()
            if recent >= ANSWERS_PER_MINUTE:
                raise PollError(f"At most {ANSWERS_PER_MINUTE} answers a minute: wait a moment, then answer again.")
            connection.execute("DELETE FROM recent_answers WHERE poll_id = ? AND session_id = ? AND at <= ?",
                               (poll_id, session_id, now - 60))
            connection.execute("INSERT INTO recent_answers (poll_id, session_id, at) VALUES (?, ?, ?)",
                               (poll_id, session_id, now))
            connection.execute("INSERT OR REPLACE INTO answers (poll_id, question_id, session_id, choice) VALUES "
                               "(?, ?, ?, ?)", (poll_id, poll.question_id, session_id, int(choice)))

        self._run(work, write=True)

    def my_answer(self, poll_id: str, session_id: str) -> int | None:
        row = self._run(lambda c: c.execute("SELECT choice FROM answers WHERE poll_id = ? AND session_id = ?",
                                            (poll_id, session_id)).fetchone(), write=False)
        return None if row is None else int(row[0])

    def tally(self, poll_id: str) -> list[int]:
        """How many sessions chose each choice (zeros for a poll that is gone)."""
        def work(connection: sqlite3.Connection) -> list[int]:
            found = self._poll(connection, poll_id)
            if found is None:
                return []
            counts = [0] * found[0].choices
            for choice, count in connection.execute(
                    "SELECT choice, COUNT(*) FROM answers WHERE poll_id = ? GROUP BY choice", (poll_id,)):
                counts[int(choice)] = int(count)
            return counts

        return self._run(work, write=False)

    # ------------------------------------------------------------------------------------------ the teacher's
    def is_teacher(self, poll_id: str, key: str) -> bool:
        """Whether ``key`` is this poll's teacher key (the teacher's view opens only with it)."""
        found = self._run(lambda c: self._poll(c, poll_id), write=False)
        return found is not None and bool(key) and hmac.compare_digest(found[1], _hash(key))

    def close(self, poll_id: str, key: str, closed: bool = True) -> None:
        """Close the poll (no more answers), or open it again with ``closed=False``: the teacher's key only."""
        def work(connection: sqlite3.Connection) -> None:
            self._teacher(connection, poll_id, key)
            connection.execute("UPDATE polls SET closed = ? WHERE poll_id = ?", (int(closed), poll_id))

        self._run(work, write=True)

    def reset(self, poll_id: str, key: str) -> None:
        """Delete every answer (the poll stays open): the teacher's key only."""
        def work(connection: sqlite3.Connection) -> None:
            self._teacher(connection, poll_id, key)
            connection.execute("DELETE FROM answers WHERE poll_id = ?", (poll_id,))
            connection.execute("DELETE FROM recent_answers WHERE poll_id = ?", (poll_id,))

        self._run(work, write=True)

    def export_csv(self, poll_id: str, key: str) -> str:
        """Every answer as CSV (question, session, choice): the teacher's key only."""
        def work(connection: sqlite3.Connection) -> str:
            self._teacher(connection, poll_id, key)
            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerow(["poll", "question", "session", "choice"])
            for row in connection.execute("SELECT poll_id, question_id, session_id, choice FROM answers WHERE "
                                          "poll_id = ? ORDER BY session_id", (poll_id,)):
                writer.writerow(row)
            return out.getvalue()

        return self._run(work, write=False)

    def expire(self) -> int:
        """Delete the polls older than ``POLL_LIFETIME`` (and their rows); how many were deleted."""
        def work(connection: sqlite3.Connection) -> int:
            cursor = connection.execute("DELETE FROM polls WHERE opened < ?", (self.clock() - POLL_LIFETIME,))
            return cursor.rowcount

        return int(self._run(work, write=True))


__all__ = ["ANSWERS_PER_MINUTE", "MAX_CHOICES", "POLL_DB_ENV", "POLL_LIFETIME", "Poll", "PollError", "PollStore",
           "new_session_id", "poll_db_path"]
