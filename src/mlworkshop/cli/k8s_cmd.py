"""`mlworkshop k8s values | rbac | nodes | cordon | uncordon | drain | doctor`: the kubernetes
backend for the lab admin (ops/k8s.py, ops/k8s_values.py, ops/k8s_rbac.py do the work).

Wire it with `app.add_typer(k8s_app, name="k8s")` in cli/main.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..config import load_config
from ..kubeapi import KubeError, run
from ..site import resolve_site

k8s_app = typer.Typer(
    help="Kubernetes: chart values, the cluster's nodes (cordon, drain) and a health check.",
    no_args_is_help=True,
)
# piped or logged (no terminal): wide enough that a node's row is one line to read and grep
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)

SiteOpt = Annotated[
    Path | None,
    typer.Option(
        "--site",
        help="Site folder. Default: $MLWORKSHOP_SITE, else ./site (or /srv/mlworkshop as root).",
    ),
]
KubeconfigOpt = Annotated[
    str | None,
    typer.Option("--kubeconfig", help="Kubeconfig to use. Default: spawner.kubernetes.kubeconfig."),
]


def _settings(site: Path | None, kubeconfig: str | None):
    cfg = load_config(resolve_site(site).root)
    k = cfg.spawner.kubernetes
    return cfg, k, kubeconfig if kubeconfig is not None else k.kubeconfig


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f}"


@k8s_app.command("values")
def values_cmd(
    site: SiteOpt = None,
    hub_image: Annotated[
        str,
        typer.Option("--hub-image", help="The hub image (`mlworkshop images build hub`)."),
    ] = "localhost/mlworkshop-hub:latest",
) -> None:
    """Print Zero to JupyterHub values made from mlworkshop.yaml (`> values.yaml`, then
    `helm upgrade --install`)."""
    from ..ops.k8s_values import ValuesError, chart_values

    cfg = load_config(resolve_site(site).root)
    try:
        values = chart_values(cfg, hub_image)
    except ValuesError as exc:
        raise KubeError(str(exc)) from None
    sys.stdout.write(
        "# Zero to JupyterHub values made by `mlworkshop k8s values` from mlworkshop.yaml.\n"
        "# It holds the whole config (secrets too): keep it as private as mlworkshop.yaml.\n"
    )
    _dump_readable(values)


@k8s_app.command("rbac")
def rbac_cmd(
    site: SiteOpt = None,
    service_account: Annotated[
        str,
        typer.Option(
            "--service-account",
            help="The hub's ServiceAccount in spawner.kubernetes.namespace (the chart's: hub).",
        ),
    ] = "hub",
    kubelet_stats: Annotated[
        bool,
        typer.Option(
            "--kubelet-stats",
            help="Also let the hub read each node's kubelet stats (usage CPU/memory samples). "
            "This grants `get nodes/proxy`, which reaches the whole kubelet API of every node.",
        ),
    ] = False,
) -> None:
    """Print the ClusterRole the hub needs beside the chart's namespaced Role: read nodes (GPU/NPU
    profiles) and storage classes (`| kubectl apply -f -`)."""
    import re

    from ..ops.k8s_rbac import hub_cluster_rbac

    # a ServiceAccount's name is a DNS subdomain (RFC 1123): lowercase letters, digits, - and .
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", service_account):
        raise KubeError(
            f"--service-account {service_account!r} is not a Kubernetes ServiceAccount name "
            "(lowercase letters, digits, '-' and '.'). The chart's hub uses `hub`."
        )
    _, k, _ = _settings(site, None)
    manifests = hub_cluster_rbac(k.namespace, service_account, kubelet_stats)
    sys.stdout.write(
        f"# The hub's cluster-wide reads, for ServiceAccount {service_account} in {k.namespace}"
        " (`mlworkshop k8s rbac`).\n"
    )
    _dump_readable({"apiVersion": "v1", "kind": "List", "items": manifests})


def _dump_readable(values) -> None:
    """YAML with the embedded files (mlworkshop.yaml, the extraConfig code) as literal blocks,
    so the values file reads like the files it carries."""
    from ruamel.yaml import YAML
    from ruamel.yaml.scalarstring import LiteralScalarString

    def blocks(node):
        if isinstance(node, dict):
            return {k: blocks(v) for k, v in node.items()}
        if isinstance(node, list):
            return [blocks(v) for v in node]
        if isinstance(node, str) and "\n" in node:
            return LiteralScalarString(node)
        return node

    yaml = YAML()
    yaml.width = 4096
    yaml.dump(blocks(values), sys.stdout)


@k8s_app.command("nodes")
def nodes_cmd(site: SiteOpt = None, kubeconfig: KubeconfigOpt = None) -> None:
    """Each node: ready or cordoned, CPU and memory, GPUs/NPUs allocatable and in use, students."""
    from ..ops.k8s import nodes

    _, k, path = _settings(site, kubeconfig)
    infos = run(path, lambda api: nodes(api, k))
    table = Table(show_lines=False)
    for column in (
        "node",
        "state",
        "CPU req/alloc",
        "memory GiB req/alloc",
        "devices used/alloc",
        "students",
    ):
        table.add_column(column)
    for n in infos:
        state = ("ready" if n.ready else "NOT READY") + (", cordoned" if n.cordoned else "")
        devices = ", ".join(f"{r} {used}/{alloc}" for r, (alloc, used) in n.devices.items())
        table.add_row(
            n.name,
            state,
            f"{n.cpu_requested:g}/{n.cpu:g}",
            f"{_gib(n.memory_requested)}/{_gib(n.memory)}",
            devices or "-",
            f"{len(n.students)}: {', '.join(sorted(n.students))}" if n.students else "0",
        )
    out.print(table)


@k8s_app.command("cordon")
def cordon_cmd(
    node: Annotated[str, typer.Argument(help="Node name (`mlworkshop k8s nodes`).")],
    site: SiteOpt = None,
    kubeconfig: KubeconfigOpt = None,
) -> None:
    """Stop new servers from starting on NODE (running ones stay)."""
    from ..ops.k8s import cordon

    _, _, path = _settings(site, kubeconfig)
    changed = run(path, lambda api: cordon(api, node, True))
    out.print(f"{node} {'cordoned' if changed else 'was already cordoned'}", highlight=False)


@k8s_app.command("uncordon")
def uncordon_cmd(
    node: Annotated[str, typer.Argument(help="Node name.")],
    site: SiteOpt = None,
    kubeconfig: KubeconfigOpt = None,
) -> None:
    """Let servers start on NODE again."""
    from ..ops.k8s import cordon

    _, _, path = _settings(site, kubeconfig)
    changed = run(path, lambda api: cordon(api, node, False))
    out.print(f"{node} {'schedulable again' if changed else 'was not cordoned'}", highlight=False)


@k8s_app.command("drain")
def drain_cmd(
    node: Annotated[str, typer.Argument(help="Node name.")],
    timeout: Annotated[
        int, typer.Option("--timeout", help="Seconds to wait for evicted pods to go.")
    ] = 120,
    site: SiteOpt = None,
    kubeconfig: KubeconfigOpt = None,
) -> None:
    """Cordon NODE and move its pods away (students' servers stop; they start again elsewhere,
    their work/ kept). Do this before a node leaves the cluster."""
    from ..ops.k8s import drain

    _, _, path = _settings(site, kubeconfig)
    result = run(path, lambda api: drain(api, node, timeout), timeout=timeout + 60)
    out.print(f"{node} cordoned; evicted {len(result.evicted)} pod(s)", highlight=False)
    for ref in result.evicted:
        out.print(f"  evicted {ref}", highlight=False)
    if result.skipped:
        out.print(f"  left {len(result.skipped)} DaemonSet/static pod(s)", highlight=False)
    if result.remaining:
        raise KubeError(
            f"{len(result.remaining)} pod(s) still on {node} after {timeout} s: "
            f"{', '.join(result.remaining)}. Run `mlworkshop k8s drain {node}` again."
        )


@k8s_app.command("doctor")
def doctor_cmd(site: SiteOpt = None, kubeconfig: KubeconfigOpt = None) -> None:
    """Check what the hub needs from the cluster: API, namespace, RBAC for pods and claims,
    storage class, device resources, images on the nodes. Exit status 1 if something fails."""
    from ..ops.k8s import device_kinds_in_use, doctor

    cfg, k, path = _settings(site, kubeconfig)
    try:
        checks = run(path, lambda api: doctor(api, k, device_kinds_in_use(cfg.accelerators)))
    except KubeError as exc:
        out.print(f"[red]FAIL[/] API server: {exc}", highlight=False)
        raise typer.Exit(1) from None
    failed = False
    for check in checks:
        mark = {True: "[green]ok[/]  ", False: "[red]FAIL[/]", None: "[yellow]warn[/]"}[check.ok]
        failed |= check.ok is False
        out.print(f"{mark} {check.name}: {check.detail}", highlight=False)
    if failed:
        raise typer.Exit(1)
