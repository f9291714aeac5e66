from __future__ import annotations

import os
import pwd
import secrets
import subprocess
from pathlib import Path

import pytest

from mlworkshop.config import set_key
from mlworkshop.site import Site, init_site

from .clirun import free_port


@pytest.fixture
def site(tmp_path) -> Path:
    """An initialised site (made in-process: `init` itself is tested in test_cli_site.py) whose
    system-account prefix is throwaway and whose hub API port has nothing listening."""
    root = tmp_path / "site"
    init_site(Site(root))
    prefix = "tc" + secrets.token_hex(2) + "-"
    set_key(root, "spawner.local.user_prefix", prefix)
    set_key(root, "hub.internal_port", str(free_port()))
    yield root
    if os.geteuid() == 0:
        for entry in pwd.getpwall():
            if entry.pw_name.startswith(prefix):
                subprocess.run(["userdel", entry.pw_name], capture_output=True)


@pytest.fixture(autouse=True)
def cheap_hashes_in_this_process(cheap_password_hashes):
    """Real Argon2id at cost 4 in this process (tests/conftest.py)."""
