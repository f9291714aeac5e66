"""Per-user limits the kernel enforces: one cgroup per student account, under `mlworkshop/`.

Process limits of our own (nice, RLIMIT_NPROC, the usage sampler) are advice a student's code can
step around: RLIMIT_NPROC is not checked for a process that never execs (a forked kernel), a
memory "limit" the sampler reads after the fact stops nothing, and nice only orders one user's
processes against everyone's. A cgroup is accounted by the kernel itself: its memory limit
invokes the OOM killer inside the group, its CPU weight shares the CPUs per *user* however many
processes that user runs, and pids.max makes fork() fail (EAGAIN) at the limit.

    <cgroup root>/mlworkshop/<account>/   memory.limit_in_bytes | memory.max (+ swap)
                                          cpu.shares | cpu.weight, cfs quota | cpu.max
                                          pids.max

Root creates (and updates) the group at each spawn; every process of the user's server joins it
while still root, before it drops to the student's uid: the server (forked or started cold) and
each kernel the fork server forks for that account. The group's files stay root's, so a student
can neither leave it nor loosen it. When the server stops, what is left in the group (a kernel
that outlived its server, a `nohup` loop) is killed and the group removed.

Both hierarchies: cgroup v1 (one mount per controller, what hosts without systemd as PID 1 and
older distributions have) and v2 (one unified tree, the default of current distributions). On v2
the groups are made directly under the cgroup2 root, beside systemd's slices rather than as one of
them (a systemd slice would need the hub to ask systemd to move each process after it exists,
while here the process joins by itself before it drops to the student's uid).

Stdlib only: the fork server (which imports nothing of the hub) and users' servers import it too.
"""

from __future__ import annotations

import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

PARENT = "mlworkshop"
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids")  # cpuacct: accounting only (usage, tests)
V2_CONTROLLERS = ("memory", "cpu", "pids")
_ACCOUNT_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
_V1_SHARES_PER_WEIGHT = 1024 / 100  # v1 cpu.shares 1024 is v2 cpu.weight 100: the default of both


class CgroupError(RuntimeError):
    """A group could not be made, limited, joined or removed; str() says which file and why."""


@dataclass(frozen=True)
class Limits:
    """One user's limits. None: no limit of that kind."""

    memory_bytes: int | None = None
    cpu_cores: float | None = None  # a hard cap (CFS quota) in CPUs; None: only the fair share
    pids: int | None = None  # processes *and* threads (the kernel counts tasks)
    cpu_weight: int = 100  # every user the same: the share, not the cap


@dataclass(frozen=True)
class Hierarchy:
    """Where the controllers are mounted: v1, one folder per controller (two controllers mounted
    together share one); v2, the one unified folder under the key ""."""

    version: int
    roots: dict[str, Path]

    def user_dirs(self, account: str) -> list[Path]:
        check_account(account)
        return sorted({root / PARENT / account for root in self.roots.values()})

    def controller_dir(self, controller: str, account: str) -> Path | None:
        root = self.roots.get("" if self.version == 2 else controller)
        return None if root is None else root / PARENT / check_account(account)


def check_account(account: str) -> str:
    """An account name is a path component here: nothing that could climb out of the parent."""
    if not _ACCOUNT_RE.match(account or ""):
        raise CgroupError(f"{account!r} is not an account name a cgroup can be made for")
    return account


