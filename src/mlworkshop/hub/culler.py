"""jupyterhub-idle-culler as a hub-managed service that stops when it is told to.

Stock jupyterhub-idle-culler does not exit on the hub's stop signal, so a stock hub waits ~30 s
for it on shutdown. The culler holds no state worth saving, so both signals end it at once.
"""

from __future__ import annotations

import os
import signal


def _exit_now(signum, _frame) -> None:
    os._exit(0)


def main() -> None:
    signal.signal(signal.SIGTERM, _exit_now)
    signal.signal(signal.SIGINT, _exit_now)
    from jupyterhub_idle_culler import main as culler_main

    culler_main()


if __name__ == "__main__":
    main()
