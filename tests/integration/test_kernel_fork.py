"""IPython kernels forked from the fork server, end to end, without a hub: a real fork server
(as the hub starts it: root, scrubbed environment, own session, stdin a pipe) and real student
accounts whose jupyter_client asks it for kernels through the `mlworkshop-fork` provisioner.

Each test makes its own fork server, account prefix (kf<hex>-) and folder under /tmp, and
removes them afterwards even when it fails. Needs root (accounts, runuser, /proc/<pid>/mem).
No timing assertions: deadlines only bound how long a correct result may take to show.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from mlworkshop.fastpath.client import fork_server_env
from mlworkshop.fastpath.protocol import PROVISIONER_NAME, SOCKET_ENV
from mlworkshop.fastpath.provisioner import ForkRefused, fork_kernel

from .hubctl import memory_contains, remove_accounts

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.geteuid() != 0,
        reason="forked kernels take on other accounts' identities: needs root "
        "(useradd, runuser, reading another process's memory)",
    ),
]

MARKER = "MLWTEST "

# Run as a student account: a user's server's part, reduced to jupyter_client. Follows a plan
# (JSON in argv[1]) and reports events as marked JSON lines on its original stdout; the kernel
# gets its stderr for both of its streams, so its output never mixes with the events. An event
# with "wait" blocks until the test writes a line to its stdin.
CLIENT = r"""
import asyncio, json, os, resource, sys, time

plan = json.loads(sys.argv[1])
events = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)


def emit(event, wait=False, **data):
    events.write("MLWTEST " + json.dumps({"event": event, **data}) + "\n")
    events.flush()
    if wait:
        sys.stdin.readline()


async def run(kc, code, timeout=plan.get("timeout", 60)):
    out = []

    def hook(msg):
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            out.append(content["text"])
        elif kind == "execute_result":
            out.append(content["data"]["text/plain"])

    reply = await kc.execute_interactive(code, output_hook=hook, timeout=timeout)
    return {"status": reply["content"]["status"], "ename": reply["content"].get("ename"), "out": "".join(out)}


async def interrupt_sleep(km, kc):
    msg_id = kc.execute("import time\nprint('sleeping', flush=True)\ntime.sleep(30)")
    while True:  # interrupt only once the sleep has begun
        msg = await kc.get_iopub_msg(timeout=60)
        if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream"
                and "sleeping" in msg["content"]["text"]):
            break
    started = time.monotonic()
    await km.interrupt_kernel()
    while True:
        reply = await kc.get_shell_msg(timeout=25)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    return {"status": reply["content"]["status"], "ename": reply["content"].get("ename"),
            "seconds": time.monotonic() - started}


def readable(path):
    try:
        with open(path, "rb") as f:
            f.read()
        return True
    except OSError as exc:
        return type(exc).__name__


def listening(pid):
    import psutil
    try:
        connections = psutil.Process(pid).net_connections("tcp")
    except psutil.Error as exc:
        return type(exc).__name__
    return sorted({c.laddr.port for c in connections if c.status == psutil.CONN_LISTEN})


