"""The usage service's entry point: JupyterHub runs it as a managed service (`python -m
mlworkshop.usage.service`, hub/usage_service.py), as the `_mlw-usage` account under a root hub.
It talks to the hub only through the hub's REST API and never imports the hub's code.

Laid out like JupyterHub's FastAPI service example:
- settings.py   what the service is told (JupyterHub's service environment, mlworkshop's config)
- api_models.py the API's bodies and answers (the OpenAPI spec is generated from them)
- security.py   who is calling (hub OAuth cookie or API token) and what they may do
- api.py        the REST API;  pages.py  the dashboards;  context.py  what they share
- sampling.py   the sampling and quota-enforcement loop
- app.py        create_app(): the pieces put together
"""

import asyncio
import logging
import os
from pathlib import Path

from ..site import Site
from .app import create_app
from .hubclient import HubClient
from .sampling import UsageLoop
from .settings import ServiceSettings, service_config
from .store import LazyStore

log = logging.getLogger("mlworkshop.usage")

__all__ = ["ServiceSettings", "UsageLoop", "create_app", "main"]


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="[%(levelname).1s %(asctime)s usage] %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    import uvicorn

    settings = ServiceSettings.from_env()
    site = Site(Path(os.environ["MLWORKSHOP_SITE"]))
    cfg = service_config(
        os.environ, site
    )  # a root hub's service cannot read mlworkshop.yaml itself

    # opened lazily and retried: a usage database that is down must not stop the service (JupyterHub
    # gives up on the whole hub when a managed service exits while it starts)
    store = LazyStore(site.usage_db_url(cfg), on_open=lambda s: s.sync_rates(cfg.usage.rates))
    hub = HubClient(settings.api_url, settings.token)
    loop = UsageLoop(store, hub, cfg)
    sampling_begins = asyncio.Event()  # once this service answers: see create_app
    app = create_app(settings, cfg, store, hub, loop, sampling_begins)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=1,
        access_log=False,
    )
    server = uvicorn.Server(config)
    parent = os.getppid()

    async def serve():
        async def orphan_watch():  # the hub was killed: a service nobody manages must not linger
            while not server.should_exit:
                if os.getppid() != parent:
                    log.warning("The hub is gone; the usage service stops")
                    server.should_exit = True
                await asyncio.sleep(1)

        async def begin_sampling_once_serving():
            while not server.started and not server.should_exit:
                await asyncio.sleep(0.05)
            sampling_begins.set()

        watch = asyncio.create_task(orphan_watch())
        begin = asyncio.create_task(begin_sampling_once_serving())
        try:
            await server.serve()
        finally:
            watch.cancel()
            begin.cancel()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:  # the hub's Ctrl-C reached us too: already shut down cleanly
        pass


if __name__ == "__main__":
    main()
