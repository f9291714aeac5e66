"""Where a student's Python finds packages besides the hub's venv: their own installs and the
admin's shared folder. Standard library only: it runs at every interpreter start in the venv.

The hub's venv has no user site (a venv without system site packages turns it off), so a
student's `pip install` could go nowhere: the venv is root's. Two environment variables, set for
students' servers by the hub (hub/pysite_env.py), change that for their processes only:

- MLWORKSHOP_USER_SITE=1: the user site (~/.local/lib/pythonX.Y/site-packages) is on, ahead of
  the venv as in a plain Python, so `pip install` defaults to a user install into the student's
  home ("Defaulting to user installation because normal site-packages is not writeable"). It
  persists with the home and no other account reads from it. Never for root.
- MLWORKSHOP_SHARED_PACKAGES=DIR: the admin's shared site-packages folder (root's, 0755, filled
  by `mlworkshop packages install`), after the venv, so nothing there can replace a package of
  the hub's own environment.

A fresh interpreter applies them through `mlworkshop-site.pth` in the venv's site-packages
(written by `mlworkshop up`: `ensure_pth`); a server or kernel forked from the fork server, whose
interpreter started as root with neither variable, calls `apply()` itself after taking on the
student's identity and environment. The names start with MLWORKSHOP_, not PYTHON, so a kernel
whose server has them still forks (fastpath.kernels: interpreter-start variables force a cold
start).
"""

from __future__ import annotations

import os
import site
import sys
import sysconfig

USER_SITE_ENV = "MLWORKSHOP_USER_SITE"
SHARED_ENV = "MLWORKSHOP_SHARED_PACKAGES"
PTH_NAME = "mlworkshop-site.pth"
# a .pth line that starts with "import" is executed at start-up; one line, failures silent
PTH_TEXT = "import mlworkshop.pysite as _mlw_site; _mlw_site.apply()\n"


def _venv_index(path: list[str]) -> int:
    """Where this environment's own site-packages start in `path` (the user site goes before).
    From sys.prefix, not site.getsitepackages(): during start-up (a .pth) Debian's site module
    has not yet switched its prefixes to the venv's."""
    prefixes = tuple({os.path.join(sys.prefix, ""), os.path.join(sys.exec_prefix, "")})
    for i, entry in enumerate(path):
        if entry.startswith(prefixes) and ("site-packages" in entry or "dist-packages" in entry):
            return i
    return len(path)


def apply(environ: dict[str, str] | None = None) -> None:
    """Put this process's user site and the shared folder on sys.path, as `environ` asks."""
    environ = os.environ if environ is None else environ
    site.USER_BASE = site.USER_SITE = None  # recomputed from this process's HOME, not root's
    if environ.get(USER_SITE_ENV) == "1" and os.geteuid() != 0 and not sys.flags.no_user_site:
        site.ENABLE_USER_SITE = True
    if site.ENABLE_USER_SITE:
        user_site = site.getusersitepackages()
        if os.path.isdir(user_site) and user_site not in sys.path:
            before = list(sys.path)
            site.addsitedir(user_site)
            added = [p for p in sys.path if p not in before]
            at = _venv_index(before)
            sys.path[:] = before[:at] + added + before[at:]
    shared = environ.get(SHARED_ENV)
    if shared and os.path.isdir(shared) and shared not in sys.path:
        site.addsitedir(shared)


def shared_site_packages(prefix: str) -> str:
    """The site-packages folder `pip install --prefix PREFIX` fills, for this Python."""
    scheme = "venv" if "venv" in sysconfig.get_scheme_names() else "posix_prefix"
    return sysconfig.get_path("purelib", scheme, vars={"base": prefix, "platbase": prefix})


def pth_path() -> str:
    return os.path.join(sysconfig.get_path("purelib"), PTH_NAME)


def ensure_pth() -> str | None:
    """Write the start-up hook into this venv's site-packages if it is missing or differs.
    Returns what it did, or None when nothing was needed. OSError when the venv is not writable."""
    path = pth_path()
    try:
        with open(path) as fh:
            if fh.read() == PTH_TEXT:
                return None
    except FileNotFoundError:
        pass
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as fh:
        fh.write(PTH_TEXT)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return f"wrote {path} (students' own and shared packages)"
