"""hub/kept_proxy.py and hub/proxy_process.py, the parts that need no hub: the proxy's command
that writes its own log, the fingerprint a kept proxy is adopted by, telling the proxy's process
from another one that took its pid. (A real hub adopting it: tests/integration/test_kept_proxy.py.)
"""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import psutil

from mlworkshop.hub.configure import logged_to
from mlworkshop.hub.kept_proxy import AdoptedProcess, KeptProxy
from mlworkshop.hub.proxy_process import running_process, running_proxy, stop_pid_file


def test_the_proxy_command_appends_its_output_to_its_log_and_keeps_its_pid(tmp_path):
    log = tmp_path / "proxy.log"
    log.write_text("before\n")
    command = logged_to(log, [sys.executable, "-c"]) + ["import os, sys; print(os.getpid())"]
    proc = subprocess.Popen(command)
    assert proc.wait(30) == 0
    assert log.read_text() == f"before\n{proc.pid}\n"  # exec'd: the pid JupyterHub records


def proxy(tmp_path, **traits) -> KeptProxy:
    values = {
        "command": ["configurable-http-proxy"],
        "public_url": "http://127.0.0.1:8000/",
        "api_url": "http://127.0.0.1:882",
        "auth_token": "secret-token",
        "pid_file": str(tmp_path / "proxy.pid"),
        **traits,
    }
    kept = KeptProxy(**values)
    kept.hub = SimpleNamespace(url="http://127.0.0.1:881/hub/")
    kept.app = SimpleNamespace(subdomain_host="", internal_ssl=False)
    return kept


def test_the_fingerprint_changes_with_anything_the_proxy_was_started_with(tmp_path):
    cert = tmp_path / "cert.pem"
    cert.write_text("one")
    same = proxy(tmp_path, ssl_cert=str(cert)).fingerprint()
    assert proxy(tmp_path, ssl_cert=str(cert)).fingerprint() == same
    assert proxy(tmp_path, ssl_cert=str(cert), auth_token="other").fingerprint() != same
    assert (
        proxy(tmp_path, ssl_cert=str(cert), public_url="http://0.0.0.0:80/").fingerprint() != same
    )
    assert proxy(tmp_path, ssl_cert=str(cert), command=["other-proxy"]).fingerprint() != same
    cert.write_text("renewed")  # a renewed certificate under the same name
    assert proxy(tmp_path, ssl_cert=str(cert)).fingerprint() != same
    assert "secret-token" not in same


def test_a_pid_file_is_believed_only_for_the_process_it_says(tmp_path):
    pid_file = tmp_path / "proxy.pid"
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        pid_file.write_text(str(sleeper.pid))
        assert running_proxy(pid_file) is None  # a live process, but no proxy
        assert stop_pid_file(pid_file, "configurable-http-proxy") is None
        assert sleeper.poll() is None  # and not signalled
        assert running_process(pid_file, "sleep").pid == sleeper.pid
        assert stop_pid_file(pid_file, "sleep", timeout=10) == sleeper.pid
        assert sleeper.wait(10) is not None
    finally:
        sleeper.kill()
    pid_file.write_text("not a pid")
    assert running_proxy(pid_file) is None
    assert running_proxy(tmp_path / "missing.pid") is None


def test_an_adopted_process_reads_as_running_until_it_is_gone():
    sleeper = subprocess.Popen(["sleep", "60"])
    adopted = AdoptedProcess(psutil.Process(sleeper.pid))
    assert adopted.poll() is None and adopted.pid == sleeper.pid
    adopted.terminate()
    sleeper.wait(10)
    assert adopted.poll() == 1


def test_the_proxys_cgroup_is_no_students():
    """Students' cgroups are named after their accounts (spawner.local.user_prefix + name) and
    whatever is left in one is killed when the server stops: had the proxy's group been
    `mlw-proxy`, a student named "proxy" would share it, cap its memory and kill it by stopping
    her server. A prefix must begin with a letter (config/model.py); this group does not."""
    from mlworkshop.config import MLWorkshopConfig
    from mlworkshop.hub.kept_proxy import PROXY_CGROUP

    prefix = MLWorkshopConfig().spawner.local.user_prefix
    assert PROXY_CGROUP != prefix + "proxy"
    assert not PROXY_CGROUP[0].isalpha()  # every prefix begins with a letter


def test_a_stopped_process_its_parent_has_not_reaped_yet_is_not_killed(tmp_path, monkeypatch):
    """`mlworkshop down` is not the hub's parent: a hub that exited at the SIGTERM stays a zombie
    until its parent reaps it, and psutil's wait() took that for running until the timeout, then
    sent SIGKILL (down waited 30 s in tests/integration/test_kept_proxy.py)."""
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys; child = subprocess.Popen(['sleep', '300']); "
            "print(child.pid, flush=True); sys.stdin.readline(); print(child.wait(), flush=True)",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        child = parent.stdout.readline().strip()
        pid_file = tmp_path / "hub.pid"
        pid_file.write_text(child)
        killed = []
        monkeypatch.setattr(psutil.Process, "kill", lambda self: killed.append(self.pid))
        assert stop_pid_file(pid_file, "sleep", timeout=3) == int(child)
        assert killed == []  # ended at the SIGTERM: nothing to kill
        parent.stdin.write("\n")
        parent.stdin.flush()
        assert parent.stdout.readline().strip() == "-15"  # and it was the SIGTERM that ended it
    finally:
        parent.kill()
        parent.wait()
