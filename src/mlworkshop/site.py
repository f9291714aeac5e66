"""The site folder: where one hub keeps its config, secrets, state, content and user files.

<site>/mlworkshop.yaml   <site>/secrets/ (0700, files 0600)   <site>/state/ (0700)
<site>/content/{lessons,datasets,models}   <site>/users/<name>/   <site>/submissions/<name>/
<site>/logs/   <site>/run/kernels.sock (users' servers ask for forked kernels here)
"""

from __future__ import annotations

import json
import os
import secrets as pysecrets
import shutil
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pydantic import BaseModel

from .config import CONFIG_FILE, MLWorkshopConfig

ROOT_SITE = Path("/srv/mlworkshop")
# made once by init_site (package_index_password: the local package index's root, packages.index)
SECRETS = ("cookie_secret", "proxy_auth_token", "cli_api_token", "package_index_password")
CONTENT_KINDS = ("lessons", "datasets", "models")
USAGE_DB_NAME = "usage.sqlite"


@dataclass(frozen=True)
class Site:
    root: Path

    @property
    def config_file(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def users(self) -> Path:
        return self.root / "users"

    @property
    def submissions(self) -> Path:
        return self.root / "submissions"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def kernel_socket(self) -> Path:
        """Where users' servers ask the fork server for kernels (<site>/run/, 0755)."""
        return self.root / "run" / "kernels.sock"

    def content(self, cfg: MLWorkshopConfig) -> Path:
        return cfg.workspace.content_dir or self.root / "content"

    def db_url(self, cfg: MLWorkshopConfig) -> str:
        return cfg.hub.db_url or f"sqlite:///{self.state / 'jupyterhub.sqlite'}"

    @property
    def usage_dir(self) -> Path:
        """The usage service's own folder (its account's, 0700; made by `up`, hub/usage_storage.py)."""
        return self.root / "usage"

    @property
    def usage_sqlite(self) -> Path:
        """<site>/usage/usage.sqlite once `mlworkshop up` has made that folder; until then (a site
        from before it, or one never started) <site>/state/usage.sqlite, which `up` moves over."""
        return (
            self.usage_dir / USAGE_DB_NAME
            if self.usage_dir.is_dir()
            else self.state / USAGE_DB_NAME
        )

    def usage_db_url(self, cfg: MLWorkshopConfig) -> str:
        """The usage database: usage.db_url, else SQLite in the usage service's folder. The hub's
        hooks, the usage service and the CLI all ask the site, so none of them imports another."""
        return cfg.usage.db_url or f"sqlite:///{self.usage_sqlite}"

    @property
    def usage_service_port_file(self) -> Path:
        """The usage service's loopback port when usage.service_port is 0: picked once by init."""
        return self.state / "usage_service_port"

    def read_secret(self, name: str) -> str:
        """A secret `init` made, only read (hub/configure.py sets values; it creates nothing)."""
        try:
            return (self.secrets / name).read_text().strip()
        except FileNotFoundError:
            raise SiteNotReady(f"{self.secrets / name} is missing") from None

    def usage_service_port(self) -> int:
        """The port `init` picked for the usage service (usage_service_port_file)."""
        try:
            return int(self.usage_service_port_file.read_text().strip())
        except FileNotFoundError:
            raise SiteNotReady(f"{self.usage_service_port_file} is missing") from None
        except ValueError:
            raise SiteNotReady(
                f"{self.usage_service_port_file} does not hold a port number"
            ) from None

    def secret(self, name: str, nbytes: int = 32) -> str:
        """A generated secret, made once (0600) and then kept; never printed or logged."""
        path = self.secrets / name
        if path.exists():
            return path.read_text().strip()
        self.secrets.mkdir(mode=0o700, parents=True, exist_ok=True)
        value = pysecrets.token_hex(nbytes)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(value + "\n")
        return value


class SiteNotReady(RuntimeError):
    """Something `mlworkshop init` makes is missing; str() says what and how to make it."""

    def __init__(self, what: str):
        super().__init__(
            f"{what}. Run `mlworkshop init` on this site (it makes the site's secrets and "
            "ports once; `mlworkshop up` runs it too)."
        )


def free_port_below_ephemeral() -> int:
    """A free loopback port below Linux's ephemeral range (32768+), so an outgoing connection
    never holds it when the hub restarts."""
    import random
    import socket

    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def default_site_path(environ: Mapping[str, str], euid: int) -> Path:
    """--site, else MLWORKSHOP_SITE, else /srv/mlworkshop for root and ./site for anyone else."""
    if environ.get("MLWORKSHOP_SITE"):
        return Path(environ["MLWORKSHOP_SITE"])
    return ROOT_SITE if euid == 0 else Path("site")


def resolve_site(option: Path | None, environ: Mapping[str, str] | None = None) -> Site:
    environ = os.environ if environ is None else environ
    path = option if option is not None else default_site_path(environ, os.geteuid())
    return Site(path.expanduser().absolute())


def render_config_template(model: type[BaseModel] = MLWorkshopConfig, indent: int = 0) -> str:
    """mlworkshop.yaml with every option at its default and its description as a comment."""
    lines: list[str] = []
    if indent == 0:
        lines += [
            "# mlworkshop.yaml: every option with its default. Change a value and restart the hub",
            "# (`mlworkshop config validate` checks the file; `mlworkshop config schema` is its JSON Schema).",
            "# Any option can also be set from the environment: MLWORKSHOP_<SECTION>__<KEY>=value.",
        ]
    pad = " " * indent
    defaults = model().model_dump(mode="json")
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            lines.append(f"{pad}{name}:")
            lines.append(render_config_template(annotation, indent + 2))
            continue
        if field.description:
            lines.append(f"{pad}# {field.description}")
        value = defaults[name]
        lines.append(f"{pad}{name}: {_yaml_value(value)}")
    return "\n".join(lines) + ("\n" if indent == 0 else "")


def _yaml_value(value: object) -> str:
    """JSON is valid YAML, and json.dumps writes every default (lists of mappings too) exactly."""
    return json.dumps(value, ensure_ascii=False)


def bundled_lessons() -> Path | None:
    """The lessons that ship inside the package, if this build has them."""
    path = Path(str(resources.files("mlworkshop"))) / "bundled" / "lessons"
    return path if path.is_dir() and any(path.iterdir()) else None


def init_site(site: Site) -> list[str]:
    """Create what is missing; never overwrite config, secrets or data. Returns what it did."""
    done: list[str] = []
    site.root.mkdir(parents=True, exist_ok=True)
    os.chmod(site.root, 0o755)  # user accounts must be able to reach users/, content/, submissions/
    if not site.config_file.exists():
        fd = os.open(site.config_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(render_config_template())
        done.append(f"wrote {site.config_file}")
    # It may hold database passwords (hub.db_url), and user accounts can reach the site root.
    if stat.S_IMODE(site.config_file.stat().st_mode) & 0o077:
        os.chmod(site.config_file, 0o600)
        done.append(f"made {site.config_file} readable by its owner only")
    for folder, mode in (
        (site.secrets, 0o700),
        (site.state, 0o700),
        (site.logs, 0o750),
        (site.users, 0o755),
        (site.submissions, 0o755),
    ):
        if not folder.exists():
            folder.mkdir(mode=mode, parents=True)
            done.append(f"made {folder}")
        os.chmod(folder, mode)
    for name in SECRETS:
        if not (site.secrets / name).exists():
            site.secret(name)
            done.append(f"generated secret {name} (0600)")
    if (
        not site.usage_service_port_file.exists()
    ):  # kept, so the same site always maps to the same config
        port = free_port_below_ephemeral()
        site.usage_service_port_file.write_text(f"{port}\n")
        done.append(
            f"picked loopback port {port} for the usage service (when usage.service_port is 0)"
        )
    from .config import load_config  # the file now exists

    content = site.content(load_config(site.root))
    for kind in CONTENT_KINDS:
        folder = content / kind
        if not folder.exists():
            folder.mkdir(parents=True)
            done.append(f"made {folder}")
    lessons = bundled_lessons()
    target = content / "lessons"
    if lessons and not any(target.iterdir()):
        shutil.copytree(lessons, target, dirs_exist_ok=True)
        done.append(f"copied the bundled lessons into {target}")
    return done
