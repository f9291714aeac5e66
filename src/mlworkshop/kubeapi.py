"""One way to reach a Kubernetes API for every part of mlworkshop that does (the kubernetes
backend's helpers, the usage service's pod samples, `mlworkshop k8s ...`): kubernetes_asyncio
(KubeSpawner's own client), each caller with its own Configuration, never the process-wide
default that KubeSpawner sets up for itself.

A kubeconfig named in spawner.kubernetes.kubeconfig wins; without one, the pod's service account
(the hub inside the cluster), else $KUBECONFIG or ~/.kube/config.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

T = TypeVar("T")


class KubeError(RuntimeError):
    """str() is what a lab admin reads: what failed and what to do."""


def _unreachable(kubeconfig: str, exc: BaseException) -> KubeError:
    where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    return KubeError(
        f"The Kubernetes API could not be reached with the kubeconfig {where} ({exc}). Check "
        "spawner.kubernetes.kubeconfig, that the cluster runs (`kubectl get nodes`), and that "
        "this machine can reach its API server."
    )


@asynccontextmanager
async def api_client(kubeconfig: str = ""):
    """An ApiClient for the configured cluster, closed on exit. Raises KubeError."""
    from kubernetes_asyncio import client, config
    from kubernetes_asyncio.config import ConfigException

    conf = client.Configuration()
    try:
        if kubeconfig:
            if not os.path.exists(kubeconfig):
                raise KubeError(
                    f"The kubeconfig {kubeconfig} (spawner.kubernetes.kubeconfig) does not exist. "
                    "Copy the cluster's admin kubeconfig there (MicroK8s: `microk8s config`)."
                )
            await config.load_kube_config(config_file=kubeconfig, client_configuration=conf)
        else:
            try:
                config.load_incluster_config(client_configuration=conf)
            except ConfigException:
                await config.load_kube_config(client_configuration=conf)
    except KubeError:
        raise
    # RuntimeError: no kubeconfig named and no home folder to look in (an account without one)
    except (ConfigException, OSError, ValueError, TypeError, RuntimeError) as exc:
        raise KubeError(
            f"No usable kubeconfig ({exc}). Set spawner.kubernetes.kubeconfig to the cluster's "
            "kubeconfig file (MicroK8s: `microk8s config > /etc/mlworkshop/kubeconfig`)."
        ) from None
    api = client.ApiClient(configuration=conf)
    try:
        yield api
    finally:
        await api.close()


def run(kubeconfig: str, work: Callable[[Any], Awaitable[T]], timeout: float = 30) -> T:
    """Run `work(api_client)` to completion from synchronous code (CLI, a sampler's thread).
    Connection failures become KubeError; API errors (ApiException) pass through."""
    from aiohttp import ClientError

    async def main() -> T:
        async with api_client(kubeconfig) as api:
            return await asyncio.wait_for(work(api), timeout)

    try:
        return asyncio.run(main())
    except KubeError:
        raise
    except (ClientError, OSError, TimeoutError) as exc:
        raise _unreachable(kubeconfig, exc) from None


def api_message(exc: BaseException) -> str:
    """The API server's own sentence from an ApiException (its JSON body's message)."""
    import json

    body = getattr(exc, "body", None)
    try:
        return json.loads(body).get("message") or str(exc)
    except (TypeError, ValueError, AttributeError):
        return f"{getattr(exc, 'status', '')} {getattr(exc, 'reason', '')}".strip() or str(exc)