async def main():
    if plan.get("try_fork"):
        from mlworkshop.fastpath.provisioner import ForkRefused, fork_kernel
        try:
            kernel = await fork_kernel(os.environ["MLW_KERNEL_FORK_SOCKET"],
                                       [sys.executable, "-m", "ipykernel_launcher", "-f", "/nonexistent.json"],
                                       dict(os.environ), os.getcwd())
        except ForkRefused as exc:
            emit("fork_refused", message=str(exc))
        else:
            emit("fork_accepted", pid=kernel.pid)
            kernel.kill()
    from jupyter_client.manager import AsyncKernelManager

    km = AsyncKernelManager(kernel_name="python3")
    await km.start_kernel(cwd=plan["cwd"])
    process = km.provisioner.process
    umask = os.umask(0)
    os.umask(umask)
    emit("started", wait=plan.get("hold", False), kind=type(process).__name__, kernel_pid=process.pid,
         client_pid=os.getpid(), client_nice=os.nice(0), client_umask=umask,
         client_nofile=resource.getrlimit(resource.RLIMIT_NOFILE),
         own_environ_readable=readable(f"/proc/{process.pid}/environ"),
         ports=[km.shell_port, km.iopub_port, km.stdin_port, km.control_port, km.hb_port],
         listening=listening(process.pid))
    kc = km.client()
    kc.start_channels()
    await kc.wait_for_ready(timeout=60)
    for name, code in plan.get("code", {}).items():
        emit("ran", name=name, **await run(kc, code))
    if plan.get("interrupt"):
        emit("interrupted", **await interrupt_sleep(km, kc))
        emit("ran", name="after_interrupt", **await run(kc, "6*7"))
    if plan.get("restart"):
        await km.restart_kernel()
        await kc.wait_for_ready(timeout=60)
        process = km.provisioner.process
        emit("restarted", wait=True, kind=type(process).__name__, kernel_pid=process.pid)
        emit("ran", name="after_restart", **await run(kc, "import os; print(os.getpid())"))
    if plan.get("hold_before_shutdown"):
        emit("holding", wait=True)
    kc.stop_channels()
    await km.shutdown_kernel()
    emit("shut_down", kernel_pid=process.pid)


asyncio.run(main())
"""

# Run inside the kernel: what it is and where it runs.
PROBE = r"""
import json, os, resource, sys
_umask = os.umask(0); os.umask(_umask)
import mlw_cwd_module

def _welcomed():
    # a second subscriber to everything (the client subscribed first) gets an iopub_welcome too
    import time, zmq
    from ipykernel.connect import get_connection_info
    info = get_connection_info(unpack=True)
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.connect(f"{info['transport']}://{info['ip']}:{info['iopub_port']}")
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    deadline = time.monotonic() + 10
    try:
        while sub.poll(max(0, deadline - time.monotonic()) * 1000):
            if any(b"iopub_welcome" in frame for frame in sub.recv_multipart()):
                return True
        return False
    finally:
        sub.close(0)
