"""fastpath.kernels, the fork server's kernel half: who may ask (check_peer), the identity a
kernel takes on (/proc parsing, privileges_of), when a fork is not good enough
(needs_fresh_process) and the request on the kernel socket (whole, in time, checked).

No fork server here (tests/integration/test_kernel_fork.py has that).
"""

from __future__ import annotations

import os
import pwd
import re
import resource
import socket
import subprocess
import sys

import pytest

from mlworkshop.fastpath import kernels
from mlworkshop.fastpath.kernels import (
    PeerIdentity,
    PeerRefused,
    check_peer,
    identity_from_status,
    needs_fresh_process,
    parse_proc_limits,
    parse_proc_status,
)
from mlworkshop.fastpath.protocol import KernelRequest

INF = resource.RLIM_INFINITY

INF = resource.RLIM_INFINITY

# /proc/<pid>/status of a student's server (abridged: the fields around the ones read are kept)
STUDENT_STATUS = """\
Name:\tjupyter-lab
Umask:\t0027
State:\tS (sleeping)
Tgid:\t4242
Ngid:\t0
Pid:\t4242
PPid:\t1
TracerPid:\t0
Uid:\t1001\t1001\t1001\t1001
Gid:\t1001\t1001\t1001\t1001
FDSize:\t64
Groups:\t27 1001 2000 
NStgid:\t4242
VmPeak:\t  123456 kB
Threads:\t3
SigQ:\t0/63502
CapEff:\t0000000000000000
Seccomp:\t0
Cpus_allowed_list:\t0-3
voluntary_ctxt_switches:\t150
"""

# /proc/<pid>/limits as Linux writes it (header, fixed-width columns, trailing blanks)
LIMITS = """\
Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max file size             unlimited            unlimited            bytes     
Max data size             unlimited            unlimited            bytes     
Max stack size            8388608              unlimited            bytes     
Max core file size        0                    unlimited            bytes     
Max resident set          unlimited            unlimited            bytes     
Max processes             63502                63502                processes 
Max open files            1024                 524288               files     
Max locked memory         8388608              8388608              bytes     
Max address space         unlimited            unlimited            bytes     
Max file locks            unlimited            unlimited            locks     
Max pending signals       63502                63502                signals   
Max msgqueue size         819200               819200               bytes     
Max nice priority         0                    0                    
Max realtime priority     0                    0                    
Max realtime timeout      unlimited            unlimited            us        
"""

KERNEL_ARGV = [sys.executable, "-m", "ipykernel_launcher", "-f", "/run/user/kernel-1.json"]
# --- /proc/<pid>/status ---------------------------------------------------------------------


def test_parse_proc_status_fields():
    fields = parse_proc_status(STUDENT_STATUS)
    assert fields["Uid"] == "1001\t1001\t1001\t1001"
    assert fields["Gid"].split() == ["1001"] * 4
    assert fields["Groups"] == "27 1001 2000"  # surrounding blanks stripped
    assert fields["Umask"] == "0027"
    assert fields["Name"] == "jupyter-lab"
    assert fields["State"] == "S (sleeping)"
    assert fields["Cpus_allowed_list"] == "0-3"  # a value with a dash, not split further


def test_parse_proc_status_tolerates_empty_values_and_junk_lines():
    fields = parse_proc_status("Groups:\t \nnot a field line\n\nUmask:\t0022\n")
    assert fields == {"Groups": "", "Umask": "0022"}


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_parse_proc_status_of_this_process():
    with open("/proc/self/status") as f:
        fields = parse_proc_status(f.read())
    assert [int(x) for x in fields["Uid"].split()[:2]] == [os.getuid(), os.geteuid()]
    assert int(fields["Gid"].split()[1]) == os.getegid()
    assert int(fields["Pid"]) == os.getpid()
    umask = os.umask(0)
    os.umask(umask)
    assert int(fields["Umask"], 8) == umask


# --- identity_from_status: what the kernel vouched for must still be true -------------------


def test_identity_from_status_accepts_matching_credentials():
    ident = identity_from_status(4242, 1001, 1001, parse_proc_status(STUDENT_STATUS))
    assert ident == PeerIdentity(pid=4242, uid=1001, gid=1001, groups=[27, 1001, 2000], umask=0o027)
    assert (
        ident.nice == 0 and ident.rlimits == {}
    )  # filled in later from getpriority and /proc limits


