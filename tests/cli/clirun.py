"""Running the real `mlworkshop` command in a subprocess, as an admin would."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

MLW = [sys.executable, "-m", "mlworkshop.cli.main"]


@dataclass
class Run:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __str__(self) -> str:
        return f"mlworkshop {' '.join(self.args)} -> {self.returncode}\n--- stdout\n{self.stdout}--- stderr\n{self.stderr}"


def mlw(site: Path | None, *args: str, input: str | None = None, env: dict | None = None) -> Run:
    """One `mlworkshop` call with --site SITE (unless site is None); never raises on failure."""
    full = [*args, "--site", str(site)] if site is not None else list(args)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MLWORKSHOP_")}
    environ.update(env or {})
    result = subprocess.run(
        [*MLW, *full],
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        timeout=120,
        env=environ,
    )
    return Run(tuple(args), result.returncode, result.stdout, result.stderr)


def mlw_here(site: Path | None, *args: str, input: str | None = None) -> Run:
    """The same `main()` entry point with the same arguments, in this process: for the many
    refusal cases, where a new interpreter per case (~1 s of imports) would make the suite slow.
    An exception escaping main() fails the test just as a traceback would."""
    from mlworkshop.cli import main as cli

    full = [*args, "--site", str(site)] if site is not None else list(args)
    stdout, stderr = io.StringIO(), io.StringIO()
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("MLWORKSHOP_")}
    old_argv, old_stdin = sys.argv, sys.stdin
    sys.argv, sys.stdin = ["mlworkshop", *full], io.StringIO(input or "")
    code = 0
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                cli.main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv, sys.stdin = old_argv, old_stdin
        os.environ.update(saved)
    return Run(tuple(args), code, stdout.getvalue(), stderr.getvalue())


def mlw_many(site: Path, calls: list[tuple[tuple[str, ...], str | None]]) -> list[Run]:
    """Independent calls, two at a time (each costs ~1 s of imports; CI machines have few CPUs)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(lambda call: mlw(site, *call[0], input=call[1]), calls))


def assert_refused(run: Run, *fragments: str) -> None:
    """Exit status 2, a message with every fragment, and no traceback."""
    assert run.returncode == 2, run
    assert "Traceback" not in run.output, run
    assert "error:" in run.stderr, run
    for fragment in fragments:
        assert fragment in run.stderr, f"{fragment!r} missing:\n{run}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