print(json.dumps({
    "pid": os.getpid(), "ppid": os.getppid(), "uid": os.getuid(), "euid": os.geteuid(),
    "gid": os.getgid(), "egid": os.getegid(), "groups": sorted(os.getgroups()), "cwd": os.getcwd(),
    "mark": os.environ.get("MARK"), "jpy_parent_pid": os.environ.get("JPY_PARENT_PID"),
    "nice": os.nice(0), "umask": _umask, "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
    "sid": os.getsid(0), "pgid": os.getpgid(0), "cwd_module": mlw_cwd_module.VALUE,
    "executable": sys.executable, "home": os.environ.get("HOME"), "welcomed": _welcomed(),
}))
"""


class Lab:
    """A folder every account can traverse, an account prefix, and the accounts made in it."""

    def __init__(self):
        self.tag = "kf" + secrets.token_hex(3)
        self.prefix = self.tag + "-"
        self.root = Path(tempfile.mkdtemp(prefix="mlw-kf-", dir="/tmp"))
        os.chmod(self.root, 0o755)
        self.client = self.root / "client.py"
        self.client.write_text(CLIENT)
        self.client.chmod(0o644)
        self.accounts: list[str] = []
        self.groups: list[str] = []
        self.clients: list[subprocess.Popen] = []

    def group(self, name: str) -> str:
        group = f"{self.tag}-{name}"
        subprocess.run(["groupadd", group], check=True, capture_output=True)
        self.groups.append(group)
        return group

    def account(
        self, name: str, student: bool = True, groups: tuple[str, ...] = ()
    ) -> pwd.struct_passwd:
        """A student account (<prefix><name>) or, with student=False, one outside the prefix."""
        account = self.prefix + name if student else f"{self.tag}x{name}"
        home = self.root / "home" / account
        self.accounts.append(account)
        cmd = ["useradd", "-M", "-d", str(home), "-s", "/bin/sh"]
        if groups:
            cmd += ["-G", ",".join(groups)]
        subprocess.run([*cmd, account], check=True, capture_output=True)
        entry = pwd.getpwnam(account)
        (self.root / "home").mkdir(mode=0o755, exist_ok=True)
        work = home / "work"
        work.mkdir(parents=True)
        (work / "mlw_cwd_module.py").write_text("VALUE = 'imported from the kernel cwd'\n")
        for path in (home, work, work / "mlw_cwd_module.py"):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        home.chmod(0o700)
        return entry

    def client_env(
        self, account: pwd.struct_passwd, socket_path: str | None, **extra: str
    ) -> dict[str, str]:
        """What a user's server has: the hub's scrubbed variables (so the same interpreter-start
        settings as the fork server), the account's home, and the fork socket."""
        env = fork_server_env(dict(os.environ))
        env.update(
            HOME=account.pw_dir, USER=account.pw_name, LOGNAME=account.pw_name, SHELL="/bin/sh"
        )
        if socket_path is not None:
            env.update(
                {SOCKET_ENV: socket_path, "JUPYTER_DEFAULT_PROVISIONER_NAME": PROVISIONER_NAME}
            )
        env.update(extra)
        return env

    def start_client(
        self,
        account: pwd.struct_passwd,
        plan: dict,
        env: dict[str, str],
        nice: int = 0,
        shell: str = "",
    ) -> Client:
        """Run the client as `account` (runuser, as root starts a user's server), optionally at a
        nice value and after shell commands (umask, ulimit) that its kernel should inherit."""
        log = open(self.root / f"client-{len(self.clients)}.log", "wb")
        cmd = ["runuser", "-u", account.pw_name, "--"]
        if nice:
            cmd += ["nice", "-n", str(nice)]
        cmd += [
            "env",
            "-i",
            *(f"{k}={v}" for k, v in env.items()),
            "bash",
            "-c",
            f'{shell}\nexec "$@"',
            "client",
            sys.executable,
            str(self.client),
            json.dumps(plan),
        ]
        # unbuffered: event() waits on the pipe itself, so no line may sit unseen in a buffer
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, cwd="/", bufsize=0
        )
        log.close()
        self.clients.append(proc)
        return Client(proc, self.root / f"client-{len(self.clients) - 1}.log")

    def cleanup(self) -> None:
        for proc in self.clients:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        remove_accounts(self.accounts)
        for group in self.groups:
            subprocess.run(["groupdel", group], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


class Client:
    def __init__(self, proc: subprocess.Popen, log: Path):
        self.proc, self.log = proc, log
        self.selector = selectors.DefaultSelector()
        self.selector.register(proc.stdout, selectors.EVENT_READ)

    def event(self, expected: str, timeout: float = 90) -> dict:
        """The client's next event, which must be `expected`."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.selector.select(left):
                raise AssertionError(f"no {expected!r} event within {timeout} s\n{self.output()}")
            line = self.proc.stdout.readline().decode()
            if not line:
                self.proc.wait(timeout=30)
                raise AssertionError(
                    f"client exited ({self.proc.returncode}) before {expected!r}\n{self.output()}"
                )
            if line.startswith(MARKER):
                event = json.loads(line[len(MARKER) :])
                assert event["event"] == expected, (
                    f"{event}, expected {expected!r}\n{self.output()}"
                )
                return event

    def resume(self) -> None:
        self.proc.stdin.write(b"\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = 90) -> None:
        try:
            assert self.proc.wait(timeout=timeout) == 0, f"client failed\n{self.output()}"
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"client still running after {timeout} s\n{self.output()}"
            ) from None

    def output(self) -> str:
        return f"--- client stderr (and its kernel's output) ---\n{self.log.read_text(errors='replace')[-6000:]}"


class ForkServer:
    """The fork server as the hub starts it (fastpath.client.ForkServer.start), in the lab's folder."""

    def __init__(self, lab: Lab):
        self.socket = str(lab.root / "forkserver.sock")
        self.kernels = str(lab.root / "kernels.sock")
        self.log_path = lab.root / "forkserver.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mlworkshop.fastpath.server",
                    self.socket,
                    "--kernels",
                    self.kernels,
                    "--students",
                    lab.prefix,
                ],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=fork_server_env(dict(os.environ)),
                cwd="/",
            )
        self.pid = self.proc.pid
        deadline = time.monotonic() + 120
        while not os.path.exists(self.kernels):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"the fork server did not become ready\n{self.log()}")
            time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def children(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.pid).children()
        except psutil.NoSuchProcess:
            return []

    def wait_childless(self, timeout: float = 15) -> list[psutil.Process]:
        """The fork server's children once none is left, or whatever is still there at the deadline."""
        deadline = time.monotonic() + timeout
        while (children := self.children()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return children

    def stop(self) -> None:
        leftovers = []
        try:
            leftovers = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            pass
        if self.proc.stdin:
            self.proc.stdin.close()  # as when the hub exits
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for child in leftovers:  # kernels it forked (a failed test may leave some)
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass


@pytest.fixture
def lab():
    lab = Lab()
    try:
        yield lab
    finally:
        lab.cleanup()


@pytest.fixture
def forkserver(lab):
    server = ForkServer(lab)
    try:
        yield server
    finally:
        server.stop()
        print(f"--- fork server log ---\n{server.log()[-6000:]}")  # shown when a test fails


def gone(proc: psutil.Process, timeout: float = 15) -> bool:
    """Whether this very process (pid and start time) has ended, waiting up to `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


# --- a. a student's kernel is forked, as the student, with the student's settings ------------


def test_student_kernel_is_forked_with_the_clients_identity(lab, forkserver):
    extra = lab.group("extra")
    alice = lab.account("alice", groups=(extra,))
    cwd = f"{alice.pw_dir}/work"
    mark = "mark-" + secrets.token_hex(4)
    client = lab.start_client(
        alice,
        {"cwd": cwd, "code": {"probe": PROBE, "sum": "1+1"}, "interrupt": True, "restart": True},
        # JPY_PARENT_PID as if the server itself had been started by a kernel: a forked kernel drops it
        lab.client_env(alice, forkserver.kernels, MARK=mark, JPY_PARENT_PID="1"),
        nice=7,
        shell="umask 027\nulimit -n 512",
    )

    started = client.event("started")
    assert started["kind"] == "ForkedKernel", client.output()
    kernel = psutil.Process(started["kernel_pid"])
    assert kernel.ppid() == forkserver.pid, "the kernel is the fork server's child"
    assert kernel.name() == "mlw-kernel", "ps and top tell a forked kernel from its server"
    assert started["kernel_pid"] not in {
        p.pid for p in psutil.Process(started["client_pid"]).children(recursive=True)
    }
    assert started["own_environ_readable"] is True, (
        "the account's own server can read its kernel's /proc"
    )
    # started means every socket bound (protocol.ready_report): a server that connects earlier
    # loses the kernel's first status messages and its first cell waits for the next nudge
    assert set(started["ports"]) <= set(started["listening"]), started
    assert (started["client_nice"], started["client_umask"], started["client_nofile"]) == (
        7,
        0o027,
        [512, 512],
    )

    probe = client.event("ran")
    assert probe["name"] == "probe" and probe["status"] == "ok", probe
    info = last_json(probe["out"])
    assert info["pid"] == started["kernel_pid"]
    assert info["ppid"] == forkserver.pid and info["ppid"] != started["client_pid"]
    assert (info["uid"], info["euid"]) == (alice.pw_uid, alice.pw_uid)
    assert (info["gid"], info["egid"]) == (alice.pw_gid, alice.pw_gid)
    assert set(info["groups"]) == set(os.getgrouplist(alice.pw_name, alice.pw_gid))
    assert grp.getgrnam(extra).gr_gid in info["groups"] and 0 not in info["groups"]
    assert info["cwd"] == cwd and info["cwd_module"] == "imported from the kernel cwd"
    assert info["mark"] == mark and info["home"] == alice.pw_dir
    assert info["jpy_parent_pid"] is None, (
        "JPY_PARENT_PID is dropped: the kernel watches its connection instead"
    )
    assert info["nice"] == started["client_nice"] == 7
    assert info["umask"] == started["client_umask"] == 0o027
    assert info["nofile"] == [512, 512]
    assert info["sid"] == info["pgid"] == info["pid"], (
        "the kernel leads its own session and process group"
    )
    assert info["executable"] == sys.executable
    # every new IOPub subscriber is greeted (fastpath/kernel_app.py): a browser's connection need
    # not wait for jupyter_server's second nudge, half a second later, before its first cell runs
    assert info["welcomed"] is True
    assert kernel.uids().real == alice.pw_uid and kernel.nice() == 7  # as root sees it

    total = client.event("ran")
    assert (total["name"], total["status"], total["out"]) == ("sum", "ok", "2")

    interrupted = client.event("interrupted")
    assert interrupted["status"] == "error" and interrupted["ename"] == "KeyboardInterrupt", (
        interrupted
    )
    after = client.event("ran")
    assert (after["name"], after["out"]) == ("after_interrupt", "42"), (
        "the kernel survives an interrupt"
    )

    restarted = client.event("restarted")
    assert restarted["kind"] == "ForkedKernel" and restarted["kernel_pid"] != started["kernel_pid"]
    assert gone(kernel), "restart left the old kernel running"
    new_kernel = psutil.Process(restarted["kernel_pid"])
    assert new_kernel.ppid() == forkserver.pid and new_kernel.uids().real == alice.pw_uid
    client.resume()
    after = client.event("ran")
    assert after["name"] == "after_restart" and int(after["out"]) == restarted["kernel_pid"]

    client.event("shut_down")
    assert gone(new_kernel), "shutdown left the kernel running"
    client.finish()
    assert forkserver.wait_childless() == []


# --- b. a kernel does not outlive the server that asked for it --------------------------------


def test_kernel_exits_when_its_client_is_killed(lab, forkserver):
    alice = lab.account("alice")
    client = lab.start_client(
        alice,
        {"cwd": f"{alice.pw_dir}/work", "hold": True},
        lab.client_env(alice, forkserver.kernels),
    )
    started = client.event("started")
    assert started["kind"] == "ForkedKernel", client.output()
    kernel = psutil.Process(started["kernel_pid"])
    assert kernel.ppid() == forkserver.pid

    os.kill(started["client_pid"], signal.SIGKILL)
    assert gone(kernel, timeout=20), "the kernel outlived the server that asked for it"
    client.proc.wait(timeout=30)
    assert forkserver.wait_childless() == []
    assert forkserver.proc.poll() is None, "the fork server itself keeps running"


# --- c. refusals: root, and accounts that are not this hub's students ------------------------


def test_account_outside_the_prefix_is_refused_and_starts_cold(lab, forkserver):
    mallory = lab.account("mallory", student=False)
    assert not mallory.pw_name.startswith(lab.prefix)
    client = lab.start_client(
        mallory,
        {"cwd": f"{mallory.pw_dir}/work", "try_fork": True, "hold": True, "code": {"sum": "1+1"}},
        lab.client_env(mallory, forkserver.kernels),
    )
    refused = client.event("fork_refused")
    assert (
        f"account {mallory.pw_name!r} is not one of this hub's users ({lab.prefix}*)"
        in refused["message"]
    )

    started = client.event("started")
    assert started["kind"] == "Popen", "the kernel falls back to a process of its own"
    kernel = psutil.Process(started["kernel_pid"])
    assert kernel.ppid() == started["client_pid"] and kernel.uids().real == mallory.pw_uid
    assert forkserver.wait_childless() == [], "the fork server kept a process for a refused account"
    assert not [
        p
        for p in psutil.process_iter(["uids", "ppid"])
        if p.info["uids"]
        and p.info["uids"].real == mallory.pw_uid
        and p.info["ppid"] == forkserver.pid
    ]
    client.resume()
    assert client.event("ran")["out"] == "2"
    client.event("shut_down")
    client.finish()
    assert "kernel refused: account" in forkserver.log()


async def test_root_is_refused(lab, forkserver):
    secret = "root-request-" + secrets.token_hex(8)
    with pytest.raises(ForkRefused, match="no kernel is forked for root"):
        await fork_kernel(
            forkserver.kernels,
            [sys.executable, "-m", "ipykernel_launcher", "-f", "/nonexistent.json"],
            {"MLW_ROOT_SECRET": secret, "PATH": os.environ.get("PATH", "")},
            "/",
        )
    assert forkserver.wait_childless() == [], "a refused child stayed behind"
    assert "kernel refused: no kernel is forked for root" in forkserver.log()
    assert "Traceback" not in forkserver.log()
    assert forkserver.proc.poll() is None


# --- d. one student cannot reach another's kernel --------------------------------------------


def test_another_student_cannot_signal_or_read_a_kernel(lab, forkserver):
    alice, bob = lab.account("alice"), lab.account("bob")
    client = lab.start_client(
        alice,
        {"cwd": f"{alice.pw_dir}/work", "hold": True, "code": {"sum": "1+1"}},
        lab.client_env(alice, forkserver.kernels),
    )
    started = client.event("started")
    assert started["kind"] == "ForkedKernel", client.output()
    pid = started["kernel_pid"]
    assert started["own_environ_readable"] is True

    probe = f"""
import json, os
result = {{}}
try:
    os.kill({pid}, 0)
    result["kill"] = "allowed"
except OSError as exc:
    result["kill"] = type(exc).__name__
for name in ("environ", "mem", "cwd"):
    try:
        if name == "cwd":
            os.listdir("/proc/{pid}/cwd")
        else:
            with open("/proc/{pid}/" + name, "rb") as f:
                f.read(1)
        result[name] = "allowed"
    except OSError as exc:
        result[name] = type(exc).__name__
print(json.dumps(result))
"""
    as_bob = subprocess.run(
        ["runuser", "-u", bob.pw_name, "--", sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert as_bob.returncode == 0, as_bob.stderr
    assert json.loads(as_bob.stdout) == {
        "kill": "PermissionError",
        "environ": "PermissionError",
        "mem": "PermissionError",
        "cwd": "PermissionError",
    }
    assert psutil.Process(pid).is_running()
    client.resume()
    assert client.event("ran")["out"] == "2"
    client.event("shut_down")
    client.finish()


# --- e. what a request carried never reaches the fork server's memory -----------------------


def test_fork_server_memory_never_holds_a_request(lab, forkserver):
    alice = lab.account("alice")
    secret = "mlw-secret-" + secrets.token_hex(16)
    client = lab.start_client(
        alice,
        {
            "cwd": f"{alice.pw_dir}/work",
            "hold_before_shutdown": True,
            "code": {"secret": "import os; print(os.environ['MLW_TEST_SECRET'])"},
        },
        lab.client_env(alice, forkserver.kernels, MLW_TEST_SECRET=secret),
    )
    started = client.event("started")
    assert started["kind"] == "ForkedKernel", client.output()
    assert client.event("ran")["out"].strip() == secret, (
        "the request (and its secret) reached the kernel"
    )
    client.event("holding")
    assert memory_contains(started["kernel_pid"], secret.encode()), (
        "the scan finds the secret where it is"
    )
    assert not memory_contains(forkserver.pid, secret.encode()), (
        "the fork server holds what a request carried"
    )
    client.resume()
    client.event("shut_down")
    client.finish()
    assert not memory_contains(forkserver.pid, secret.encode())


# --- f. without a fork server, or for a kernel a fork cannot be, kernels start cold ----------


def test_missing_fork_socket_falls_back_to_a_cold_kernel(lab):
    alice = lab.account("alice")
    client = lab.start_client(
        alice,
        {"cwd": f"{alice.pw_dir}/work", "code": {"sum": "1+1"}, "try_fork": True},
        lab.client_env(alice, str(lab.root / "no-such.sock")),
    )
    refused = client.event("fork_refused")
    assert "did not answer" in refused["message"] and "no-such.sock" in refused["message"]
    started = client.event("started")
    assert started["kind"] == "Popen"
    assert client.event("ran")["out"] == "2"
    client.event("shut_down")
    client.finish()


def test_kernel_with_other_interpreter_settings_starts_cold(lab, forkserver):
    """PYTHONPATH differs from the fork server's: only a fresh interpreter honours it."""
    alice = lab.account("alice")
    extra = lab.root / "extra-path"
    extra.mkdir(mode=0o755)
    (extra / "mlw_from_pythonpath.py").write_text("VALUE = 'from PYTHONPATH'\n")
    (extra / "mlw_from_pythonpath.py").chmod(0o644)
    env = lab.client_env(alice, forkserver.kernels)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(extra), env.get("PYTHONPATH")]))
    code = "import mlw_from_pythonpath; print(mlw_from_pythonpath.VALUE)"
    client = lab.start_client(
        alice,
        {"cwd": f"{alice.pw_dir}/work", "try_fork": True, "hold": True, "code": {"import": code}},
        env,
    )
    refused = client.event("fork_refused")
    assert "needs a fresh Python process" in refused["message"]
    started = client.event("started")
    assert started["kind"] == "Popen"
    assert psutil.Process(started["kernel_pid"]).ppid() == started["client_pid"]
    assert forkserver.wait_childless() == [], "the child that answered 'cold' stayed behind"
    client.resume()
    assert client.event("ran")["out"].strip() == "from PYTHONPATH"
    client.event("shut_down")
    client.finish()


