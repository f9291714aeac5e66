"""hub/main.py on a real hub: Ctrl-C while the hub is still starting its managed services stops
those services too, instead of leaving them running with no hub."""

from __future__ import annotations

import signal
import subprocess
import time

import httpx
import psutil

from .hubctl import MLW


def processes_of(api_port: int) -> list[psutil.Process]:
    """Processes the hub started as its services: JupyterHub gives each its API's URL."""
    mark = f"127.0.0.1:{api_port}/"
    found = []
    for process in psutil.process_iter():
        try:
            if mark in process.environ().get("JUPYTERHUB_API_URL", ""):
                found.append(process)
        except psutil.Error:
            continue
    return found


def test_ctrl_c_while_the_hub_starts_its_services_stops_them(make_hub):
    hub = make_hub()
    hub.start()
    hub.stop()  # from now on the proxy is kept: /hub/health answers before the services start
    for attempt in range(3):  # the window lasts a fraction of a second: stop in it each time
        log = open(hub.site / "logs" / f"early-stop-{attempt}.log", "w")
        proc = subprocess.Popen(
            [*MLW, "up", "--site", str(hub.site)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(hub.url + "/hub/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(
                f"run {attempt}: the hub did not stop:\n{log.name}\n"
                + open(log.name).read()[-4000:]
            ) from None
        time.sleep(1)  # a service the hub stopped has had its SIGTERM answered by now
        left = processes_of(hub.internal_port)
        names = [" ".join(p.cmdline()[-3:]) for p in left]
        for process in left:
            process.kill()
        assert not left, f"run {attempt}: left running without their hub: {names}"
