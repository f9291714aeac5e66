"""mlworkshop.cgroups: finding the hierarchy, and (as root, on this machine's cgroup v1) making a
user's group whose limits the kernel then enforces on real processes, and removing it.

v2 writes are checked on a folder laid out like a cgroup2 tree (no v2 controllers here); the
v1 tests use the real controllers and skip where they are not mounted or the tests are not root.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mlworkshop import cgroups
from mlworkshop.accelerators.profiles import server_resources
from mlworkshop.config.model import MLWorkshopConfig
from mlworkshop.sizes import parse_bytes

HYBRID = """\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
"""


def test_parse_mounts_hybrid_without_v2_controllers_is_v1():
    h = cgroups.parse_mounts(HYBRID, read_controllers=lambda path: set())
    assert h.version == 1
    assert h.roots == {c: Path("/sys/fs/cgroup") / c for c in ("cpu", "cpuacct", "memory", "pids")}
    assert h.user_dirs("mlw-ada") == sorted(
        Path("/sys/fs/cgroup") / c / "mlworkshop" / "mlw-ada"
        for c in ("cpu", "cpuacct", "memory", "pids")
    )


def test_parse_mounts_v1_controllers_mounted_together_share_one_folder():
    text = "cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\ncgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n"
    h = cgroups.parse_mounts(text, read_controllers=lambda path: set())
    assert h.roots["cpu"] == h.roots["cpuacct"] == Path("/sys/fs/cgroup/cpu,cpuacct")
    assert len(h.user_dirs("mlw-ada")) == 2
    assert h.controller_dir("pids", "mlw-ada") is None  # not mounted: that limit is not enforced


def test_parse_mounts_unified_with_controllers_is_v2():
    text = "cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n"
    h = cgroups.parse_mounts(
        text, read_controllers=lambda path: {"cpuset", "cpu", "io", "memory", "pids"}
    )
    assert h == cgroups.Hierarchy(2, {"": Path("/sys/fs/cgroup")})
    assert h.user_dirs("mlw-ada") == [Path("/sys/fs/cgroup/mlworkshop/mlw-ada")]
    assert h.controller_dir("memory", "mlw-ada") == h.controller_dir("pids", "mlw-ada")


def test_parse_mounts_nothing_usable_and_escaped_paths():
    assert (
        cgroups.parse_mounts(
            "cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n", read_controllers=lambda p: {"io"}
        )
        is None
    )
    assert cgroups.parse_mounts("", read_controllers=lambda p: set()) is None
    h = cgroups.parse_mounts(
        "cgroup /cg\\040x cgroup rw,memory 0 0\n", read_controllers=lambda p: set()
    )
    assert h.roots == {"memory": Path("/cg x")}


@pytest.mark.parametrize("name", ["", "..", "../mlw-a", "mlw-a/../../etc", "Mlw", "a b", "x" * 40])
def test_account_names_that_could_leave_the_parent_are_refused(name):
    with pytest.raises(cgroups.CgroupError):
        cgroups.Hierarchy(1, {"memory": Path("/sys/fs/cgroup/memory")}).user_dirs(name)


def test_own_memory_group_only_when_it_is_ours():
    h = cgroups.Hierarchy(
        1, {"memory": Path("/sys/fs/cgroup/memory"), "pids": Path("/sys/fs/cgroup/pids")}
    )
    text = "8:pids:/mlworkshop/mlw-ada\n4:memory:/mlworkshop/mlw-ada\n0::/\n"
    assert cgroups.own_memory_group(h, text) == Path("/sys/fs/cgroup/memory/mlworkshop/mlw-ada")
    assert cgroups.own_memory_group(h, "4:memory:/process_api/abc\n") is None
    v2 = cgroups.Hierarchy(2, {"": Path("/sys/fs/cgroup")})
    assert cgroups.own_memory_group(v2, "0::/mlworkshop/mlw-ada\n") == Path(
        "/sys/fs/cgroup/mlworkshop/mlw-ada"
    )


def test_describe_bytes():
    assert cgroups.describe_bytes(2**30) == "1 GiB"
    assert cgroups.describe_bytes(3 * 2**29) == "1.5 GiB"
    assert cgroups.describe_bytes(2**29) == "512 MiB"


def test_server_resources_are_what_the_profiles_say():
    profiles = MLWorkshopConfig().accelerators.profiles
    assert server_resources(profiles, 0) == (2, 4 * 2**30)
    assert server_resources(profiles, 2) == (8, 32 * 2**30)
    profiles.cpu.mem_limit = None
    profiles.cpu.cpu_limit = None
    assert server_resources(profiles, 0) == (None, None)
    assert (
        parse_bytes("1.5G") == 3 * 2**29
        and parse_bytes("512M") == 2**29
        and parse_bytes("100") == 100
    )


# --- v2, on a folder laid out like a cgroup2 tree ----------------------------------------------
V2_FILES = (
    "cgroup.controllers",
    "cgroup.subtree_control",
    "cgroup.procs",
    "memory.max",
    "memory.swap.max",
    "cpu.weight",
    "cpu.max",
    "pids.max",
    "memory.events",
)


def _fake_v2_group(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    for name in V2_FILES:
        (path / name).write_text("")
    (path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")


def test_v2_ensure_enables_controllers_and_writes_limits(tmp_path):
    for folder in (tmp_path, tmp_path / "mlworkshop", tmp_path / "mlworkshop" / "mlw-ada"):
        _fake_v2_group(folder)
    h = cgroups.Hierarchy(2, {"": tmp_path})
    dirs = cgroups.ensure(h, "mlw-ada", cgroups.Limits(memory_bytes=2**30, cpu_cores=1.5, pids=100))
    group = tmp_path / "mlworkshop" / "mlw-ada"
    assert dirs == [group]
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+memory +cpu +pids"
    assert (tmp_path / "mlworkshop" / "cgroup.subtree_control").read_text() == "+memory +cpu +pids"
    values = {
        name: (group / name).read_text()
        for name in ("memory.max", "memory.swap.max", "cpu.weight", "cpu.max", "pids.max")
    }
    assert values == {
        "memory.max": str(2**30),
        "memory.swap.max": "0",
        "cpu.weight": "100",
        "cpu.max": "150000 100000",
        "pids.max": "100",
    }
    cgroups.ensure(h, "mlw-ada", cgroups.Limits())  # no limits: written back as "max"
    assert [
        (group / n).read_text() for n in ("memory.max", "memory.swap.max", "cpu.max", "pids.max")
    ] == ["max", "max", "max 100000", "max"]
    (group / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\n")
    assert cgroups.oom_kills(h, "mlw-ada") == 2
    (group / "memory.max").write_text("1073741824\n")
    assert cgroups.memory_limit_in(h, group) == 2**30


def test_a_group_folder_that_is_a_link_is_refused(tmp_path):
    _fake_v2_group(tmp_path)
    _fake_v2_group(tmp_path / "elsewhere")
    (tmp_path / "mlworkshop").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(cgroups.CgroupError, match="is not a cgroup folder"):
        cgroups.ensure(cgroups.Hierarchy(2, {"": tmp_path}), "mlw-ada", cgroups.Limits())


# --- v1, the real controllers of this machine ---------------------------------------------------
def _real_v1():
    h = cgroups.detect()
    if (
        os.geteuid() != 0
        or h is None
        or h.version != 1
        or not {"memory", "cpu", "pids"} <= set(h.roots)
    ):
        pytest.skip("needs root and cgroup v1 memory, cpu and pids controllers")
    return h


@pytest.fixture
def v1_group():
    h = _real_v1()
    account = "mlwtest-" + secrets.token_hex(3)
    yield h, account
    try:
        cgroups.remove(h, account)
    except cgroups.CgroupError:
        pass


def _python_in_group(dirs, code: str, **kwargs) -> subprocess.Popen:
    """A child that joins the group before it runs anything (as the fork server's children do)."""
    return subprocess.Popen(
        [sys.executable, "-c", code],
        preexec_fn=lambda: cgroups.join(dirs),
        stdout=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_v1_ensure_writes_the_limits_and_updates_them(v1_group):
    h, account = v1_group
    dirs = cgroups.ensure(
        h, account, cgroups.Limits(memory_bytes=256 * 2**20, cpu_cores=0.5, pids=50)
    )
    assert dirs == h.user_dirs(account) and all(d.is_dir() for d in dirs)
    memory = h.controller_dir("memory", account)
    assert int((memory / "memory.limit_in_bytes").read_text()) == 256 * 2**20
    if (memory / "memory.memsw.limit_in_bytes").exists():
        assert int((memory / "memory.memsw.limit_in_bytes").read_text()) == 256 * 2**20
    cpu = h.controller_dir("cpu", account)
    assert (cpu / "cpu.shares").read_text().strip() == "1024"
    assert (
        int((cpu / "cpu.cfs_quota_us").read_text())
        == int((cpu / "cpu.cfs_period_us").read_text()) // 2
    )
    assert (h.controller_dir("pids", account) / "pids.max").read_text().strip() == "50"
    assert all(
        os.stat(d / "cgroup.procs").st_uid == 0 for d in dirs
    )  # a student cannot join or leave
    # updated in place at the next start (a larger limit, none at all)
    cgroups.ensure(h, account, cgroups.Limits(memory_bytes=512 * 2**20))
    assert cgroups.memory_limit_in(h, memory) == 512 * 2**20
    assert int((cpu / "cpu.cfs_quota_us").read_text()) == -1
    assert (h.controller_dir("pids", account) / "pids.max").read_text().strip() == "max"


def test_v1_memory_past_the_limit_is_killed_and_counted(v1_group):
    h, account = v1_group
    dirs = cgroups.ensure(h, account, cgroups.Limits(memory_bytes=64 * 2**20))
    assert cgroups.oom_kills(h, account) == 0
    child = _python_in_group(dirs, "b = bytearray(256 * 2**20)\nprint('survived')")
    out, _ = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL and "survived" not in out
    assert cgroups.oom_kills(h, account) == 1


def test_v1_fork_fails_at_the_pids_limit_and_joining_past_it_shows(v1_group):
    h, account = v1_group
    dirs = cgroups.ensure(h, account, cgroups.Limits(pids=8))
    code = (
        "import os, time\nn = 0\ntry:\n    for _ in range(50):\n        if os.fork() == 0:\n"
        "            time.sleep(30); os._exit(0)\n        n += 1\nexcept BlockingIOError:\n    pass\n"
        "print(n, flush=True)\n"
    )
    child = _python_in_group(dirs, code, start_new_session=True)
    try:
        forked = int(child.stdout.readline())
        assert forked < 8  # the python itself and its threads count too
        assert not cgroups.pids_over_limit(h, account)
        sleeper = subprocess.Popen(["sleep", "30"])
        cgroups.join(dirs, sleeper.pid)  # joining is never refused: whoever joins must check
        assert cgroups.pids_over_limit(h, account)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()


def test_v1_remove_kills_what_is_left_and_removes_the_group(v1_group):
    h, account = v1_group
    dirs = cgroups.ensure(h, account, cgroups.Limits(pids=20))
    left = subprocess.Popen(["sleep", "300"], preexec_fn=lambda: cgroups.join(dirs))
    assert cgroups.members(dirs) == {left.pid}
    cgroups.remove(h, account)
    assert left.wait(timeout=10) == -signal.SIGKILL
    assert not any(d.exists() for d in dirs)
    assert cgroups.existing_dirs(h, account) == []
    cgroups.remove(h, account)  # nothing there: nothing to do


def test_v1_cpu_time_of_a_group_is_accounted(v1_group):
    h, account = v1_group
    dirs = cgroups.ensure(h, account, cgroups.Limits())
    child = _python_in_group(
        dirs, "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    )
    child.wait(timeout=60)
    if "cpuacct" in h.roots:
        assert int((h.controller_dir("cpuacct", account) / "cpuacct.usage").read_text()) >= 0.3e9
