"""mlworkshop.local_kernel: a real IPython kernel started as LocalKernel offers no debugger and
refuses debug requests (the attack: tests/attacks/test_attack_kernel_sockets.py)."""

from __future__ import annotations

import psutil
from jupyter_client.manager import start_new_async_kernel

from mlworkshop.local_kernel import KERNEL_CLASS, REFUSAL


async def test_the_kernel_neither_offers_nor_starts_the_debugger():
    manager, client = await start_new_async_kernel(
        extra_arguments=[f"--IPKernelApp.kernel_class={KERNEL_CLASS}"]
    )
    try:
        info = (await client.kernel_info(reply=True))["content"]
        assert "debugger" not in info["supported_features"] and info["debugger"] is False
        request = client.session.msg(
            "debug_request",
            {"type": "request", "seq": 1, "command": "initialize", "arguments": {}},
        )
        client.control_channel.send(request)
        reply = (await client.control_channel.get_msg(timeout=30))["content"]
        assert reply == {
            "type": "response",
            "request_seq": 1,
            "success": False,
            "command": "initialize",
            "message": REFUSAL,
        }
        kernel = psutil.Process(manager.provisioner.pid)
        assert not [
            p for p in kernel.children(recursive=True) if "debugpy" in " ".join(p.cmdline())
        ]
        result = await client.execute_interactive("1+1", timeout=30)
        assert result["content"]["status"] == "ok"
    finally:
        client.stop_channels()
        await manager.shutdown_kernel()
