"""The hub's CPU priority: ahead of users' servers when the machine is busy.

When a class of 60 starts at once on 2 cores, the CPU is saturated for the whole rush. The hub's
event loop serves every page, login and API call of everyone; at the same priority as the
servers it waits its turn behind them and /hub/health took up to 500 ms (bench/rush.py). At
nice -5 it answers first: p99 171 ms, and the rush ended sooner (less time lost to contention).

Threads and processes the hub starts inherit the value; the password-hashing threads put themselves back
at 0 (hub.auth), and the fork server too, so users' servers and kernels keep
`spawner.local.nice` relative to 0.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)


def set_hub_priority(nice: int) -> None:
    """Set this process's (main thread's) nice value; a hub that is not root keeps its own."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except PermissionError:
        if nice < os.getpriority(os.PRIO_PROCESS, 0):
            log.warning(
                "hub.nice %s needs a root hub; keeping nice %s",
                nice,
                os.getpriority(os.PRIO_PROCESS, 0),
            )


def reset_thread_priority() -> None:
    """Put the calling thread back at nice 0 (a thread pool's initializer): Linux keeps a nice
    value per thread, and threads start with their creator's (the hub's -5)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 0)
    except OSError:
        pass