def _unescape(field: str) -> str:
    """/proc/self/mounts writes spaces, tabs and newlines in paths as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mounts(text: str, read_controllers=None) -> Hierarchy | None:
    """The hierarchy to use from /proc/self/mounts text. v2 when a unified mount has the memory,
    cpu and pids controllers (a hybrid host's /sys/fs/cgroup/unified usually has none); else v1
    with the controllers that are mounted; None when neither has any."""
    if read_controllers is None:
        read_controllers = _read_controllers
    v1: dict[str, Path] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        mountpoint, fstype, options = Path(_unescape(parts[1])), parts[2], parts[3].split(",")
        if fstype == "cgroup2":
            if set(V2_CONTROLLERS) <= read_controllers(mountpoint):
                return Hierarchy(2, {"": mountpoint})
        elif fstype == "cgroup":
            for controller in V1_CONTROLLERS:
                if controller in options:
                    v1.setdefault(controller, mountpoint)
    return Hierarchy(1, v1) if v1 else None


def _read_controllers(mountpoint: Path) -> set[str]:
    try:
        return set((mountpoint / "cgroup.controllers").read_text().split())
    except OSError:
        return set()


def detect() -> Hierarchy | None:
    try:
        with open("/proc/self/mounts") as f:
            return parse_mounts(f.read())
    except OSError:
        return None


# --- root's side: make, limit, empty ----------------------------------------------------------
def _write(path: Path, value: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW)
    except OSError as exc:
        raise CgroupError(f"cannot open {path}: {exc.strerror}") from None
    try:
        os.write(fd, value.encode())
    except OSError as exc:
        raise CgroupError(f"cannot write {value!r} to {path}: {exc.strerror}") from None
    finally:
        os.close(fd)


def _mkdir(path: Path) -> None:
    """Made by root; a folder that is there must be a real folder of ours (root's), not something
    another account put in its place."""
    try:
        path.mkdir(mode=0o755)
    except FileExistsError:
        pass
    except OSError as exc:
        raise CgroupError(f"cannot create {path}: {exc.strerror}") from None
    st = os.lstat(path)
    if os.path.islink(path) or not os.path.isdir(path) or st.st_uid != os.geteuid():
        raise CgroupError(f"{path} is not a cgroup folder of this hub's user (uid {os.geteuid()})")


def _enable_v2(parent: Path, controllers: tuple[str, ...]) -> None:
    """Controllers reach a child only when its parent lists them in cgroup.subtree_control."""
    available = _read_controllers(parent)
    enabled = set((parent / "cgroup.subtree_control").read_text().split())
    missing = [c for c in controllers if c in available and c not in enabled]
    if missing:
        _write(parent / "cgroup.subtree_control", " ".join("+" + c for c in missing))


def ensure(hierarchy: Hierarchy, account: str, limits: Limits) -> list[Path]:
    """Create (or update) the account's group with these limits; the folders a process joins."""
    check_account(account)
    if hierarchy.version == 2:
        root = hierarchy.roots[""]
        _enable_v2(root, V2_CONTROLLERS)
        _mkdir(root / PARENT)
        _enable_v2(root / PARENT, V2_CONTROLLERS)
        group = root / PARENT / account
        _mkdir(group)
        _limit_v2(group, limits)
        return [group]
    for root in hierarchy.roots.values():
        _mkdir(root / PARENT)
        _mkdir(root / PARENT / account)
    for controller, root in hierarchy.roots.items():
        _limit_v1(controller, root / PARENT / account, limits)
    return hierarchy.user_dirs(account)


def _limit_v1(controller: str, group: Path, limits: Limits) -> None:
    if controller == "memory":
        memory = str(limits.memory_bytes) if limits.memory_bytes is not None else "-1"
        memsw = group / "memory.memsw.limit_in_bytes"  # memory + swap: only with swap accounting
        if memsw.exists():
            _write(memsw, "-1")  # memsw may never be below the memory limit: lift it first
        _write(group / "memory.limit_in_bytes", memory)
        if memsw.exists():
            _write(memsw, memory)  # no swapping past the limit either
    elif controller == "cpu":
        _write(group / "cpu.shares", str(max(2, round(limits.cpu_weight * _V1_SHARES_PER_WEIGHT))))
        if (group / "cpu.cfs_quota_us").exists():
            period = int((group / "cpu.cfs_period_us").read_text())
            quota = -1 if limits.cpu_cores is None else max(1000, round(limits.cpu_cores * period))
            _write(group / "cpu.cfs_quota_us", str(quota))
    elif controller == "pids":
        _write(group / "pids.max", "max" if limits.pids is None else str(limits.pids))


def _limit_v2(group: Path, limits: Limits) -> None:
    _write(group / "memory.max", "max" if limits.memory_bytes is None else str(limits.memory_bytes))
    if (group / "memory.swap.max").exists():
        _write(group / "memory.swap.max", "max" if limits.memory_bytes is None else "0")
    _write(group / "cpu.weight", str(limits.cpu_weight))
    quota = "max" if limits.cpu_cores is None else str(max(1000, round(limits.cpu_cores * 100000)))
    _write(group / "cpu.max", f"{quota} 100000")
    _write(group / "pids.max", "max" if limits.pids is None else str(limits.pids))


def existing_dirs(hierarchy: Hierarchy, account: str) -> list[Path]:
    """The account's group folders that are there (made by the hub for a running server)."""
    return [d for d in hierarchy.user_dirs(account) if d.is_dir()]


def members(dirs: list[Path]) -> set[int]:
    pids: set[int] = set()
    for group in dirs:
        try:
            pids.update(int(p) for p in (group / "cgroup.procs").read_text().split())
        except (OSError, ValueError):
            continue
    return pids


def remove(hierarchy: Hierarchy, account: str, timeout: float = 10.0) -> None:
    """Kill what is left in the account's group, then remove it. CgroupError if it will not go."""
    dirs = existing_dirs(hierarchy, account)
    deadline = time.monotonic() + timeout
    while True:
        left = members(dirs)
        if not left:
            break
        if time.monotonic() > deadline:
            raise CgroupError(f"processes {sorted(left)[:10]} of {account} would not exit")
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    for group in dirs:
        for _ in range(100):  # a killed task leaves the group a moment after it is gone from procs
            try:
                group.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise CgroupError(f"cannot remove {group}: {exc.strerror}") from None
                time.sleep(0.05)


# --- the joining side (a forked child, still root) --------------------------------------------
def join(dirs: list[str] | list[Path], pid: int = 0) -> None:
    """Move this process (or `pid`) into these groups. Safe in a preexec function: no logging,
    no threads, only open/write/close."""
    value = str(pid or os.getpid())
    for group in dirs:
        _write(Path(group) / "cgroup.procs", value)


def pids_over_limit(hierarchy: Hierarchy, account: str) -> bool:
    """A process that joins the group is counted even past pids.max (only fork() is refused):
    whoever joins checks afterwards and gives up when the group is over its limit."""
    group = hierarchy.controller_dir("pids", account)
    if group is None:
        return False
    try:
        limit = (group / "pids.max").read_text().strip()
        current = int((group / "pids.current").read_text())
    except (OSError, ValueError):
        return False
    return limit != "max" and current > int(limit)


# --- reading (anyone: the group's files are world-readable) -----------------------------------
def _memory_file(hierarchy: Hierarchy, group: Path, v1_name: str, v2_name: str) -> Path:
    return group / (v2_name if hierarchy.version == 2 else v1_name)


def oom_kills_in(hierarchy: Hierarchy, group: Path) -> int | None:
    """How many processes the OOM killer killed in this memory group (None: unknown)."""
    path = _memory_file(hierarchy, group, "memory.oom_control", "memory.events")
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        return None
    return None


def memory_limit_in(hierarchy: Hierarchy, group: Path) -> int | None:
    path = _memory_file(hierarchy, group, "memory.limit_in_bytes", "memory.max")
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max" or int(text) >= 2**62:  # v1 writes "no limit" as a huge page-rounded number
        return None
    return int(text)


def oom_kills(hierarchy: Hierarchy, account: str) -> int | None:
    group = hierarchy.controller_dir("memory", account)
    return None if group is None else oom_kills_in(hierarchy, group)


def own_memory_group(hierarchy: Hierarchy, proc_cgroup: str | None = None) -> Path | None:
    """The memory group this process is in, when it is one of ours (a user's server asks)."""
    if proc_cgroup is None:
        try:
            with open("/proc/self/cgroup") as f:
                proc_cgroup = f.read()
        except OSError:
            return None
    root = hierarchy.roots.get("" if hierarchy.version == 2 else "memory")
    if root is None:
        return None
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        wanted = controllers == "" if hierarchy.version == 2 else "memory" in controllers.split(",")
        if wanted and path.startswith(f"/{PARENT}/"):
            return root / path.lstrip("/")
    return None


def describe_bytes(n: int) -> str:
    """1073741824 -> '1 GiB', 1610612736 -> '1.5 GiB', 536870912 -> '512 MiB'."""
    if n >= 2**30:
        return f"{n / 2**30:.3g} GiB"
    return f"{n / 2**20:.3g} MiB"
