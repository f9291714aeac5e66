"""Usage accounting hooks every backend's spawner calls (issue 5 fills these in).

`usage_started()` runs once the server is up, `usage_stopped(reason)` once it is gone; both
must never raise into the spawn/stop path (a broken usage store must not stop a class).
"""

from __future__ import annotations

from traitlets.config import LoggingConfigurable


class UsageHooks(LoggingConfigurable):
    async def usage_started(self) -> None:
        return None

    async def usage_stopped(self, reason: str = "stopped") -> None:
        return None
