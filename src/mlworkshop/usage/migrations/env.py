"""Alembic environment of the usage store. Run programmatically by `mlworkshop.db.migrate()`,
which hands over an open connection in `config.attributes["connection"]`."""

from alembic import context

from mlworkshop.db import USAGE_SCHEMA, configure_context
from mlworkshop.usage.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # `alembic -x url=...` from a shell
    from sqlalchemy import create_engine

    connection = create_engine(context.get_x_argument(as_dictionary=True)["url"]).connect()

configure_context(context, connection, config.attributes.get("schema", USAGE_SCHEMA), Base.metadata)
with context.begin_transaction():
    context.run_migrations()
