"""What commands open: the account store, the running hub's API, the hub's database. Imported
here, when a command asks, not at the command line's start: they bring SQLAlchemy and httpx,
half a second of every command, `config set` included (tests/cli/test_cli_start.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..config import MLWorkshopConfig
from ..site import Site

if TYPE_CHECKING:
    from ..accounts.store import AccountStore
    from .hubapi import HubAPI, HubDatabase


def account_store(s: Site, cfg: MLWorkshopConfig) -> AccountStore:
    from ..accounts.store import AccountStore

    return AccountStore(s.db_url(cfg), cfg.auth.password_hash_cost)


def hub_api(s: Site, cfg: MLWorkshopConfig) -> HubAPI:
    from .hubapi import HubAPI

    return HubAPI(s, cfg)


def hub_database(s: Site, cfg: MLWorkshopConfig) -> HubDatabase:
    from .hubapi import HubDatabase

    return HubDatabase(s.db_url(cfg))
