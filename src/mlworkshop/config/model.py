"""The one typed config model: every part of mlworkshop reads its options from here.

Knows nothing about JupyterHub. Every field has a default, a description and a type, so the
model doubles as the JSON Schema that `mlworkshop config schema` prints for editors.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from .accelerators import AcceleratorsConfig
from .auth_header import HeaderAuthConfig
from .auth_idp import AzureADConfig, GitHubConfig, LDAPConfig, OIDCConfig
from .base import Section, check_db_url
from .docker import DockerBackendConfig
from .kubernetes import KubernetesBackendConfig
from .packages import PackagesConfig
from .usage import UsageConfig

# A root hub's own loopback ports sit below 1024 (net.ipv4.ip_unprivileged_port_start): no student
# account can bind them, not even while the hub restarts.
ROOT_INTERNAL_PORT = 881
ROOT_PROXY_API_PORT = 882


SELF_SIGNED = "self-signed"


class HttpsConfig(Section):
    """HTTPS at the proxy (hub/tls.py checks the files, makes the self-signed ones, and hands the
    proxy a copy of the key only its account can read)."""

    cert: str | None = Field(
        None,
        description="HTTPS certificate: the absolute path of a PEM file holding the certificate and "
        "its chain (e.g. certbot's /etc/letsencrypt/live/NAME/fullchain.pem), or self-signed for "
        "one from a CA of this site's own (made once, kept in <site>/secrets/tls/; `mlworkshop up` "
        "prints the CA file students' browsers must trust). Empty: plain HTTP.",
    )
    key: str | None = Field(
        None,
        description="The certificate's private key: absolute path of an unencrypted PEM file (e.g. "
        "certbot's privkey.pem). Checked at every `mlworkshop up` and copied where only the proxy's "
        "account can read it. Empty with cert: self-signed.",
    )
    redirect_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="A plain-HTTP port (e.g. 80) that only answers with a redirect (301) to HTTPS on "
        "hub.port. It listens on every address. Empty: no plain-HTTP port.",
    )
    names: list[str] = Field(
        default_factory=list,
        description="Extra host names and IP addresses the self-signed certificate is valid for "
        "(hub.ip, localhost, 127.0.0.1, this machine's host names and main address are always in it).",
    )

    @property
    def enabled(self) -> bool:
        return bool(self.cert)

    @property
    def self_signed(self) -> bool:
        return self.cert == SELF_SIGNED

    # Which of cert and key go together is checked at `mlworkshop up` (hub/tls.py), not here:
    # `config set` changes one key at a time, and every order of two changes must be accepted.
    @field_validator("cert", "key")
    @classmethod
    def _absolute_file(cls, value: str | None, info) -> str | None:
        if value in (None, ""):
            return None
        if value == SELF_SIGNED and info.field_name == "key":
            raise ValueError(
                f"must be a path; for a self-signed certificate set hub.https.cert to {SELF_SIGNED} "
                "and leave hub.https.key empty"
            )
        if value != SELF_SIGNED and not Path(value).is_absolute():
            raise ValueError(
                f"must be an absolute path such as /etc/letsencrypt/live/NAME/fullchain.pem"
                f" (or {SELF_SIGNED} for the certificate)"
            )
        return value


class HubConfig(Section):
    ip: str = Field("127.0.0.1", description="Address the hub's public proxy listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port the hub's public proxy listens on.")
    internal_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Loopback port of the hub's API (proxy and servers call it to check every "
        f"token). Empty: {ROOT_INTERNAL_PORT} when the hub runs as root, 8081 otherwise. Below 1024 "
        "only root can bind it, so while the hub is stopped no student can answer in its place "
        "and accept made-up tokens for everyone's servers.",
    )
    proxy_api_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description=f"Loopback port of the proxy's API. Empty: {ROOT_PROXY_API_PORT} when the hub runs "
        "as root (no student can stand in for the proxy and collect its token), 8001 otherwise.",
    )
    base_url: str = Field("/", description="URL prefix of the hub, e.g. /jupyter/.")
    db_url: str | None = Field(
        None,
        description="Hub database URL (e.g. postgresql://user@127.0.0.1:5432/hub). "
        "Empty: SQLite in <site>/state/jupyterhub.sqlite.",
    )
    nice: int = Field(
        -5,
        ge=-20,
        le=19,
        description="CPU priority of the hub, its proxy and its services (Unix nice; below 0 needs a "
        "root hub). Ahead of users' servers, so pages and logins stay quick while a whole class "
        "starts at once: -5 kept /hub/health p99 under 200 ms with 60 students on 2 cores, 0 "
        "let it reach 500 ms (bench/rush.py).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level of the hub."
    )
    https: HttpsConfig = Field(default_factory=HttpsConfig)
    language: Literal["auto", "zh-CN", "zh-TW", "en"] = Field(
        "auto",
        description="Language of the hub's pages, the usage dashboards and the default of "
        "JupyterLab's menus: zh-CN (simplified Chinese), zh-TW (traditional Chinese), en, or auto "
        "(each browser's own language, English for one that names none of these). Students can "
        "still switch JupyterLab's language in its Settings menu.",
    )

    @property
    def api_port(self) -> int:
        """The hub API's port this process uses: hub.internal_port, or the default for its user."""
        if self.internal_port is not None:
            return self.internal_port
        return ROOT_INTERNAL_PORT if os.geteuid() == 0 else 8081

    @property
    def proxy_port(self) -> int:
        """The proxy API's port: hub.proxy_api_port, or the default for this process's user."""
        if self.proxy_api_port is not None:
            return self.proxy_api_port
        return ROOT_PROXY_API_PORT if os.geteuid() == 0 else 8001

    @field_validator("ip")
    @classmethod
    def _ip_is_an_address(cls, value: str) -> str:
        if value in ("", "localhost"):
            return value
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError("must be an IP address such as 127.0.0.1 or 0.0.0.0") from None
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url_slashes(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/', e.g. / or /jupyter/")
        return value if value.endswith("/") else value + "/"

    @field_validator("db_url")
    @classmethod
    def _db_url_scheme(cls, value: str | None) -> str | None:
        return check_db_url(value)


class AuthConfig(Section):
    method: Literal["native", "oidc", "github", "azuread", "ldap", "header"] = Field(
        "native",
        description="Who says who a user is. native: mlworkshop's own accounts (signup, "
        "approval, passwords, lockout). oidc: any OpenID Connect provider; github: GitHub OAuth; "
        "azuread: Azure AD / Entra ID; ldap: an LDAP directory; header: a company SSO in front "
        "of the hub (a username header from the reverse proxy, or a who-am-I URL). Each method's "
        "options are in the section of the same name.",
    )
    header: HeaderAuthConfig = Field(
        default_factory=HeaderAuthConfig,
        validate_default=True,
        description="auth.method header: a reverse proxy's username header, or a who-am-I URL.",
    )
    open_signup: bool = Field(
        False, description="Let new signups log in without an admin's approval."
    )

    @field_validator("header")
    @classmethod
    def _header_complete(cls, value: HeaderAuthConfig, info) -> HeaderAuthConfig:
        """auth.method header needs a trusted proxy or a who-am-I URL (method is checked first)."""
        if info.data.get("method") == "header" and (problem := value.problem()):
            raise ValueError(problem)
        return value

    admin_users: list[str] = Field(
        default_factory=list,
        description="Names that are admins. Their passwords are set with "
        "`mlworkshop user add NAME --admin` or `user reset-password`; nobody can claim them by signing up.",
    )
    min_password_length: int = Field(8, ge=6, le=128, description="Shortest password accepted.")
    password_link_days: int = Field(
        7,
        ge=1,
        le=90,
        description="How long a one-time link to set a password stays valid (the links an admin "
        "makes on the Accounts page or with `mlworkshop user link NAME` for users added on "
        "JupyterHub's Admin page).",
    )

    @field_validator("admin_users")
    @classmethod
    def _admin_names(cls, value: list[str]) -> list[str]:
        """The same rule as signup and the CLI (Ada -> ada), so a bad name is refused here with
        its reason instead of stopping the hub at start."""
        from ..names import BadUsername, normalize_username

        names = []
        for raw in value:
            try:
                names.append(normalize_username(raw))
            except BadUsername as exc:
                raise ValueError(str(exc).rstrip(".")) from None
        return names

    check_common_passwords: bool = Field(
        True, description="Refuse passwords from a list of 10,000 common ones."
    )
    lockout_attempts: int = Field(
        5,
        ge=1,
        le=1000,
        description="Failed logins (per username and client address) before a lockout.",
    )
    lockout_minutes: int = Field(10, ge=1, le=1440, description="How long a lockout lasts.")
    password_hash_cost: int = Field(
        11,
        ge=10,
        le=16,
        description="Argon2id cost of stored passwords: 10 is OWASP's minimum (19 MiB, 2 passes) "
        "and each step up doubles the passes, so the work of a login and of an attacker guessing "
        "from a stolen database (11: ~0.04 CPU-seconds a login, twice OWASP's minimum; 16: ~1.3 "
        "s). Applies to passwords set from now on; passwords stored as bcrypt by earlier versions "
        "still work and are stored again as Argon2id at their next login.",
    )
    oidc: OIDCConfig = Field(default_factory=OIDCConfig)
    github: GitHubConfig = Field(default_factory=GitHubConfig)
    azuread: AzureADConfig = Field(default_factory=AzureADConfig)
    ldap: LDAPConfig = Field(default_factory=LDAPConfig)


class LocalBackendConfig(Section):
    nice: int = Field(
        5,
        ge=0,
        le=19,
        description="CPU priority of user servers and their kernels below the hub's (Unix nice): "
        "the hub and proxy stay responsive when a class runs heavy notebooks. 0: same priority.",
    )
    preload: bool = Field(
        True,
        description="Start servers by forking a process that has already imported JupyterLab "
        "(fast starts, shared memory). false: a fresh Python process per server.",
    )
    fork_kernels: bool = Field(
        True,
        description="Also fork users' IPython kernels from that process (a notebook's kernel is "
        "ready in a fraction of a second, even when a whole class opens one at once); needs "
        "`preload`. false: each kernel is a fresh Python process.",
    )
    max_processes: int = Field(
        2048,
        ge=32,
        le=4_000_000,
        description="Most processes and threads one user's server, kernels and terminals may run "
        "at once (the kernel's pids limit of the user's cgroup; needs a root hub). Threads count: "
        "a JupyterLab holds ~10, a PyTorch kernel one or two per CPU core. A fork bomb stops here. "
        "The user's memory and CPU limits are those of their spawn profile "
        "(accelerators.profiles), the same the usage API reports.",
    )
    user_prefix: str = Field(
        "mlw-",
        pattern=r"^[a-z][a-z0-9_-]{0,7}$",
        description="Prefix of the system account made for each hub user when the hub runs as root.",
    )
    admin_group: str = Field(
        "mlw-admins",
        pattern=r"^[a-z][a-z0-9_-]{0,31}$",
        description="System group of hub admins: may edit shared content and read all submissions.",
    )


class SpawnerConfig(Section):
    backend: Literal["local", "docker", "kubernetes"] = Field(
        "local",
        description="Where user servers run: local (processes on this machine), docker "
        "(a container per user, Docker or podman) or kubernetes (a pod per user; "
        "spawner.kubernetes).",
    )
    default_url: str = Field("/lab", description="Page a user lands on in their server.")
    start_timeout: int = Field(
        120, ge=10, le=3600, description="Seconds a server may take to start."
    )
    http_timeout: int = Field(
        60, ge=5, le=3600, description="Seconds a started server may take to answer HTTP."
    )
    max_concurrent_starts: int = Field(
        0,
        ge=0,
        le=1000,
        description="How many servers may be starting at once; the others wait in line (their "
        "spawn page shows their place) instead of timing out. 0: twice the CPU count.",
    )
    environment: dict[str, str] = Field(
        default_factory=dict, description="Extra environment variables for every user server."
    )
    local: LocalBackendConfig = Field(default_factory=LocalBackendConfig)
    docker: DockerBackendConfig = Field(default_factory=DockerBackendConfig)
    kubernetes: KubernetesBackendConfig = Field(default_factory=KubernetesBackendConfig)


class WorkspaceConfig(Section):
    content_dir: Path | None = Field(
        None,
        description="Folder holding lessons/, datasets/ and models/. Empty: <site>/content.",
    )

    @field_validator("content_dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError("must be an absolute path such as /srv/course/content")
        return value


class CullerConfig(Section):
    enabled: bool = Field(True, description="Stop servers that have been idle too long.")
    timeout: int = Field(
        7200, ge=60, description="Seconds of inactivity before a server is stopped."
    )
    every: int = Field(300, ge=10, description="Seconds between two checks for idle servers.")
    class_prewarm: int = Field(
        600,
        ge=0,
        description="`mlworkshop class start GROUP --at HH:MM` starts the group's servers this many "
        "seconds before the bell.",
    )
    class_grace: int = Field(
        900,
        ge=0,
        description="Seconds after a class's bell that its pre-warmed servers are kept even if "
        "nobody has used them; after that an unused one is stopped (a used one follows `timeout`).",
    )


class BackupConfig(Section):
    dir: Path | None = Field(
        None,
        description="Folder `mlworkshop backup` writes to when given no file, and scheduled backups "
        "go to (made 0700). Empty: <site>/backups.",
    )
    compression_level: int = Field(
        1,
        ge=0,
        le=9,
        description="gzip level of backups (0: none, 9: smallest). Files that do not compress "
        "(weights, images, archives) are stored at 0 whatever this says; 1 keeps notebooks and "
        "code ~20x smaller at a fraction of 6's CPU time.",
    )
    nice: int = Field(
        10,
        ge=0,
        le=19,
        description="CPU priority of the backup process (Unix nice); it also takes the lowest disk "
        "priority, so the hub and students' servers stay responsive while it runs.",
    )
    schedule: str | None = Field(
        None,
        description="When scheduled backups run, as a systemd OnCalendar expression (e.g. daily, "
        "'*-*-* 02:30'); `mlworkshop backup --install-timer` installs the timer. Empty: none.",
    )
    keep: int = Field(
        7,
        ge=1,
        le=10000,
        description="How many scheduled backups to keep in backup.dir (oldest deleted first).",
    )
    homes: bool = Field(True, description="Scheduled backups include every user's home (users/).")

    @field_validator("dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError("must be an absolute path such as /var/backups/mlworkshop")
        return value


class DoctorConfig(Section):
    """`mlworkshop doctor` and its hub-managed watch service (ops/doctor/)."""

    watch_every: int = Field(
        300,
        ge=0,
        le=86400,
        description="Seconds between two runs of the doctor's watch service, which the hub runs "
        "and which repairs what is safe to repair (see fix) and records it in <site>/logs/doctor.log. "
        "0: no watch service.",
    )
    fix: bool = Field(
        True,
        description="The watch service repairs what is safe (content permissions, the fork server, "
        "the usage service, servers the hub wrongly thinks run, orphan processes of students); "
        "false: it only records findings.",
    )
    cert_warn_days: int = Field(
        21, ge=1, le=365, description="Warn this many days before the HTTPS certificate expires."
    )
    backup_max_age_hours: int = Field(
        36,
        ge=1,
        le=8760,
        description="With backup.schedule set: warn when the newest backup in backup.dir is older.",
    )


class MLWorkshopConfig(Section):
    """mlworkshop.yaml: everything an admin can set."""

    hub: HubConfig = Field(default_factory=HubConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    spawner: SpawnerConfig = Field(default_factory=SpawnerConfig)
    workspace: WorkspaceConfig = Field(default_factory=WorkspaceConfig)
    culler: CullerConfig = Field(default_factory=CullerConfig)
    accelerators: AcceleratorsConfig = Field(default_factory=AcceleratorsConfig)
    usage: UsageConfig = Field(default_factory=UsageConfig)
    backup: BackupConfig = Field(default_factory=BackupConfig)
    doctor: DoctorConfig = Field(default_factory=DoctorConfig)
    packages: PackagesConfig = Field(default_factory=PackagesConfig)
