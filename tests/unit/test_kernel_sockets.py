"""mlworkshop.kernel_sockets: a local server's kernels on Unix sockets in a private folder (the
attack it stops: tests/attacks/test_attack_kernel_sockets.py)."""

from __future__ import annotations

import json
import os
import stat
import sys

from mlworkshop.kernel_sockets import (
    FOLDER_PREFIX,
    SOCKET_PATH_MAX,
    LocalKernelSpecManager,
    PrivateKernelManager,
    private_connection_dir,
    remove_private_folders,
    runs_this_ipykernel,
)
from mlworkshop.local_kernel import KERNEL_CLASS


def test_the_folder_is_new_and_only_its_owner_may_enter(tmp_path):
    first, second = private_connection_dir(str(tmp_path)), private_connection_dir(str(tmp_path))
    assert first != second
    for folder in (first, second):
        info = os.lstat(folder)
        assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700
        assert info.st_uid == os.getuid()
        assert os.path.basename(folder).startswith(FOLDER_PREFIX)


def test_only_this_pythons_ipython_kernel_is_changed():
    assert runs_this_ipykernel(["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"])
    assert runs_this_ipykernel([sys.executable, "-m", "ipykernel_launcher", "-f", "x"])
    assert not runs_this_ipykernel(["/opt/conda/envs/r/bin/R", "--slave", "-e", "IRkernel::main()"])
    assert not runs_this_ipykernel(["/opt/other/bin/python", "-m", "ipykernel_launcher"])


def test_the_kernelspec_tells_jupyterlab_there_is_no_debugger():
    spec = LocalKernelSpecManager().get_all_specs()["python3"]["spec"]
    assert spec["metadata"]["debugger"] is False
    assert spec["argv"][1:3] == ["-m", "ipykernel_launcher"]  # otherwise as installed


async def test_a_kernel_runs_on_unix_sockets_in_the_private_folder():
    manager = PrivateKernelManager(connection_dir="/where/jupyter_server/would/put/them")
    assert manager.connection_dir.startswith("/tmp/" + FOLDER_PREFIX)
    kernel_id = await manager.start_kernel()
    kernel = manager.get_kernel(kernel_id)
    client = kernel.client()
    try:
        with open(kernel.connection_file) as f:
            info = json.load(f)
        assert os.path.dirname(kernel.connection_file) == manager.connection_dir
        assert info["transport"] == "ipc"
        assert info["ip"].startswith(manager.connection_dir + "/")
        sockets = [f"{info['ip']}-{info[p]}" for p in ("shell_port", "iopub_port", "hb_port")]
        assert all(len(os.fsencode(s)) <= SOCKET_PATH_MAX for s in sockets)
        client.start_channels()
        await client.wait_for_ready(timeout=60)
        assert all(stat.S_ISSOCK(os.stat(s).st_mode) for s in sockets)
        reply = await client.execute_interactive("1+1", timeout=60, output_hook=_keep)
        assert reply["content"]["status"] == "ok"
        assert _keep.results[-1] == "2"
        assert kernel.format_kernel_cmd(kernel._launch_args["extra_arguments"])[-1] == (
            f"--IPKernelApp.kernel_class={KERNEL_CLASS}"  # kept for a restart too
        )
        assert (await client.kernel_info(reply=True))["content"]["debugger"] is False
    finally:
        client.stop_channels()
        await manager.shutdown_kernel(kernel_id)
    assert os.listdir(manager.connection_dir) == []  # sockets and connection file removed
    remove_private_folders()  # as the server ends: the folder goes too
    assert not os.path.exists(manager.connection_dir)


def _keep(message):
    if message["msg_type"] == "execute_result":
        _keep.results.append(message["content"]["data"]["text/plain"])


_keep.results = []
