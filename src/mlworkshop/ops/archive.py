"""The backup archive's format, shared by backup and restore.

A gzip-compressed tar (readable by `tar xzf` anywhere), members in this order:

    mlworkshop-backup.json   what the backup is: format, when, from where, which databases, the
                             site's system accounts (by name: uids differ between machines)
    mlworkshop.yaml secrets/ state/ usage/ db/ content/ submissions/ users/
    MANIFEST.json            every member above with its type, and for files size and sha256

The manifest comes last because the files are hashed while they are read (once, not twice);
restore reads the whole archive before anything leaves its staging folder, so the order costs
nothing there. Each member's name is relative and starts with one of TOP_LEVEL.

Compression: a gzip stream of several gzip members (RFC 1952 allows it; gzip, tar and Python
read it as one stream). A file whose start does not compress (weights, images, archives) goes
out at level 0 in a member of its own: zlib spends ~15x longer failing to shrink random bytes
than copying them, and homes are mostly such files.
"""

from __future__ import annotations

import zlib
from pathlib import PurePosixPath

FORMAT = 1
META = "mlworkshop-backup.json"
MANIFEST = "MANIFEST.json"
TOP_LEVEL = (
    "mlworkshop.yaml",
    "secrets",
    "state",
    "usage",
    "db",
    "content",
    "submissions",
    "users",
)
HUB_SQLITE = "state/jupyterhub.sqlite"
USAGE_SQLITE = "usage/usage.sqlite"
HUB_PGDUMP = "db/hub.pgdump"
USAGE_PGDUMP = "db/usage.pgdump"

# Files at least this large are sampled: if their first SAMPLE bytes shrink by less than 10% at
# level 1, they are stored (level 0).
SAMPLE = 64 * 1024
INCOMPRESSIBLE = 0.9


class ArchiveError(RuntimeError):
    """The archive is not a usable mlworkshop backup; str() says why."""


def check_member_name(name: str) -> str:
    """A member name restore may write under the site: relative, no '..', no empty or odd part,
    and under one of the site's own top-level entries. Anything else means a damaged or forged
    archive, and the restore stops before writing."""
    if not name or "\x00" in name or name.startswith("/") or "\\" in name:
        raise ArchiveError(f"the archive holds a member with an unsafe name: {name!r}")
    parts = PurePosixPath(name).parts
    if any(part in ("", ".", "..") for part in parts) or str(PurePosixPath(*parts)) != name.rstrip(
        "/"
    ):
        raise ArchiveError(f"the archive holds a member with an unsafe name: {name!r}")
    if name in (META, MANIFEST):
        return name
    if parts[0] not in TOP_LEVEL:
        raise ArchiveError(f"the archive holds {name!r}, which is not part of a site")
    return name.rstrip("/")


class GzipMembersWriter:
    """A write-only file object that gzips what it is given into `raw`, and can start a new gzip
    member at another level between tar entries. `tell()` is the uncompressed position (tarfile
    asks for it)."""

    def __init__(self, raw, level: int):
        self.raw = raw
        self.level = level
        self._current = level
        self._z = self._new(level)
        self._pos = 0

    @staticmethod
    def _new(level: int):
        return zlib.compressobj(
            level, zlib.DEFLATED, 16 + zlib.MAX_WBITS
        )  # 16+: gzip header and trailer

    def set_level(self, level: int) -> None:
        if level == self._current:
            return
        self.raw.write(self._z.flush(zlib.Z_FINISH))
        self._z = self._new(level)
        self._current = level

    def write(self, data) -> int:
        out = self._z.compress(data)
        if out:
            self.raw.write(out)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.raw.write(self._z.flush(zlib.Z_FINISH))


def compresses(sample: bytes) -> bool:
    """Whether a file that starts with `sample` is worth compressing."""
    if len(sample) < 4096:
        return True
    return len(zlib.compress(sample, 1)) < len(sample) * INCOMPRESSIBLE
