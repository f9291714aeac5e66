"""fastpath.client, the hub's handle on the fork server: the environment it starts the fork
server with (the hub's secrets never reach it)."""

from __future__ import annotations

import sys

from mlworkshop.fastpath.client import fork_server_env
from mlworkshop.fastpath.kernels import needs_fresh_process

KERNEL_ARGV = [sys.executable, "-m", "ipykernel_launcher", "-f", "/run/user/kernel-1.json"]


# --- fork_server_env: the hub's secrets never reach the fork server -------------------------


def test_fork_server_env_keeps_only_what_a_server_needs():
    hub_env = {
        "PATH": "/opt/mlw/bin:/usr/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "LANGUAGE": "en",
        "LC_ALL": "C.UTF-8",
        "LC_CTYPE": "C.UTF-8",
        "TZ": "UTC",
        "TMPDIR": "/var/tmp",
        "PYTHONPATH": "/opt/extra",
        "MLWORKSHOP_HUB__DB_URL": "postgresql://hub:s3cret@db/hub",
        "JUPYTERHUB_CRYPT_KEY": "abcd" * 16,
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI",
        "AWS_ACCESS_KEY_ID": "AKIA",
        "CONFIGPROXY_AUTH_TOKEN": "t",
        "GITHUB_TOKEN": "ghp_x",
        "SSH_AUTH_SOCK": "/tmp/ssh-x/agent.1",
        "MLWORKSHOP_SITE": "/srv/mlw",
        "PYTHONSTARTUP": "/root/.pythonrc",
        "LD_PRELOAD": "/lib/x.so",
        "XLC_FOO": "not a locale",
    }
    env = fork_server_env(hub_env)
    assert env == {
        k: hub_env[k]
        for k in (
            "PATH",
            "HOME",
            "LANG",
            "LANGUAGE",
            "LC_ALL",
            "LC_CTYPE",
            "TZ",
            "TMPDIR",
            "PYTHONPATH",
        )
    }  # (LD_LIBRARY_PATH: the next test)
    assert fork_server_env({}) == {}
    assert hub_env["AWS_SECRET_ACCESS_KEY"] in hub_env.values()  # input untouched


def test_fork_server_env_keeps_what_servers_inherit_and_interpreters_read_at_start():
    from mlworkshop.hub.spawner import LocalSpawner

    hub_env = {
        "PATH": "/usr/bin",
        "LANG": "C.UTF-8",
        "LD_LIBRARY_PATH": "/usr/local/cuda/lib64",
        "PYTHONPATH": "/opt/extra",
    }
    server_env = {k: v for k, v in hub_env.items() if k in LocalSpawner().env_keep}
    assert not needs_fresh_process(KERNEL_ARGV, server_env, fork_server_env(hub_env))