def test_identity_from_status_without_groups_or_umask():
    status = {"Uid": "1001 1001 1001 1001", "Gid": "1001 1001 1001 1001", "Groups": ""}
    ident = identity_from_status(7, 1001, 1001, status)
    assert ident.groups == [] and ident.umask == 0o022


@pytest.mark.parametrize(
    "uid_line, gid_line",
    [
        (
            "1002\t1002\t1002\t1002",
            "1001\t1001\t1001\t1001",
        ),  # the pid now belongs to another account
        (
            "1001\t0\t0\t0",
            "1001\t1001\t1001\t1001",
        ),  # same real uid, effective root (a setuid program)
        ("0\t1001\t1001\t1001", "1001\t1001\t1001\t1001"),  # real uid differs
        ("1001\t1001\t1001\t1001", "1001\t1002\t1002\t1002"),  # effective gid differs
        ("1001\t1001\t1001\t1001", "1001\t0\t0\t0"),  # effective gid root
    ],
)
def test_identity_from_status_refuses_a_changed_identity(uid_line, gid_line):
    status = parse_proc_status(
        STUDENT_STATUS.replace("Uid:\t1001\t1001\t1001\t1001", f"Uid:\t{uid_line}").replace(
            "Gid:\t1001\t1001\t1001\t1001", f"Gid:\t{gid_line}"
        )
    )
    with pytest.raises(PeerRefused, match="4242 changed identity"):
        identity_from_status(4242, 1001, 1001, status)


def test_identity_from_status_refuses_a_status_without_credentials():
    with pytest.raises(PeerRefused):
        identity_from_status(4242, 1001, 1001, {"Name": "gone"})


# --- /proc/<pid>/limits ---------------------------------------------------------------------


def test_parse_proc_limits_reads_soft_and_hard_with_unlimited():
    limits = parse_proc_limits(LIMITS)
    assert limits == {
        resource.RLIMIT_CPU: (INF, INF),
        resource.RLIMIT_FSIZE: (INF, INF),
        resource.RLIMIT_DATA: (INF, INF),
        resource.RLIMIT_STACK: (8388608, INF),
        resource.RLIMIT_CORE: (0, INF),
        resource.RLIMIT_NPROC: (63502, 63502),
        resource.RLIMIT_NOFILE: (1024, 524288),
        resource.RLIMIT_MEMLOCK: (8388608, 8388608),
        resource.RLIMIT_AS: (INF, INF),
    }
    # lines with similar names ("Max file locks" vs "Max file size") are not confused
    assert set(limits) == set(kernels.RLIMITS.values())


def test_parse_proc_limits_ignores_unknown_and_missing_lines():
    header_and_other = (
        "Limit  Soft Limit  Hard Limit  Units\nMax file locks  unlimited  unlimited  locks\n"
    )
    assert parse_proc_limits(header_and_other) == {}
    assert parse_proc_limits(
        "Max open files            512                  512                  files     \n"
    ) == {resource.RLIMIT_NOFILE: (512, 512)}


@pytest.mark.skipif(not os.path.exists("/proc/self/limits"), reason="needs Linux /proc")
def test_parse_proc_limits_of_this_process_matches_getrlimit():
    with open("/proc/self/limits") as f:
        limits = parse_proc_limits(f.read())
    assert set(limits) == set(kernels.RLIMITS.values())
    for limit, values in limits.items():
        assert values == resource.getrlimit(limit), limit


# --- check_peer: who may have a kernel forked -----------------------------------------------


@pytest.fixture
def accounts(monkeypatch):
    """A fake account database: root, two students of prefix kt-, one other account."""
    entries = {0: "root", 1001: "kt-alice", 1002: "kt-bob", 1003: "ktalice", 1004: "mallory"}

    def getpwuid(uid):
        if uid not in entries:
            raise KeyError(f"getpwuid(): uid not found: {uid}")
        return pwd.struct_passwd(
            (entries[uid], "x", uid, uid, "", f"/home/{entries[uid]}", "/bin/sh")
        )

    monkeypatch.setattr(pwd, "getpwuid", getpwuid)
    return entries


def test_check_peer_root_hub_allows_prefixed_students(accounts):
    check_peer(1001, 0, "kt-")
    check_peer(1002, 0, "kt-")


@pytest.mark.parametrize(
    "uid, reason",
    [
        (0, "no kernel is forked for root"),
        (1003, "'ktalice' is not one of this hub's users"),  # the prefix without its dash
        (1004, "'mallory' is not one of this hub's users"),
        (5555, "uid 5555 has no account"),
    ],
)
def test_check_peer_root_hub_refuses_root_and_other_accounts(accounts, uid, reason):
    with pytest.raises(PeerRefused, match=reason):
        check_peer(uid, 0, "kt-")