# --- where a forked kernel once differed from a cold one (bugs these tests found) ---------------


def test_kernel_survives_a_write_to_a_closed_pipe(lab, forkserver):
    alice = lab.account("alice")
    signals = "import signal; print(signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN)"
    write = """
import os
r, w = os.pipe()
os.close(r)
try:
    os.write(w, b"x")
except BrokenPipeError:
    print("BrokenPipeError")
"""
    client = lab.start_client(
        alice,
        {
            "cwd": f"{alice.pw_dir}/work",
            "timeout": 15,
            "code": {"signals": signals, "write": write, "after": "1+1"},
        },
        lab.client_env(alice, forkserver.kernels),
    )
    assert client.event("started")["kind"] == "ForkedKernel", client.output()
    assert client.event("ran")["out"].strip() == "True", (
        "SIGPIPE is ignored, as in any Python process"
    )
    assert client.event("ran", timeout=40)["out"].strip() == "BrokenPipeError"
    assert client.event("ran")["out"] == "2"
    client.event("shut_down")
    client.finish()


def test_kernel_reads_the_students_matplotlib_settings(lab, forkserver):
    pytest.importorskip("matplotlib")
    alice = lab.account("alice")
    config = Path(alice.pw_dir) / ".config" / "matplotlib"
    config.mkdir(parents=True)
    (config / "matplotlibrc").write_text("figure.dpi: 42\n")
    for path in (config.parent, config, config / "matplotlibrc"):
        os.chown(path, alice.pw_uid, alice.pw_gid)
    code = """
import json, matplotlib
print(json.dumps({"dpi": matplotlib.rcParams["figure.dpi"], "configdir": matplotlib.get_configdir(),
                  "cachedir": matplotlib.get_cachedir()}))
"""
    client = lab.start_client(
        alice,
        {"cwd": f"{alice.pw_dir}/work", "code": {"mpl": code}},
        lab.client_env(alice, forkserver.kernels),
    )
    assert client.event("started")["kind"] == "ForkedKernel", client.output()
    info = last_json(client.event("ran")["out"])
    client.event("shut_down")
    client.finish()
    assert info["configdir"] == str(config)
    assert info["cachedir"].startswith(alice.pw_dir)
    assert info["dpi"] == 42
