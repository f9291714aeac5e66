"""fastpath.kernel_app's module list: a forked kernel lists the fork server's modules from the
list the fork server made once, instead of walking (and so copying) every module object.

The kernels themselves (greeting, ready report, first cell): tests/integration/test_kernel_fork.py
and test_fast_path.py.
"""

from __future__ import annotations

import json
import subprocess
import sys

# A fork server in small: preload, list once, freeze; then two forked children make the listing
# ipykernel's IPythonKernel.__init__ makes, one through the fork server's list, one walking
# sys.modules; each reports its newly written (private) memory and what it listed.
FORKED = """
import gc, json, os, sys
import ipykernel.ipkernel, jupyter_server.serverapp, IPython.core.interactiveshell
from mlworkshop.fastpath import kernel_app

kernel_app.list_modules_once()
gc.collect(); gc.freeze()

def private_kib():
    for line in open("/proc/self/smaps_rollup"):
        if line.startswith("Private_Dirty"):
            return int(line.split()[1])

def listing():  # ipykernel.ipkernel.IPythonKernel.__init__'s, through that module's `sys`
    mods = ipykernel.ipkernel.sys.modules
    return [m.__file__ for m in mods.copy().values() if hasattr(m, "__file__") and m.__file__]

results = {}
for way in ("fork server's list", "walk"):
    read, write = os.pipe()
    if os.fork() == 0:
        import email.mime.text  # imported after the fork: must be listed too
        before = private_kib()
        if way == "walk":
            files = listing()
        else:
            with kernel_app._modules_listed_by_fork_server():
                files = listing()
        grew = private_kib() - before
        restored = ipykernel.ipkernel.sys is sys
        os.write(write, json.dumps([grew, files, restored]).encode())
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 1 << 20):
        chunks.append(chunk)
    results[way] = json.loads(b"".join(chunks))
print(json.dumps(results))
"""


def _forked() -> dict:
    out = subprocess.run(
        [sys.executable, "-c", FORKED], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.splitlines()[-1])


def test_a_forked_kernel_lists_modules_without_copying_them():
    results = _forked()
    listed_grew, listed, restored = results["fork server's list"]
    walked_grew, walked, _ = results["walk"]
    assert restored  # ipykernel.ipkernel's own sys is back once the kernel is made
    assert sorted(listed) == sorted(walked)  # the same files, the post-fork import included
    assert any(f.endswith("email/mime/text.py") for f in listed)
    assert walked_grew > 4096  # KiB: the walk copies the module objects' pages
    assert listed_grew < walked_grew / 8


def test_outside_a_fork_server_the_kernel_walks_sys_modules_itself():
    code = (
        "import sys, ipykernel.ipkernel\n"
        "from mlworkshop.fastpath import kernel_app\n"
        "with kernel_app._modules_listed_by_fork_server():\n"
        "    print(ipykernel.ipkernel.sys is sys)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True"]  # no list made: nothing swapped