def test_check_peer_root_hub_without_a_prefix_refuses_everyone(accounts):
    for uid in (1001, 1004):
        with pytest.raises(PeerRefused, match="not one of this hub's users"):
            check_peer(uid, 0, "")


def test_check_peer_hub_not_root_allows_only_its_own_user(accounts):
    check_peer(1004, 1004, "kt-")  # a personal hub: its user's kernels, prefix or not
    check_peer(1004, 1004, "")
    for uid in (0, 1001, 1003):
        with pytest.raises(PeerRefused, match=f"uid {uid} is not the hub's user"):
            check_peer(uid, 1004, "kt-")


def test_check_peer_with_the_real_account_database():
    with pytest.raises(PeerRefused, match="root"):
        check_peer(0, 0, "r")  # root is refused even when its name has the prefix
    others = [e for e in pwd.getpwall() if e.pw_uid != 0]
    if not others:
        pytest.skip("no account besides root on this machine")
    other = others[0]
    check_peer(other.pw_uid, 0, other.pw_name[:2])
    with pytest.raises(PeerRefused, match=re.escape(repr(other.pw_name))):
        check_peer(other.pw_uid, 0, "mlw-no-such-prefix-")
    unused = max(e.pw_uid for e in pwd.getpwall()) + 1
    with pytest.raises(PeerRefused, match=f"uid {unused} has no account"):
        check_peer(unused, 0, "mlw-")


# --- needs_fresh_process / forkable ---------------------------------------------------------


def test_needs_fresh_process_standard_kernel_is_forkable():
    assert not needs_fresh_process(KERNEL_ARGV, {"PATH": "/usr/bin"}, {"PATH": "/bin"})
    assert not needs_fresh_process(KERNEL_ARGV[:3], {}, {})
    assert not needs_fresh_process(
        KERNEL_ARGV + ["--debug"], {"MARK": "x"}, {}
    )  # ordinary variables do not matter


