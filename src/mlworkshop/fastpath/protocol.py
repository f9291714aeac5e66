"""What travels on the fast path's two sockets, typed, and the names both sides agree on.

    <site>/state/forkserver.sock  root only (0600). The hub sends a ForkRequest; the fork server
                                  forks first, and only the child reads it and answers {"pid": N}
                                  (or {"error": why}).
    <site>/run/kernels.sock       any local process (0666); the child checks who connected
                                  (fastpath.kernels). A user's server sends a KernelRequest with
                                  its stdout and stderr as descriptors; the answer is {"pid": N},
                                  {"cold": why} (start it as a new process) or {"error": why},
                                  and {"exit": code} when the kernel ends.

The hub builds a ForkRequest (hub/spawner.py) and the fork server rebuilds it from what it read
(from_message): the same type checks the same fields on both sides, so a request the hub could
not have meant is refused with a sentence instead of failing halfway through becoming a user.

Stdlib only: the fork server imports this before it forks (mlworkshop.fastpath says why).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields

SERVER_MODULE = "mlworkshop.fastpath.server"  # `python -m` of the fork server (hub: client.py)
SINGLEUSER_MODULE = "mlworkshop.fastpath.singleuser"  # `python -m` of every user's server
SERVER_SOCKET = "forkserver.sock"  # in <site>/state/
SOCKET_ENV = "MLW_KERNEL_FORK_SOCKET"  # a user's server finds the kernel socket here
PROVISIONER_NAME = "mlworkshop-fork"  # the jupyter_client provisioner (pyproject.toml entry point)

# Seconds a kernel's peer has to send its whole request: the provisioner sends it with its connect.
KERNEL_REQUEST_TIMEOUT = 10.0
# The hub writes its request as soon as it connects; this only frees a child whose hub went away
# halfway through (the socket is root's, so nobody else can hold one open).
SERVER_REQUEST_TIMEOUT = 60.0


class RequestError(ValueError):
    """A request that cannot be what its sender meant; str() names the field and why."""


def _check_str_list(name: str, value, allow_empty: bool = True) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise RequestError(f"{name} must be a list of strings")
    if not value and not allow_empty:
        raise RequestError(f"{name} must not be empty")
    return list(value)


def _check_env(value) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise RequestError("env must map strings to strings")
    if any(not k or "=" in k or "\0" in k or "\0" in v for k, v in value.items()):
        raise RequestError("env has a name or value no environment can hold")
    return dict(value)


def _check_path(name: str, value) -> str:
    if not isinstance(value, str) or not os.path.isabs(value) or "\0" in value:
        raise RequestError(f"{name} must be an absolute path, not {value!r}")
    return value


def _check_int(name: str, value, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise RequestError(f"{name} must be a whole number from {low} to {high}, not {value!r}")
    return value


def _known_fields(cls, message: dict) -> dict:
    if not isinstance(message, dict):
        raise RequestError("a request is a JSON object")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(message) - names)
    if unknown:
        raise RequestError(f"unknown field(s) {', '.join(unknown)} in a {cls.__name__}")
    return message


MAX_ID = 2**32 - 2  # uid_t/gid_t; 2**32 - 1 is (uid_t)-1, "unchanged"


@dataclass
class ForkRequest:
    """A user's server, as the hub asks the fork server for it.

    uid None (with gid None and no groups): the hub is not root and the server stays the hub's
    user. nice is an increment over the fork server's (which runs at 0, so it is the server's
    nice value); umask and cwd are the server's; log is the user's log file (mlworkshop.userlogs),
    None for /dev/null; cgroups are the account's groups the hub made (mlworkshop.cgroups)."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    uid: int | None = None
    gid: int | None = None
    groups: list[int] = field(default_factory=list)
    umask: int = 0o022
    nice: int = 0
    cgroups: list[str] = field(default_factory=list)
    log: str | None = None

    def __post_init__(self):
        self.argv = _check_str_list("argv", self.argv, allow_empty=False)
        self.env = _check_env(self.env)
        self.cwd = _check_path("cwd", self.cwd)
        if self.uid is None:
            if self.gid is not None or self.groups:
                raise RequestError("gid and groups are only set with a uid")
        else:
            # uid 0: a student's server is never root, whatever asked for it
            _check_int("uid", self.uid, 1, MAX_ID)
            _check_int("gid", self.gid, 0, MAX_ID)
        if not isinstance(self.groups, list | tuple):
            raise RequestError("groups must be a list of group ids")
        self.groups = [_check_int("a group", g, 0, MAX_ID) for g in self.groups]
        _check_int("umask", self.umask, 0, 0o777)
        _check_int(
            "nice", self.nice, -40, 40
        )  # an increment: the kernel clamps the result to -20..19
        self.cgroups = [
            _check_path("a cgroup", d) for d in _check_str_list("cgroups", self.cgroups)
        ]
        if self.log is not None:
            self.log = _check_path("log", self.log)

    def to_message(self) -> dict:
        return asdict(self)

    @classmethod
    def from_message(cls, message: dict) -> ForkRequest:
        """What the fork server read, checked: RequestError names what is wrong."""
        message = _known_fields(cls, message)
        missing = [name for name in ("argv", "env", "cwd") if name not in message]
        if missing:
            raise RequestError(f"a ForkRequest needs {', '.join(missing)}")
        return cls(**message)


@dataclass
class KernelRequest:
    """A kernel, as a user's server asks for it. Everything else about the kernel (uid, groups,
    limits, cgroup) comes from who connected, never from the request."""

    argv: list[str]
    env: dict[str, str]
    cwd: str

    def __post_init__(self):
        self.argv = _check_str_list("argv", self.argv, allow_empty=False)
        self.env = _check_env(self.env)
        self.cwd = _check_path("cwd", self.cwd)

    def to_message(self) -> dict:
        return asdict(self)

    @classmethod
    def from_message(cls, message: dict) -> KernelRequest:
        message = _known_fields(cls, message)
        missing = [name for name in ("argv", "env", "cwd") if name not in message]
        if missing:
            raise RequestError(f"a KernelRequest needs {', '.join(missing)}")
        return cls(**message)


# Replies (one JSON object each).
def pid_reply(pid: int) -> dict:
    return {"pid": pid}


def error_reply(why: str) -> dict:
    return {"error": why}


def cold_reply(why: str) -> dict:
    return {"cold": why}


def ready_report() -> dict:
    """A forked kernel's second message, once it listens (every socket bound, its event loop
    running): a server that connects before that reaches it only at ZeroMQ's next reconnect try
    and misses its first status messages, and one that hears it may count the kernel idle
    (fastpath/kernel_app.py has what each cost)."""
    return {"ready": True}


def exit_report(code: int) -> dict:
    return {"exit": code}
