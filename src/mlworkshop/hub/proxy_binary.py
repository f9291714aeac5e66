"""Where configurable-http-proxy is: its own module, importing nothing of JupyterHub, so that
`mlworkshop doctor` and `up` can look for it without loading the hub (over a second)."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]


def proxy_command() -> list[str]:
    """configurable-http-proxy from the repo's node_modules (make install), else from PATH."""
    local = REPO_ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
    if local.exists():
        return [str(local)]
    found = shutil.which("configurable-http-proxy")
    return [found] if found else [str(local)]
