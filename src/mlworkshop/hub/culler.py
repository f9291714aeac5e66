"""jupyterhub-idle-culler as a hub-managed service that stops when it is told to, and that knows
about classes (hub/classes.py): it pre-warms a group's servers before the bell and leaves them
alone until the bell plus the grace period.

Stock jupyterhub-idle-culler does not exit on the hub's stop signal, so a stock hub waits ~30 s
for it on shutdown. The culler holds no state worth saving, so both signals end it at once.
"""

from __future__ import annotations

import os
import signal


def _exit_now(signum, _frame) -> None:
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    signal.signal(signal.SIGTERM, _exit_now)
    signal.signal(signal.SIGINT, _exit_now)
    from jupyterhub_idle_culler import IdleCuller
    from tornado.ioloop import IOLoop, PeriodicCallback

    from .classes import TICK_SECONDS, ClassBell

    culler = IdleCuller.instance()
    culler.initialize(argv)
    bell = ClassBell(culler.url, os.environ["JUPYTERHUB_API_TOKEN"], culler.log)
    culler.cull_arbiter_hook = bell.arbiter
    # the schedules are read before the first cull (both run as soon as the loop starts)
    loop = IOLoop.current()
    loop.add_callback(bell.tick)
    PeriodicCallback(bell.tick, 1e3 * min(TICK_SECONDS, culler.cull_every)).start()
    culler.start()


if __name__ == "__main__":
    main()
