"""Alembic environment of the usage store. Run programmatically by `store.migrate(engine)`,
which hands over an open connection in `config.attributes["connection"]`."""

from alembic import context

from mlworkshop.usage.models import VERSION_TABLE, Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # `alembic -x url=...` from a shell
    from sqlalchemy import create_engine

    engine = create_engine(context.get_x_argument(as_dictionary=True)["url"])
    connection = engine.connect()

context.configure(connection=connection, target_metadata=Base.metadata, version_table=VERSION_TABLE,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
