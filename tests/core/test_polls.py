"""The class poll's store on a real SQLite file: answers once and changes, the rate limit, expiry, the teacher's
key, two processes writing at once, and a damaged or unwritable database as one sentence."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from resnet_core.polls import (
    ANSWERS_PER_MINUTE,
    POLL_DB_ENV,
    POLL_LIFETIME,
    PollError,
    PollStore,
    poll_db_path,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> PollStore:
    return PollStore(tmp_path / "polls.sqlite3", clock=Clock())


def test_a_session_answers_once_and_may_change_its_answer(store):
    poll_id, key = store.open_poll("race.lower_loss", 2)
    store.answer(poll_id, "s1", 0)
    store.answer(poll_id, "s2", 1)
    store.answer(poll_id, "s1", 1)  # changed its mind: one row, the new choice
    assert store.tally(poll_id) == [0, 2]
    assert store.my_answer(poll_id, "s1") == 1 and store.my_answer(poll_id, "s3") is None
    with sqlite3.connect(store.path) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(answers)")]
        assert columns == ["poll_id", "question_id", "session_id", "choice"]  # the choice index only
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(PollError, match="one of the poll's 2 choices"):
        store.answer(poll_id, "s4", 2)


def test_at_most_ten_answers_a_minute_per_session(store):
    poll_id, _ = store.open_poll("gradient_flow.largest", 3)
    for i in range(ANSWERS_PER_MINUTE):
        store.answer(poll_id, "busy", i % 3)
    with pytest.raises(PollError, match="At most 10 answers a minute"):
        store.answer(poll_id, "busy", 0)
    store.answer(poll_id, "calm", 2)  # another session is not slowed
    store.clock.now += 61
    store.answer(poll_id, "busy", 1)  # a minute later it may answer again
    assert sum(store.tally(poll_id)) == 2


def test_only_the_teachers_key_closes_resets_and_exports(store):
    poll_id, key = store.open_poll("lesson.1", 3)
    store.answer(poll_id, "s1", 2)
    for wrong in ("", "guess", key[:-1]):
        with pytest.raises(PollError, match="Only the teacher's link"):
            store.close(poll_id, wrong)
        with pytest.raises(PollError, match="Only the teacher's link"):
            store.export_csv(poll_id, wrong)
        with pytest.raises(PollError, match="Only the teacher's link"):
            store.reset(poll_id, wrong)
    assert store.export_csv(poll_id, key).splitlines() == ["poll,question,session,choice",
                                                           f"{poll_id},lesson.1,s1,2"]
    store.close(poll_id, key)
    with pytest.raises(PollError, match="This poll is closed"):
        store.answer(poll_id, "s2", 0)
    store.close(poll_id, key, closed=False)
    store.answer(poll_id, "s2", 0)
    store.reset(poll_id, key)
    assert store.tally(poll_id) == [0, 0, 0]
    with sqlite3.connect(store.path) as db:  # the key itself is never stored
        assert key not in str(db.execute("SELECT * FROM polls").fetchall())


def test_polls_expire_after_a_day_and_their_rows_are_deleted(store):
    old, _ = store.open_poll("lesson.2", 2)
    store.answer(old, "s1", 1)
    store.clock.now += POLL_LIFETIME + 1
    assert store.poll(old) is None
    with pytest.raises(PollError, match="does not exist or has expired"):
        store.answer(old, "s2", 0)
    fresh, _ = store.open_poll("lesson.3", 2)  # opening a poll deletes the expired ones
    with sqlite3.connect(store.path) as db:
        assert db.execute("SELECT poll_id FROM polls").fetchall() == [(fresh,)]
        assert db.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM recent_answers").fetchone()[0] == 0


WRITER = """
import sys
from resnet_core.polls import PollStore
path, poll_id, prefix, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
store = PollStore(path)
for i in range(count):
    store.answer(poll_id, f"{prefix}{i}", i % 2)
"""


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    path = tmp_path / "shared.sqlite3"
    poll_id, _ = PollStore(path).open_poll("race.lower_loss", 2)
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), poll_id, prefix, "100"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for prefix in "ab"]
    outputs = [writer.communicate(timeout=600)[0] for writer in writers]
    assert [w.returncode for w in writers] == [0, 0], outputs
    assert PollStore(path).tally(poll_id) == [100, 100]


def test_a_damaged_database_is_one_sentence(tmp_path):
    path = tmp_path / "polls.sqlite3"
    path.write_bytes(b"this is not a database, just bytes " * 200)
    with pytest.raises(PollError) as caught:
        PollStore(path).open_poll("lesson.1", 2)
    message = str(caught.value)
    assert message.startswith("The class poll's database (polls.sqlite3) is damaged, so the poll is off; the page "
                              "works without it") and message.count(".") == 2  # one sentence (its file name's dot)
    assert POLL_DB_ENV in message


def test_a_database_it_cannot_write_is_one_sentence():
    # /proc refuses new files even to root (a read-only mode bit would not stop root).
    with pytest.raises(PollError, match=r"cannot be written here, so the poll is off; the page works without it"):
        PollStore("/proc/resnet-explorer/polls.sqlite3").open_poll("lesson.1", 2)


def test_the_database_lives_in_the_runs_folder_unless_moved(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv(POLL_DB_ENV, raising=False)
    assert poll_db_path() == tmp_path / "runs" / "polls.sqlite3"
    monkeypatch.setenv(POLL_DB_ENV, str(tmp_path / "elsewhere.sqlite3"))
    assert poll_db_path() == tmp_path / "elsewhere.sqlite3"
