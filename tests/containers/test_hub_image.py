"""The hub image (deploy/docker/Dockerfile.hub) run the way docker-compose.yml runs it: the hub in
a container driving the host's engine through its socket, the site bind-mounted at the same path,
students' containers on a named network calling the hub by its address there.

Opt-in (MLW_TEST_HUB_IMAGE=1): the image is built from Debian's packages (BASE_IMAGE = the
debootstrap base of tests/containers) with apt, npm and pip from the internet, about 5 minutes the
first time; it is cached by a hash of Dockerfile.hub, pyproject.toml and src/.
podman here has no DNS plugin for named networks, so the hub gets a fixed address instead of the
name `hub` that docker-compose.yml uses.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.hubctl import Browser, Server, free_port, make_site_dir, remove_site

from .images import BASE_IMAGE, HOST_CA, REPO, ensure_base, podman

pytestmark = [
    pytest.mark.containers,
    pytest.mark.skipif(
        os.environ.get("MLW_TEST_HUB_IMAGE") != "1",
        reason="opt-in: MLW_TEST_HUB_IMAGE=1 builds the hub image (~5 min the first time)",
    ),
]

PASSWORD = "Compose-class-3"


def hub_image_tag() -> str:
    digest = hashlib.sha256()
    for path in [
        REPO / "deploy/docker/Dockerfile.hub",
        REPO / "pyproject.toml",
        *sorted(
            p for p in (REPO / "src").rglob("*") if p.is_file() and "__pycache__" not in p.parts
        ),
    ]:
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return f"localhost/mlworkshop-hub:test-{digest.hexdigest()[:12]}"


@pytest.fixture(scope="session")
def hub_image(engine):
    return build_hub_image()


def build_hub_image() -> str:
    """The hub image of this tree, built once per content (tests/k8s/test_chart.py runs it in the
    cluster too)."""
    tag = hub_image_tag()
    if podman("image", "exists", tag, check=False).returncode == 0:
        return tag
    ensure_base()
    args = [
        "build",
        "-f",
        str(REPO / "deploy/docker/Dockerfile.hub"),
        "--build-arg",
        f"BASE_IMAGE={BASE_IMAGE}",
        "-t",
        tag,
    ]
    if (
        HOST_CA.exists()
    ):  # a TLS-intercepting proxy: npm and pip need the host's CA during the build
        args += ["-v", f"{HOST_CA}:/etc/ssl/certs/ca-certificates.crt:ro"]
    podman(*args, str(REPO), timeout=1800)
    return tag


def test_hub_in_a_container_spawns_a_student(engine, hub_image, test_image, client):
    site = make_site_dir()
    tag = secrets.token_hex(3)
    network, subnet_byte = f"mlwtest-{tag}", 100 + secrets.randbelow(100)
    hub_ip = f"10.89.{subnet_byte}.10"
    port = free_port()
    socket_path = engine.removeprefix("unix://")
    podman("network", "create", "--subnet", f"10.89.{subnet_byte}.0/24", network)
    name = f"mlwtest-hub-{tag}"
    try:
        podman(
            "run",
            "-d",
            "--name",
            name,
            "--network",
            network,
            "--ip",
            hub_ip,
            "-p",
            f"127.0.0.1:{port}:8000",
            "-v",
            f"{socket_path}:/var/run/docker.sock",
            "-v",
            f"{site}:{site}",
            "-e",
            f"MLWORKSHOP_SITE={site}",
            "-e",
            "MLWORKSHOP_SPAWNER__DOCKER__URL=unix:///var/run/docker.sock",
            "-e",
            f"MLWORKSHOP_SPAWNER__DOCKER__NETWORK={network}",
            "-e",
            f"MLWORKSHOP_SPAWNER__DOCKER__HUB_CONNECT_URL=http://{hub_ip}:8081",
            "-e",
            "MLWORKSHOP_SPAWNER__DOCKER__USER=1000:100",
            "-e",
            f"MLWORKSHOP_SPAWNER__DOCKER__IMAGES=[{{name: default, image: '{test_image}'}}]",
            "-e",
            "MLWORKSHOP_SPAWNER__DOCKER__PULL_POLICY=never",
            "-e",
            f"MLWORKSHOP_SPAWNER__DOCKER__NAME_TEMPLATE=mlwtest-{tag}-{{username}}",
            "-e",
            "MLWORKSHOP_CULLER__ENABLED=false",
            hub_image,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/hub/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail(
                "the hub container did not answer:\n"
                + podman("logs", name, check=False).stderr[-3000:]
            )

        subprocess.run(
            ["podman", "exec", "-i", name, "mlworkshop", "user", "add", "stu", "--password-stdin"],
            input=PASSWORD + "\n",
            text=True,
            check=True,
            capture_output=True,
            env={**os.environ, "CONTAINERS_CONF": "/run/mlworkshop-podman/containers.conf"},
        )
        browser = Browser(url)
        assert browser.login("stu", PASSWORD).status_code == 302
        assert browser.api("POST", "/users/stu/server").status_code in (201, 202)
        browser.wait_ready("stu", timeout=120)
        server = Server(url, "stu", browser.new_token("stu"))
        assert server.write_text("work/hello.txt", "from a container").status_code == 201
        assert (
            Path(site) / "users" / "stu" / "work" / "hello.txt"
        ).read_text() == "from a container"
        student = client.containers(filters={"label": f"org.mlworkshop.site={site}"})
        assert len(student) == 1 and network in student[0]["NetworkSettings"]["Networks"]
        browser.stop_server("stu")
    finally:
        podman("rm", "-f", name, check=False)
        for c in client.containers(all=True, filters={"label": f"org.mlworkshop.site={site}"}):
            client.remove_container(c["Id"], force=True)
        podman("network", "rm", "-f", network, check=False)
        remove_site(Path(site))
