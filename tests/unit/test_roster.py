"""Class rosters (accounts/roster.py): reading and checking a roster, the password sheet, export."""

from __future__ import annotations

import csv
import io
import stat

import pytest

from mlworkshop.accounts.roster import (
    RosterError,
    SheetRow,
    export_csv,
    parse_roster,
    read_roster,
    write_sheet,
)


def test_a_roster_with_a_header_in_any_order():
    entries = parse_roster(
        "Email,Username,Group,Display Name\nli@uni.edu,Li_Wei,ml101,Li Wei\n,bob,ml102,\n"
    )
    assert [(e.username, e.display_name, e.group, e.email) for e in entries] == [
        ("li_wei", "Li Wei", "ml101", "li@uni.edu"),
        ("bob", None, "ml102", None),
    ]
    assert entries[0].columns == {"username", "display_name", "group", "email"}


def test_a_roster_without_a_header():
    entries = parse_roster(
        "# class of 2026\nalice,ml101\n\nbob,Bob B,ml101\ncarol,,ml102,c@x.org\n"
    )
    assert [(e.line, e.username, e.display_name, e.group, e.email) for e in entries] == [
        (2, "alice", None, "ml101", None),
        (4, "bob", "Bob B", "ml101", None),
        (5, "carol", None, "ml102", "c@x.org"),
    ]
    assert entries[0].columns == {"username", "group"}  # display name and email left as they are


def test_every_bad_line_is_reported():
    roster = (
        "username,display_name,group,email\n"
        "alice,Alice,ml101,alice@uni.edu\n"
        "../etc,,ml101,\n"  # 3: refused by the name rule
        "ALICE,,ml101,\n"  # 4: alice again
        "bob,,ml 101,\n"  # 5: bad group
        "carol,,ml101,not-an-address\n"  # 6: bad email
        "hub,,ml101,\n"  # 7: reserved
        "dora,,ml101,\n"
    )
    with pytest.raises(RosterError) as caught:
        parse_roster(roster, "class.csv", frozenset({"hub"}))
    problems = caught.value.problems
    assert [p.split(":")[0] for p in problems] == [
        "line 3",
        "line 4",
        "line 5",
        "line 6",
        "line 7",
    ], problems
    assert "'alice' is on line 2 already (as 'ALICE')" in problems[1]
    assert "group 'ml 101' is not allowed" in problems[2]
    assert "'not-an-address' is not an email address" in problems[3]
    assert "reserved" in problems[4]
    assert str(caught.value).startswith("class.csv: 5 bad line(s), nothing was imported")


def test_unknown_columns_too_many_columns_and_an_empty_roster():
    with pytest.raises(RosterError, match="unknown column.*phone"):
        parse_roster("username,phone\nalice,123\n")
    with pytest.raises(RosterError, match="5 columns; at most 4"):
        parse_roster("alice,A,ml101,a@x.org,extra\n")
    with pytest.raises(RosterError, match="no students"):
        parse_roster("username,group\n# nobody yet\n")


def test_a_file_from_a_spreadsheet_and_one_that_is_not_utf8(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_bytes("\ufeffusername,group\r\nzhang_san,ml101\r\n".encode())
    assert [e.username for e in read_roster(path)] == ["zhang_san"]
    path.write_bytes("username,display_name\nli,\xc0\xc1\n".encode("latin-1"))
    with pytest.raises(RosterError, match="not UTF-8"):
        read_roster(path)


def test_the_sheet_is_private_and_escaped(tmp_path):
    rows = [
        SheetRow("alice", "<b>Alice</b>", "ml101", "pw-Alice-123"),
        SheetRow("bob", None, None, None),
    ]
    csv_path, html_path = write_sheet(
        tmp_path / "sheets" / "class-passwords", rows, "http://hub:8000/hub/login", "Accounts"
    )
    for path in (csv_path, html_path, csv_path.parent):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, (path, oct(mode))
    text = html_path.read_text()
    assert "&lt;b&gt;Alice&lt;/b&gt;" in text and "<b>Alice</b>" not in text
    assert "pw-Alice-123" in text and "unchanged" in text
    table = list(csv.reader(io.StringIO(csv_path.read_text())))
    assert table[1][:4] == ["alice", "<b>Alice</b>", "ml101", "pw-Alice-123"]
    assert table[2][3].startswith("(unchanged")


def test_export_reads_back_as_the_same_roster():
    import datetime as dt

    from mlworkshop.accounts.store import AccountInfo

    when = dt.datetime(2026, 12, 1, 9, 0)
    accounts = [
        AccountInfo("alice", True, False, when, when, True, "Alice A", "a@uni.edu", "ml101"),
        AccountInfo("teacher", True, True, when, when, True, None, None, None),
    ]
    entries = parse_roster(export_csv(accounts))
    assert [(e.username, e.display_name, e.group, e.email) for e in entries] == [
        ("alice", "Alice A", "ml101", "a@uni.edu"),
        ("teacher", None, None, None),
    ]
