"""Class rosters: a CSV of students read into accounts, and the password sheet an instructor prints.

Pure: reading and checking a roster, and writing the sheet, touch no database. The CLI
(cli/roster_cmd.py) puts the checked rows into the account store in one transaction and tells the
hub about groups; `mlworkshop user export` writes the same columns back, so export -> import
round-trips.

A roster is checked whole before anything is imported: every bad line is reported (name refused by
the project's one rule, a name twice, a bad group or email), and one bad line imports nothing, so
a class is never half made.
"""

from __future__ import annotations

import csv
import html
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..names import BadUsername, normalize_username

COLUMNS = ("username", "display_name", "group", "email")
EXPORT_COLUMNS = (*COLUMNS, "approved", "admin", "created", "approved_at")
# what a header cell may say for each column (a spreadsheet's own words)
ALIASES = {
    "username": "username",
    "user": "username",
    "login": "username",
    "display_name": "display_name",
    "display name": "display_name",
    "name": "display_name",
    "full name": "display_name",
    "group": "group",
    "class": "group",
    "email": "email",
    "e-mail": "email",
    "mail": "email",
}
_GROUP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class RosterError(ValueError):
    """Every problem of a roster, one line each; str() is the message for the admin."""

    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        super().__init__(
            f"{source}: {len(problems)} bad line(s), nothing was imported:\n  "
            + "\n  ".join(problems)
        )


@dataclass(frozen=True)
class RosterEntry:
    line: int
    username: str
    display_name: str | None
    group: str | None
    email: str | None
    # columns the roster has: a missing column leaves what an account has as it is
    columns: frozenset[str] = field(default_factory=frozenset)


def _header(row: list[str]) -> list[str] | None:
    """The columns a header row names (None when the row is data)."""
    names = [ALIASES.get(cell.strip().lower()) for cell in row]
    return names if "username" in names else None


def _positional(width: int) -> list[str]:
    """Without a header: username,group with two columns, else username,display_name,group,email."""
    return ["username", "group"] if width == 2 else list(COLUMNS[:width])


def parse_roster(
    text: str, source: str = "roster", reserved: frozenset[str] = frozenset()
) -> list[RosterEntry]:
    """The roster's entries, or RosterError naming every bad line. Blank lines and lines starting
    with '#' are skipped; a first row with a `username` cell names the columns."""
    problems: list[str] = []
    entries: list[RosterEntry] = []
    first_line: dict[str, int] = {}
    header: list[str | None] | None = None
    first = True
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        while row and not row[-1].strip():
            row.pop()  # spreadsheets pad rows with empty cells
        if not row or row[0].lstrip().startswith("#"):
            continue
        if first:
            first = False
            header = _header(row)
            if header is not None:
                unknown = {
                    row[i].strip().lower() for i, name in enumerate(header) if name is None
                } - set(EXPORT_COLUMNS)  # export's status columns are read back and skipped
                if unknown:
                    problems.append(
                        f"line {number}: unknown column(s) {', '.join(sorted(unknown))}; "
                        f"the columns are {', '.join(COLUMNS)}"
                    )
                continue
        if header is not None:
            columns = header
        elif len(row) > len(COLUMNS):
            problems.append(
                f"line {number}: {len(row)} columns; at most {len(COLUMNS)} ({', '.join(COLUMNS)})"
            )
            continue
        else:
            columns = _positional(len(row))
        values = {
            name: row[i].strip()
            for i, name in enumerate(columns)
            if name is not None and i < len(row)
        }
        raw = values.get("username", "")
        try:
            name = normalize_username(raw)
        except BadUsername as exc:
            problems.append(f"line {number}: {exc}")
            continue
        if name in reserved:
            problems.append(f"line {number}: the name {name!r} is reserved; choose another")
            continue
        if name in first_line:
            problems.append(
                f"line {number}: {name!r} is on line {first_line[name]} already"
                + (f" (as {raw!r})" if raw != name else "")
            )
            continue
        first_line[name] = number
        display = values.get("display_name") or None
        if display and (len(display) > 255 or _CONTROL.search(display)):
            problems.append(
                f"line {number}: the display name of {name!r} is too long or unprintable"
            )
            continue
        group = values.get("group") or None
        if group and not _GROUP.match(group):
            problems.append(
                f"line {number}: group {group!r} is not allowed (letters, digits, '.', '-', '_', "
                "starting with a letter or digit, at most 64)"
            )
            continue
        email = values.get("email") or None
        if email and not _EMAIL.match(email):
            problems.append(f"line {number}: {email!r} is not an email address")
            continue
        entries.append(
            RosterEntry(
                number,
                name,
                display,
                group,
                email,
                frozenset(c for c in columns if c is not None),
            )
        )
    if problems:
        raise RosterError(source, problems)
    if not entries:
        raise RosterError(
            source, ["no students in it (one line each: username,display_name,group,email)"]
        )
    return entries


