"""JupyterLab's static files, compressed once and sent compressed.

jupyter-server sends JupyterLab's bundles as they are: about 6 MB per student for a first load,
most of it JavaScript that gzip shrinks to a quarter. Compressing per response would cost every
server CPU for the same files; instead the fork server writes a `.gz` beside each compressible
file once (root, in the installation's own folders, which students cannot write), and every
server's static handler sends that file with `Content-Encoding: gzip` to a browser that accepts
it. A browser that does not, or a file with no up-to-date `.gz`, gets the file as before.
"""

from __future__ import annotations

import gzip
import os
import stat
import sys
from pathlib import Path

COMPRESSIBLE = {".js", ".css", ".json", ".svg", ".html", ".txt", ".map", ".mjs", ".wasm"}
MIN_SIZE = 1024  # smaller files gain little and cost a second stat per request


def static_roots() -> list[Path]:
    """Where JupyterLab's static files and every installed extension's live."""
    from jupyter_core.paths import jupyter_path
    from jupyterlab.commands import get_app_dir

    roots = [Path(get_app_dir()) / "static"]
    roots += [Path(p) for p in jupyter_path("labextensions")]
    return [root for root in roots if root.is_dir()]


def _fresh(original: Path, packed: Path) -> bool:
    try:
        return packed.stat().st_mtime >= original.stat().st_mtime
    except FileNotFoundError:
        return False


def precompress(roots: list[Path] | None = None) -> tuple[int, int]:
    """Write `<file>.gz` beside every compressible file that has none (or an older one).
    Returns (files written, files already fresh). Folders this process cannot write (an
    installation it does not own) are left alone: their files are then sent uncompressed."""
    written = fresh = 0
    for root in roots if roots is not None else static_roots():
        if not os.access(root, os.W_OK):
            continue
        for path in root.rglob("*"):
            if (
                path.suffix not in COMPRESSIBLE
                or path.is_symlink()
                or not path.is_file()
                or path.stat().st_size < MIN_SIZE
            ):
                continue
            packed = path.with_name(path.name + ".gz")
            if _fresh(path, packed):
                fresh += 1
                continue
            temporary = packed.with_name(f".{packed.name}.{os.getpid()}")
            try:
                with open(path, "rb") as src, open(temporary, "wb") as out:
                    out.write(gzip.compress(src.read(), compresslevel=9, mtime=0))
                os.chmod(temporary, 0o644)
                os.replace(temporary, packed)
                written += 1
            except OSError as exc:
                temporary.unlink(missing_ok=True)
                print(f"[forkserver] not compressed {path}: {exc}", file=sys.stderr)
    return written, fresh


def precompressed_handler(base):
    """A subclass of jupyter-server's FileFindHandler that sends `<file>.gz` when it is fresh and
    the browser accepts gzip."""

    class PrecompressedFileHandler(base):
        _mlw_original: str | None = None

        def validate_absolute_path(self, root, absolute_path):
            checked = super().validate_absolute_path(root, absolute_path)
            self._mlw_original = None
            if not checked or "gzip" not in self.request.headers.get("Accept-Encoding", ""):
                return checked
            packed = checked + ".gz"
            if Path(checked).suffix in COMPRESSIBLE and _fresh(Path(checked), Path(packed)):
                try:  # tornado sizes the response from the stat that validation keeps
                    stat_result = os.stat(packed)
                except OSError:
                    return checked
                if not stat.S_ISREG(stat_result.st_mode):
                    return checked
                self._stat_result = stat_result
                self._mlw_original = checked
                self.set_header("Content-Encoding", "gzip")
                self.set_header("Vary", "Accept-Encoding")
                return packed
            return checked

        def get_content_type(self):
            if self._mlw_original is None:
                return super().get_content_type()
            sent, self.absolute_path = self.absolute_path, self._mlw_original
            try:
                return super().get_content_type()  # the type of what it unpacks to
            finally:
                self.absolute_path = sent

    PrecompressedFileHandler.__name__ = PrecompressedFileHandler.__qualname__ = (
        "PrecompressedFileHandler"
    )
    return PrecompressedFileHandler


def serve_precompressed() -> None:
    """Make jupyter-server's static routes (its own, JupyterLab's /static/lab, the extensions')
    use the handler above. Call before the server application builds its handlers. Idempotent."""
    import jupyter_server.serverapp as serverapp
    import jupyterlab_server.handlers as lab_handlers

    if getattr(serverapp.FileFindHandler, "__name__", "") == "PrecompressedFileHandler":
        return
    handler = precompressed_handler(serverapp.FileFindHandler)
    serverapp.FileFindHandler = handler
    lab_handlers.FileFindHandler = handler
