"""Sampling running servers: CPU time and memory of each server's whole process tree (psutil),
container stats for the docker backend, and per-process GPU use through NVML where it exists.

Cheap by construction: one pass over the process table per round (parent links and owners),
then one read of /proc/<pid>/stat + statm for the processes that belong to a server.
psutil.Process objects are kept between rounds so a reused pid is never mistaken for the old
process.

A server's processes are its descendants plus, when each server runs as an account of its own
(a root hub), every other process of that account: kernels forked by the fork server are the
fork server's children, not the server's, and so is anything a student left running with
`nohup`. Their CPU time is kept when they exit (nobody reaps them into the server's totals).
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, replace

import psutil

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reading:
    cpu_total: float  # cumulative CPU seconds of the tree (alive processes + their reaped children)
    mem_bytes: int  # resident set size of the tree
    processes: int
    gpu_util: float | None = None
    gpu_mem_bytes: int | None = None
    cpu_departed: float = 0.0  # part of cpu_total used by processes that have exited (not reaped)


class ProcessSampler:
    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}
        self._adopted: dict[
            int, tuple[Hashable, float]
        ] = {}  # pid -> (server, CPU seconds last seen)
        self._departed_cpu: dict[Hashable, float] = defaultdict(float)  # of adopted processes gone

    def _process(self, pid: int) -> psutil.Process | None:
        proc = self._procs.get(pid)
        if proc is not None and proc.is_running():
            return proc
        try:
            proc = psutil.Process(pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            self._procs.pop(pid, None)
            return None
        self._procs[pid] = proc
        return proc

    def trees(self, roots: Mapping[Hashable, int]) -> dict[Hashable, list[int]]:
        """The pids of each root's process tree, from one pass over the process table."""
        return self._trees(roots)[0]

    def _trees(self, roots: Mapping[Hashable, int]) -> tuple[dict[Hashable, list[int]], set[int]]:
        """Each root's pids, and which of them were adopted by owner rather than found as
        descendants (their CPU time is not reaped into the root's)."""
        children: dict[int, list[int]] = defaultdict(list)
        try:
            ppids = psutil._ppid_map()  # one read of /proc/*/stat; what Process.children() uses
        except Exception:  # noqa: BLE001 - another platform: the public, slower way
            ppids = {p.pid: p.info["ppid"] for p in psutil.process_iter(["ppid"])}
        for pid, ppid in ppids.items():
            children[ppid].append(pid)
        out: dict[Hashable, list[int]] = {}
        for key, root in roots.items():
            if root not in ppids:
                continue
            tree, stack = [], [root]
            while stack:
                pid = stack.pop()
                tree.append(pid)
                stack.extend(children.get(pid, ()))
            out[key] = tree
        owners = _owners_of_one_root({key: tree[0] for key, tree in out.items()})
        adopted: set[int] = set()
        if owners:
            in_trees = {pid for tree in out.values() for pid in tree}
            for pid in ppids:
                if pid not in in_trees:
                    key = owners.get(_owner(pid))
                    if key is not None:
                        out[key].append(pid)
                        adopted.add(pid)
        return out, adopted

    def sample(
        self, roots: Mapping[Hashable, int], gpu: GpuSampler | None = None
    ) -> dict[Hashable, Reading]:
        """A reading per root pid that still runs (dead roots are left out)."""
        trees, adopted = self._trees(roots)
        gpu_by_pid = gpu.per_pid() if gpu is not None else {}
        readings = {}
        alive = set()
        for key, pids in trees.items():
            server_pids = set(pids)
            cpu = 0.0
            mem = 0
            count = 0
            gpu_util = None
            gpu_mem = None
            for pid in pids:
                proc = self._process(pid)
                if proc is None:
                    continue
                try:
                    with proc.oneshot():
                        if proc.status() == psutil.STATUS_ZOMBIE:
                            # dead, only not reaped (its parent is gone and an init that
                            # does not reap keeps it forever): its zeroed times and memory
                            # are not a running server's, and its time is not "last seen"
                            continue
                        t = proc.cpu_times()
                        m = proc.memory_info()
                except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                    continue
                alive.add(pid)
                own = (
                    t.user
                    + t.system
                    + getattr(t, "children_user", 0.0)
                    + getattr(t, "children_system", 0.0)
                )
                cpu += own
                if pid in adopted and _reaped_by_nobody(proc, server_pids):
                    self._adopted[pid] = (key, own)
                mem += m.rss
                count += 1
                if pid in gpu_by_pid:
                    util, used = gpu_by_pid[pid]
                    gpu_util = (gpu_util or 0.0) + (util or 0.0)
                    gpu_mem = (gpu_mem or 0) + (used or 0)
            if count:
                readings[key] = Reading(cpu, mem, count, gpu_util, gpu_mem)
        for pid in list(self._procs):
            if pid not in alive:
                del self._procs[pid]
        for pid, (key, last_cpu) in list(self._adopted.items()):
            if pid not in alive:  # gone, and nobody reaped its time into the server's
                self._departed_cpu[key] += last_cpu
                del self._adopted[pid]
        for key in set(self._departed_cpu) - set(roots):
            del self._departed_cpu[key]
        return {
            key: replace(
                r,
                cpu_total=r.cpu_total + self._departed_cpu.get(key, 0.0),
                cpu_departed=self._departed_cpu.get(key, 0.0),
            )
            for key, r in readings.items()
        }


