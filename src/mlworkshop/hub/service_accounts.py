"""The unprivileged system accounts a root hub runs its helpers as: the proxy, the idle culler and
the usage service (a web app every student reaches) need no root, so they do not get it.

One account each, so one compromised helper cannot read another's secrets from /proc/<pid>/environ
(the proxy's auth token, the culler's API token). The names start with '_' (the Debian/OpenBSD
convention for system accounts), which no student account can: those are <prefix><name> and the
prefix starts with a letter, so a student named "proxy" can never be handed the proxy's uid.

The accounts are made when a root hub starts (`mlworkshop up`), like students' accounts: system
uids, no home, no login shell, a group of their own and no other group (the usage account joins
the configured device groups, so it can read per-process GPU use where devices are not world-open).
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

PROXY_ACCOUNT = "_mlw-proxy"
CULLER_ACCOUNT = "_mlw-culler"
USAGE_ACCOUNT = "_mlw-usage"
NO_HOME = "/nonexistent"


class ServiceAccountError(RuntimeError):
    """str() says what failed and what a lab admin can do about it."""


@dataclass(frozen=True)
class ServiceAccount:
    name: str
    uid: int
    gid: int


def isolating() -> bool:
    """Helpers run as accounts of their own only under a root hub (anyone else cannot switch)."""
    return os.geteuid() == 0


def _nologin() -> str:
    for path in ("/usr/sbin/nologin", "/sbin/nologin"):
        if os.path.exists(path):
            return path
    return "/bin/false"


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True)


def ensure_service_account(name: str, groups: Iterable[str] = ()) -> ServiceAccount:
    """The system account `name`, made if missing; it joins those of `groups` this machine has."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        result = _run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--home-dir",
                NO_HOME,
                "--shell",
                _nologin(),
                "--user-group",
                "--comment",
                "mlworkshop service",
                name,
            ]
        )
        try:  # another hub on this machine may have made it at the same moment: that is fine too
            entry = pwd.getpwnam(name)
        except KeyError:
            raise ServiceAccountError(
                f"Could not create the system account {name} ({result.stderr.strip() or result.returncode}). "
                f"Create it by hand: `useradd --system --no-create-home --shell {_nologin()} --user-group {name}`."
            ) from None
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise ServiceAccountError(
            f"The account {name} has uid {entry.pw_uid} and gid {entry.pw_gid}: a hub helper must run as an "
            f"unprivileged account of its own. Remove it (`userdel {name}`) and start the hub again."
        )
    for group in groups:
        try:
            members = grp.getgrnam(group).gr_mem
        except KeyError:
            continue  # no such device group here
        if name not in members:
            result = _run(["usermod", "--append", "--groups", group, name])
            if result.returncode != 0:
                raise ServiceAccountError(
                    f"Could not add {name} to the group {group}: {result.stderr.strip()}"
                )
    return ServiceAccount(name, entry.pw_uid, entry.pw_gid)


def setpriv_command(account: str, command: list[str]) -> list[str]:
    """`command` run as `account` (its own group, no other), keeping only the capability to bind
    ports below 1024 (a root hub's proxy API port is one, and the public port may be 80/443)."""
    setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
    return [
        setpriv,
        f"--reuid={account}",
        f"--regid={account}",
        "--clear-groups",
        "--inh-caps=+net_bind_service",
        "--ambient-caps=+net_bind_service",
        "--bounding-set=-all,+net_bind_service",
        "--",
        *command,
    ]


def prepare_helpers(site, cfg) -> list[str]:
    """Before a hub starts (`mlworkshop up`): the helpers' accounts when root, and the usage
    service's folder, owned by its account. Raises ServiceAccountError with what to do."""
    from .usage_service import runs_as_own_account
    from .usage_storage import UsageStorageError, prepare_usage_storage

    owner = None
    if isolating():
        ensure_service_account(PROXY_ACCOUNT)
        if cfg.culler.enabled:
            ensure_service_account(CULLER_ACCOUNT)
        if cfg.usage.enabled and runs_as_own_account(cfg):
            device_groups = sorted(
                {group for groups in cfg.accelerators.device_groups.values() for group in groups}
            )
            usage = ensure_service_account(USAGE_ACCOUNT, device_groups)
            owner = (usage.uid, usage.gid)
    if not cfg.usage.enabled:
        return []
    try:
        return prepare_usage_storage(site, cfg, owner)
    except UsageStorageError as exc:
        raise ServiceAccountError(str(exc)) from None
