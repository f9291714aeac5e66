"""Alembic environment of the hub database's mlw_* tables. Run programmatically by
`mlworkshop.db.migrate()`, which hands over an open connection in config.attributes."""

from alembic import context

from mlworkshop.accelerators.allocator import Base as AllocatorBase
from mlworkshop.accounts import idp_links  # noqa: F401 (its table is in AccountsBase)
from mlworkshop.accounts.store import Base as AccountsBase
from mlworkshop.db import HUB_SCHEMA, configure_context

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # `alembic -x url=...` from a shell
    from sqlalchemy import create_engine

    connection = create_engine(context.get_x_argument(as_dictionary=True)["url"]).connect()

configure_context(
    context,
    connection,
    config.attributes.get("schema", HUB_SCHEMA),
    [AccountsBase.metadata, AllocatorBase.metadata],
)
with context.begin_transaction():
    context.run_migrations()