def read_roster(path: Path, reserved: frozenset[str] = frozenset()) -> list[RosterEntry]:
    """A roster file (UTF-8, with or without the byte-order mark spreadsheets write)."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RosterError(
            str(path), [f"not UTF-8 text (byte {exc.start}); save it as CSV UTF-8"]
        ) from None
    return parse_roster(text, str(path), reserved)


# --- the password sheet ---------------------------------------------------------------------
@dataclass(frozen=True)
class SheetRow:
    username: str
    display_name: str | None
    group: str | None
    password: str | None  # None: unchanged (the student keeps theirs)


UNCHANGED = "(unchanged: use your current password)"


def _write_private(path: Path, text: str) -> None:
    """Written 0600 from the first byte (a password sheet is never readable by others)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            fd = -1
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
    finally:
        if fd != -1:
            os.close(fd)


def sheet_csv(rows: list[SheetRow], login_url: str) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["username", "display_name", "group", "password", "login"])
    for row in rows:
        writer.writerow(
            [
                row.username,
                row.display_name or "",
                row.group or "",
                row.password or UNCHANGED,
                login_url,
            ]
        )
    return buffer.getvalue()


def sheet_html(rows: list[SheetRow], login_url: str, title: str) -> str:
    """One card per student, to print and cut; nothing but inline CSS (prints offline)."""
    e = html.escape
    cards = "\n".join(
        f'<div class="card"><div class="who">{e(row.display_name or row.username)}'
        f"{' · ' + e(row.group) if row.group else ''}</div>"
        f"<div>Sign in at <b>{e(login_url)}</b></div>"
        f"<div>Username: <code>{e(row.username)}</code></div>"
        f"<div>Password: <code>{e(row.password) if row.password else e(UNCHANGED)}</code></div>"
        '<div class="note">Change it after your first sign-in (Password, in the hub\'s menu).</div>'
        "</div>"
        for row in rows
    )
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{e(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1cm; }}
.card {{ border: 1px dashed #888; padding: 0.4cm; margin: 0 0 0.3cm 0; break-inside: avoid; }}
.who {{ font-weight: bold; margin-bottom: 0.2cm; }}
code {{ font-size: 1.15em; }}
.note {{ color: #555; font-size: 0.85em; margin-top: 0.2cm; }}
@media print {{ h1 {{ display: none; }} }}
</style></head>
<body><h1>{e(title)}</h1>
{cards}
</body></html>
"""


def write_sheet(base: Path, rows: list[SheetRow], login_url: str, title: str) -> tuple[Path, Path]:
    """base.csv and base.html, both 0600, in a folder made 0700 if new."""
    base.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    csv_path, html_path = base.with_suffix(".csv"), base.with_suffix(".html")
    _write_private(csv_path, sheet_csv(rows, login_url))
    _write_private(html_path, sheet_html(rows, login_url, title))
    return csv_path, html_path


def export_csv(accounts, admins: frozenset[str] = frozenset()) -> str:
    """Every account in the roster's columns (then its status): `user import` reads it back."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    for a in accounts:
        writer.writerow(
            [
                a.username,
                a.display_name or "",
                a.roster_group or "",
                a.email or "",
                a.approved,
                a.is_admin or a.username in admins,
                a.created.isoformat(timespec="seconds"),
                a.approved_at.isoformat(timespec="seconds") if a.approved_at else "",
            ]
        )
    return buffer.getvalue()
