"""The container engine (docker/podman backend) and the accelerators: what is configured against
what this machine has. Nothing here is repaired automatically."""

from __future__ import annotations

from urllib.parse import urlparse

import httpx

from .findings import Context, Finding, ok


def check_backend(ctx: Context) -> list[Finding]:
    cfg = ctx.cfg
    if cfg is None or cfg.spawner.backend != "docker":
        return []
    url = cfg.spawner.docker.url
    parsed = urlparse(url)
    try:
        if parsed.scheme == "unix":
            transport = httpx.HTTPTransport(uds=parsed.path)
            with httpx.Client(transport=transport, timeout=5) as client:
                status = client.get("http://engine/_ping").status_code
        else:
            status = httpx.get(f"http://{parsed.netloc}/_ping", timeout=5).status_code
    except httpx.HTTPError as exc:
        status = f"no answer ({type(exc).__name__}: {exc})"
    if status == 200:
        return [ok("backend", f"the container engine answers at {url}")]
    return [
        Finding(
            "backend",
            "error",
            f"the container engine at {url} ({'spawner.docker.url'}) does not answer ({status}): no server can start.",
            "start it (`systemctl start podman.socket` or `systemctl start docker`), or fix the "
            "socket: `mlworkshop config set spawner.docker.url unix:///run/podman/podman.sock`",
        )
    ]


def check_accelerators(ctx: Context) -> list[Finding]:
    """accelerators.inventory (written by hand) against what detection finds here."""
    cfg = ctx.cfg
    if cfg is None:
        return []
    from ...accelerators.inventory import detect

    acc = cfg.accelerators
    found = detect(acc.model_copy(update={"inventory": [], "detect": True}))
    here = {(d.kind, d.index) for d in found.devices}
    if acc.inventory:
        listed = {(d.kind, d.index) for d in acc.inventory}
        missing = sorted(listed - here)
        if missing:
            return [
                Finding(
                    "accelerators",
                    "error" if not here else "warn",
                    f"accelerators.inventory lists {', '.join(f'{k}:{i}' for k, i in missing)}, which this "
                    f"machine does not show ({'; '.join(found.notes) or 'nothing detected'}): servers "
                    "given them get no device.",
                    "check the driver (`nvidia-smi` / `npu-smi info`), or correct accelerators.inventory "
                    "(`mlworkshop accelerators` shows what is detected)",
                )
            ]
        return [ok("accelerators", f"the {len(listed)} configured device(s) are present")]
    if not acc.detect:
        return [ok("accelerators", "accelerators are off (accelerators.detect false)")]
    if not here:
        return [ok("accelerators", "no accelerators on this machine (CPU only)")]
    return [
        ok(
            "accelerators",
            f"{len(here)} device(s) detected: " + ", ".join(f"{k}:{i}" for k, i in sorted(here)),
        )
    ]