def _reaped_by_nobody(proc: psutil.Process, server_pids: set[int]) -> bool:
    """An adopted process's time is lost when it exits unless its parent is one of the server's
    processes (which reaps it, and so keeps its time): a forked kernel's parent is the fork server."""
    try:
        return proc.ppid() not in server_pids
    except psutil.Error:
        return False


def _owner(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def _owners_of_one_root(roots: Mapping[Hashable, int]) -> dict[int, Hashable]:
    """Account uid -> server, for accounts that run exactly one server and are neither root nor
    the hub's own user (a hub that is not root runs every server as itself: no owner is unique)."""
    by_uid: dict[int, list[Hashable]] = defaultdict(list)
    for key, root in roots.items():
        uid = _owner(root)
        if uid is not None and uid not in (0, os.getuid()):
            by_uid[uid].append(key)
    return {uid: keys[0] for uid, keys in by_uid.items() if len(keys) == 1}


class GpuSampler:
    """Per-process GPU memory and utilisation through NVML (nvidia-ml-py); absent: no GPU data."""

    def __init__(self) -> None:
        self.nvml = None
        self._last_seen: dict[int, int] = {}
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nvml = pynvml
            self.handles = [
                pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())
            ]
        except Exception as exc:  # noqa: BLE001 - no driver, no library, no device
            log.info("NVML not available (%s): no per-process GPU samples", exc)
            self.nvml = None
            self.handles = []

    @property
    def available(self) -> bool:
        return self.nvml is not None and bool(self.handles)

    def per_pid(self) -> dict[int, tuple[float | None, int | None]]:
        """pid -> (SM utilisation percent, GPU memory bytes), summed over devices."""
        if not self.available:
            return {}
        nvml = self.nvml
        out: dict[int, list] = {}
        for index, handle in enumerate(self.handles):
            try:
                for proc in nvml.nvmlDeviceGetComputeRunningProcesses(handle):
                    entry = out.setdefault(proc.pid, [None, 0])
                    entry[1] += proc.usedGpuMemory or 0
            except nvml.NVMLError:
                pass
            try:
                samples = nvml.nvmlDeviceGetProcessUtilization(
                    handle, self._last_seen.get(index, 0)
                )
                for s in samples:
                    entry = out.setdefault(s.pid, [None, 0])
                    entry[0] = (entry[0] or 0.0) + s.smUtil
                    self._last_seen[index] = max(self._last_seen.get(index, 0), s.timeStamp)
            except nvml.NVMLError:
                pass  # not supported on this device, or no samples since last time
        return {pid: (util, mem) for pid, (util, mem) in out.items()}


class ContainerSampler:
    """docker / podman container stats (one-shot, not the 1-second streaming read)."""

    def __init__(self, client=None, url: str | None = None) -> None:
        self.client = client
        self.url = url

    def _client(self):
        if self.client is None:
            import docker

            self.client = (
                docker.DockerClient(base_url=self.url, version="auto", timeout=10)
                if self.url
                else docker.from_env(timeout=10)
            )
        return self.client

    def sample(self, containers: Mapping[Hashable, str]) -> dict[Hashable, Reading]:
        out = {}
        for key, cid in containers.items():
            try:
                container = self._client().containers.get(cid)
                try:
                    stats = container.stats(stream=False, one_shot=True)
                except TypeError:
                    stats = container.stats(stream=False)
            except Exception as exc:  # noqa: BLE001 - gone, or the engine does not answer
                log.debug("no stats for container %s: %s", cid, exc)
                continue
            cpu_ns = (stats.get("cpu_stats") or {}).get("cpu_usage", {}).get("total_usage") or 0
            mem = stats.get("memory_stats") or {}
            usage = mem.get("usage") or 0
            cache = (
                (mem.get("stats") or {}).get("inactive_file")
                or (mem.get("stats") or {}).get("cache")
                or 0
            )
            out[key] = Reading(
                cpu_ns / 1e9,
                max(0, usage - cache),
                int((stats.get("pids_stats") or {}).get("current") or 0),
            )
        return out


def cgroup_cpu_seconds(account: str) -> float | None:
    """CPU seconds used by every process that has been in the account's cgroup (made by the hub
    at each spawn, hub/cgroup_hooks.py) since the group was made: the kernel's own count, so
    processes that have exited, and a server that died, are in it. None: no such group."""
    from .. import cgroups

    hierarchy = cgroups.detect()
    try:
        if hierarchy is None:
            return None
        if hierarchy.version == 2:
            for line in (
                (hierarchy.roots[""] / cgroups.PARENT / cgroups.check_account(account) / "cpu.stat")
                .read_text()
                .splitlines()
            ):
                name, _, value = line.partition(" ")
                if name == "usage_usec":
                    return int(value) / 1e6
            return None
        group = hierarchy.controller_dir("cpuacct", account)
        return None if group is None else int((group / "cpuacct.usage").read_text()) / 1e9
    except (OSError, ValueError, cgroups.CgroupError):
        return None
