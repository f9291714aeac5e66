"""mlworkshop.db's engines: what every store's SQLite connection does when it opens."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from mlworkshop.db import SQLiteMode, make_engine, switch_to_wal


def test_connections_opening_a_new_file_at_once_all_switch_it_to_wal(tmp_path):
    """Two connections asking for the lock the WAL switch needs at the same moment: SQLite answers
    one "database is locked" without waiting (CI saw a process of four fail to open its
    database). Before switch_to_wal retried, ~1 round in 10 failed here (8 threads)."""
    failures = []

    def open_one(url, start):
        engine = make_engine(url, SQLiteMode(wal=True))
        start.wait()
        try:
            with engine.connect():
                pass
        except Exception as error:  # noqa: BLE001 -- any failure to open is the defect
            failures.append(f"{url}: {error}")
        finally:
            engine.dispose()

    for round_ in range(150):
        url, start = f"sqlite:///{tmp_path / f'r{round_}.sqlite'}", threading.Barrier(8)
        threads = [threading.Thread(target=open_one, args=(url, start)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []
    with sqlite3.connect(tmp_path / "r0.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


def test_a_lock_held_past_the_timeout_is_still_reported(tmp_path):
    path = tmp_path / "held.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(path, timeout=0)
    cursor = CountingCursor(other.cursor())
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        switch_to_wal(cursor, timeout=0.3)
    assert cursor.calls > 1  # it retried before giving up
    holder.execute("COMMIT")
    switch_to_wal(other.cursor(), timeout=0.3)
    assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    holder.close()
    other.close()


def test_other_errors_are_not_retried(tmp_path):
    conn = sqlite3.connect(tmp_path / "x.sqlite")
    cursor = CountingCursor(conn.cursor())
    conn.close()
    with pytest.raises(sqlite3.ProgrammingError):  # a closed database: raised at once
        switch_to_wal(cursor, timeout=5)
    assert cursor.calls == 1


class CountingCursor:
    """A real sqlite3 cursor that counts the statements run on it."""

    def __init__(self, cursor):
        self.cursor, self.calls = cursor, 0

    def execute(self, sql):
        self.calls += 1
        return self.cursor.execute(sql)
