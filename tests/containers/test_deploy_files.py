"""deploy/docker: the Dockerfiles and docker-compose.yml parse and name real files.

Their bases live on registries (quay.io, Docker Hub) that are not reachable here, so they are
checked by reading them: every stage and build argument is defined, every COPY source exists in
the build context, the compose file has the shape of the Compose spec and points at these files;
and `podman-compose --dry-run build` (where installed) resolves it the way a real build would.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from mlworkshop.cli.images_cmd import TARGETS

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "deploy" / "docker"
DOCKERFILES = ["Dockerfile.user", "Dockerfile.hub"]


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, current = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        word, _, rest = current.partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    assert not current, f"{path.name} ends inside a continued line"
    return out


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_parses_and_copies_real_files(name):
    steps = instructions(DOCKER / name)
    known = {
        "FROM",
        "ARG",
        "ENV",
        "RUN",
        "COPY",
        "ADD",
        "USER",
        "WORKDIR",
        "EXPOSE",
        "CMD",
        "ENTRYPOINT",
        "LABEL",
        "HEALTHCHECK",
        "SHELL",
        "VOLUME",
        "STOPSIGNAL",
        "ONBUILD",
    }
    assert {word for word, _ in steps} <= known, {word for word, _ in steps} - known
    assert steps[0][0] in ("ARG", "FROM")

    args: set[str] = set()
    stages: set[str] = set()
    copies = 0
    for word, rest in steps:
        if word == "ARG":
            args.add(rest.split("=", 1)[0])
        elif word == "ENV":
            for key in re.findall(r"(\w+)=", rest):
                args.add(key)
        elif word == "FROM":
            parts = rest.split()
            image = parts[0]
            for ref in re.findall(r"\$\{(\w+)\}", image):
                assert ref in args, f"{name}: FROM uses ${{{ref}}} before an ARG defines it"
            if image.startswith("base-${"):  # a stage chosen by a build argument
                assert any(s.startswith("base-") for s in stages), (
                    f"{name}: no base-* stages for {image}"
                )
            if len(parts) == 3 and parts[1].upper() == "AS":
                stages.add(parts[2])
        elif word in ("COPY", "ADD"):
            words = shlex.split(rest)
            if any(w.startswith("--from") for w in words):
                continue
            sources = [w for w in words if not w.startswith("--")][:-1]
            for source in sources:
                assert (REPO / source).exists(), (
                    f"{name}: COPY {source} does not exist in the build context"
                )
                copies += 1
        elif word in ("CMD", "ENTRYPOINT") and rest.startswith("["):
            assert yaml.safe_load(rest), f"{name}: {word} is not a JSON list"
    assert copies >= 2, f"{name} should install mlworkshop from the build context"

    if name == "Dockerfile.user":  # every variant `mlworkshop images build` offers has its stage
        for target, (dockerfile, _, build_args) in TARGETS.items():
            if dockerfile == name:
                assert f"base-{build_args['VARIANT']}" in stages, target
        assert any(w == "USER" and not r.startswith(("root", "0")) for w, r in steps[-6:]), (
            "must end as non-root"
        )


COMPOSE_TOP = {
    "version",
    "name",
    "services",
    "networks",
    "volumes",
    "configs",
    "secrets",
    "include",
    "models",
}
COMPOSE_SERVICE = {
    "image",
    "build",
    "restart",
    "ports",
    "volumes",
    "environment",
    "networks",
    "profiles",
    "command",
    "entrypoint",
    "depends_on",
    "healthcheck",
    "user",
    "working_dir",
    "labels",
    "env_file",
    "devices",
    "deploy",
    "container_name",
    "extra_hosts",
    "logging",
    "cap_add",
    "security_opt",
}


def test_compose_file_has_the_spec_shape_and_names_real_files():
    data = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
    assert set(data) <= COMPOSE_TOP, set(data) - COMPOSE_TOP
    assert "hub" in data["services"]
    for name, service in data["services"].items():
        assert set(service) <= COMPOSE_SERVICE, (name, set(service) - COMPOSE_SERVICE)
        build = service.get("build")
        if build:
            context = (DOCKER / build["context"]).resolve()
            assert context == REPO, f"{name}: the build context must be the repository root"
            assert (context / build["dockerfile"]).is_file(), (
                f"{name}: {build['dockerfile']} missing"
            )
        for port in service.get("ports", []):
            assert re.fullmatch(r"(\$\{[^}]+\}|\d+):\d+", str(port)), port
        for volume in service.get("volumes", []):
            assert len(re.sub(r"\$\{[^}]+\}", "X", volume).split(":")) in (2, 3), volume
        for network in service.get("networks", []):
            assert network in data["networks"], f"{name}: network {network} not declared"
        assert isinstance(service.get("environment", {}), dict)

    hub = data["services"]["hub"]
    env = hub["environment"]
    # the site is mounted at the same path inside and out, the hub drives the host's engine
    assert any(v.endswith(":/var/run/docker.sock") for v in hub["volumes"])
    assert (
        "${MLWORKSHOP_SITE:-/srv/mlworkshop}:${MLWORKSHOP_SITE:-/srv/mlworkshop}" in hub["volumes"]
    )
    assert env["MLWORKSHOP_SPAWNER__BACKEND"] == "docker"
    assert env["MLWORKSHOP_SPAWNER__DOCKER__NETWORK"] in data["networks"]
    assert env["MLWORKSHOP_SPAWNER__DOCKER__HUB_CONNECT_URL"] == "http://hub:8081"

    # the environment is a valid mlworkshop config (the same loader the hub uses)
    from mlworkshop.config.loader import env_overrides, validate

    overrides = env_overrides({k: str(v) for k, v in env.items()})
    cfg = validate(overrides, "docker-compose.yml")
    assert cfg.spawner.backend == "docker" and cfg.spawner.docker.network == "mlworkshop"


@pytest.mark.skipif(
    shutil.which("podman-compose") is None, reason="podman-compose is not installed"
)
def test_podman_compose_resolves_the_file():
    result = subprocess.run(
        ["podman-compose", "--dry-run", "-f", "docker-compose.yml", "build"],
        cwd=DOCKER,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "-f ../../deploy/docker/Dockerfile.hub ../.." in result.stdout
    assert "-t localhost/mlworkshop-user:latest" in result.stdout
