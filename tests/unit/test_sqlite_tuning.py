"""The hub process's SQLite settings: WAL everywhere, no fsync per commit for JupyterHub's own
state, a full fsync for what must survive a power cut (accounts, usage records)."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
from sqlalchemy import create_engine, text
from mlworkshop.hub.sqlite_tuning import use_wal_for_sqlite
from mlworkshop.accounts.store import AccountStore
from mlworkshop.usage.store import make_engine as usage_engine

db, usage_db = sys.argv[1], sys.argv[2]
use_wal_for_sqlite()
use_wal_for_sqlite()  # idempotent
def pragmas(engine):
    with engine.connect() as conn:
        return [conn.execute(text("PRAGMA journal_mode")).scalar(), conn.execute(text("PRAGMA synchronous")).scalar()]
print(json.dumps({
    "jupyterhub": pragmas(create_engine("sqlite:///" + db)),  # as JupyterHub opens its database
    "accounts": pragmas(AccountStore("sqlite:///" + db).engine),
    "usage": pragmas(usage_engine("sqlite:///" + usage_db)),
}))
"""


def test_jupyterhub_state_skips_fsync_but_accounts_and_usage_do_not(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "hub.sqlite"), str(tmp_path / "usage.sqlite")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = json.loads(out)
    normal, full = 1, 2
    assert result["jupyterhub"] == ["wal", normal]
    assert result["accounts"] == ["wal", full]
    assert result["usage"] == ["wal", full]
