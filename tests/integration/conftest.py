from __future__ import annotations

import grp
import os
import pwd
import secrets
import subprocess

import pytest

from .hubctl import Hub, make_site_dir, remove_accounts, remove_site


def _remove_accounts(prefix: str, group: str) -> None:
    """The test accounts (all processes killed first) and the admin group."""
    remove_accounts([entry.pw_name for entry in pwd.getpwall() if entry.pw_name.startswith(prefix)])
    try:
        grp.getgrnam(group)
        subprocess.run(["groupdel", group], capture_output=True)
    except KeyError:
        pass


@pytest.fixture
def make_hub():
    """Factory for real hubs on free ports, each with its own site and system-account prefix."""
    hubs: list[Hub] = []

    def factory(**settings) -> Hub:
        tag = "t" + secrets.token_hex(2)
        hub = Hub(make_site_dir())
        hub.prefix = f"{tag}-"
        hub.admin_group = f"{tag}-adm"
        hub.configure(
            **{
                "spawner.local.user_prefix": hub.prefix,
                "spawner.local.admin_group": hub.admin_group,
                **settings,
            }
        )
        hubs.append(hub)
        return hub

    yield factory
    for hub in hubs:
        try:
            hub.stop()
        finally:  # a hub that would not stop still leaves no accounts, servers or site behind
            tail = None if os.environ.get("MLW_FULL_HUB_LOG") else -6000
            print(
                f"--- hub log ({hub.site}) ---\n{hub.log()[tail:] if tail else hub.log()}"
            )  # shown when a test fails
            if os.geteuid() == 0:
                _remove_accounts(hub.prefix, hub.admin_group)
            remove_site(hub.site)
