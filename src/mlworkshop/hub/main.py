"""The hub's process: JupyterHub, as `python -m jupyterhub` runs it, with two changes.
`mlworkshop up` execs `python -m mlworkshop.hub.main -f <config>`.

- Imports that cost every start time for nothing are made lazy first (mlworkshop/lazy_imports.py).
- A Ctrl-C or SIGTERM that arrives while JupyterHub is starting its services waits until they
  have started, then stops the hub the usual way. JupyterHub installs its own stop handlers only at
  the end of start(); before that a SIGINT raised KeyboardInterrupt in the middle of starting the
  managed services and the hub died without stopping the ones already started: the idle culler and
  the usage service ran on, orphaned, holding the log pipe (seen in tests/integration/
  test_hub_main.py). With the proxy kept across restarts (hub/kept_proxy.py) /hub/health answers
  as soon as the hub listens, before its services start, so an admin (or systemd) can stop it in
  that window.
"""

from __future__ import annotations

import asyncio
import signal

from ..lazy_imports import defer_rfc3987_syntax

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def hub_class():
    from jupyterhub.app import JupyterHub

    class MLWorkshopHub(JupyterHub):
        """JupyterHub whose start() holds back a stop signal until its own handlers are in."""

        async def start(self):
            held: list[signal.Signals] = []
            previous = {
                s: signal.signal(s, lambda s, _frame: held.append(signal.Signals(s)))
                for s in STOP_SIGNALS
            }
            try:
                await super().start()  # ends with JupyterHub's own handlers (init_signal)
            except BaseException:
                for s, handler in previous.items():
                    signal.signal(s, handler)
                raise
            if held:
                self.log.info("Stopping: a stop signal came while the hub was starting")
                asyncio.ensure_future(self.shutdown_cancel_tasks(held[0]))

    return MLWorkshopHub


def main() -> None:
    defer_rfc3987_syntax()
    hub_class().launch_instance()


if __name__ == "__main__":
    main()