@pytest.mark.parametrize(
    "argv",
    [
        ["/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "k.json"],  # another Python
        ["python3", "-m", "ipykernel_launcher", "-f", "k.json"],
        [sys.executable, "-m", "ipykernel", "-f", "k.json"],  # another module
        [sys.executable, "-m", "bash_kernel", "-f", "k.json"],
        [
            sys.executable,
            "-X",
            "dev",
            "-m",
            "ipykernel_launcher",
            "-f",
            "k.json",
        ],  # interpreter options
        [sys.executable, "-m"],
        [sys.executable],
        [],
    ],
)
def test_needs_fresh_process_for_other_commands(argv):
    assert needs_fresh_process(argv, {}, {})


@pytest.mark.parametrize(
    "name",
    [
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "PYTHONPATH",
        "PYTHONHASHSEED",
        "MALLOC_ARENA_MAX",
        "GLIBC_TUNABLES",
    ],
)
def test_needs_fresh_process_when_start_time_settings_differ(name):
    startup = {"PATH": "/usr/bin", name: "/opt/a"}
    assert not needs_fresh_process(
        KERNEL_ARGV, {"PATH": "/usr/bin", name: "/opt/a"}, startup
    )  # equal
    assert needs_fresh_process(
        KERNEL_ARGV, {"PATH": "/usr/bin", name: "/opt/b"}, startup
    )  # changed
    assert needs_fresh_process(KERNEL_ARGV, {"PATH": "/usr/bin"}, startup)  # removed
    assert needs_fresh_process(
        KERNEL_ARGV, {"PATH": "/usr/bin", name: "/opt/a"}, {"PATH": "/usr/bin"}
    )  # added


# --- the request on the kernel socket: whole, and in time (an idle peer holds no process) --------
@pytest.fixture
def pair():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    yield ours, theirs
    ours.close()
    theirs.close()


def test_read_request_whole_request_with_fds(pair):
    ours, theirs = pair
    r, w = os.pipe()
    socket.send_fds(theirs, [b'{"argv": ["x"], "env": {}, '], [r, w])
    theirs.sendall(b'"cwd": "/"}\n')
    request, fds = kernels.read_request(ours, timeout=30)
    assert request == KernelRequest(argv=["x"], env={}, cwd="/") and len(fds) == 2
    assert ours.gettimeout() is None  # the kernel then watches the connection without a timeout
    for fd in (r, w, *fds):
        os.close(fd)


@pytest.mark.parametrize("sent", [b"", b'{"argv": ["python"'], ids=["idle", "half-open"])
def test_read_request_gives_up_on_a_peer_that_sends_no_whole_request(pair, sent):
    ours, theirs = pair
    theirs.sendall(sent)
    with pytest.raises(TimeoutError, match="no whole request within 0.2 s"):
        kernels.read_request(ours, timeout=0.2)
    assert ours.gettimeout() is None


def test_read_request_closes_fds_of_a_request_it_gives_up_on(pair):
    ours, theirs = pair
    r, w = os.pipe()
    socket.send_fds(theirs, [b'{"argv"'], [r])
    theirs.close()
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(ValueError, match="closed before a whole request"):
        kernels.read_request(ours, timeout=30)
    assert set(os.listdir("/proc/self/fd")) <= before  # the received copy of `r` is closed again
    os.close(r)
    os.close(w)


def test_read_request_refuses_a_request_larger_than_any_real_one(pair, monkeypatch):
    ours, theirs = pair
    monkeypatch.setattr(kernels, "MAX_REQUEST", 1000)
    theirs.sendall(b"x" * 2000)
    with pytest.raises(ValueError, match="larger than 1000 bytes"):
        kernels.read_request(ours, timeout=30)


@pytest.mark.parametrize(
    "sent, why",
    [
        (b'{"argv": ["x"], "env": {}}\n', "needs cwd"),
        (b'{"argv": ["x"], "env": {"A": 1}, "cwd": "/"}\n', "env must map strings to strings"),
        (
            b'{"argv": ["x"], "env": {}, "cwd": "/", "uid": 0}\n',
            "unknown field",
        ),  # identity is never asked for
        (b'{"argv": [], "env": {}, "cwd": "/"}\n', "argv must not be empty"),
        (b'["x"]\n', "JSON object"),
    ],
)
def test_read_request_refuses_a_request_that_is_not_a_kernel_request(pair, sent, why):
    ours, theirs = pair
    r, w = os.pipe()
    socket.send_fds(theirs, [sent], [r])
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(ValueError, match=why):
        kernels.read_request(ours, timeout=30)
    assert set(os.listdir("/proc/self/fd")) <= before  # the received copy of `r` is closed again
    os.close(r)
    os.close(w)


# --- privileges_of: what drop_privileges() is given for a kernel -----------------------------


def test_privileges_of_copies_the_peer_never_a_higher_priority():
    own = os.getpriority(os.PRIO_PROCESS, 0)
    ident = PeerIdentity(
        pid=1,
        uid=1001,
        gid=1002,
        groups=[27, 1002],
        umask=0o027,
        nice=own + 5,
        rlimits={resource.RLIMIT_NOFILE: (1024, 4096)},
    )
    args = kernels.privileges_of(ident)
    assert args["nice"] == 5 and args["umask"] == 0o027 and args["dumpable"] is True
    assert args["rlimits"] == {resource.RLIMIT_NOFILE: (1024, 4096)}
    if os.getuid() == 0:
        assert (args["identity"].uid, args["identity"].gid, list(args["identity"].groups)) == (
            1001,
            1002,
            [27, 1002],
        )
    else:
        assert args["identity"] is None  # a hub that is not root changes no ids
    higher = PeerIdentity(pid=1, uid=1001, gid=1002, nice=own - 5)
    assert (
        kernels.privileges_of(higher)["nice"] == 0
    )  # a kernel never runs ahead of the fork server


def test_a_forked_kernels_first_cell_finds_the_tokenizer_compiled():
    """The fork server compiles the tokenizer's grammar once (share_first_cell_work), so a forked
    kernel's first cell compiles nothing of it again (a fresh interpreter, as the fork server)."""
    script = (
        "import tokenize\n"
        "from IPython.core.inputtransformer2 import TransformerManager\n"
        "from mlworkshop.fastpath.kernels import share_first_cell_work\n"
        "before = tokenize._compile.cache_info().currsize\n"
        "share_first_cell_work()\n"
        "warm = tokenize._compile.cache_info()\n"
        "TransformerManager().transform_cell('x = 2 * 21\\n')\n"
        "after = tokenize._compile.cache_info()\n"
        "print(before, warm.currsize, after.misses - warm.misses)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    before, warm, misses = map(int, out.stdout.split())
    assert (before, misses) == (0, 0) and warm >= 1, out.stdout
