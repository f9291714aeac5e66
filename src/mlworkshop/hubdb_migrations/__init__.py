"""Alembic history of our tables in the hub's database (mlw_accounts, mlw_login_failures,
mlw_device_allocations, mlw_device_allocation_lock); version table mlw_alembic_version. Run by
`mlworkshop.db.migrate(engine, HUB_SCHEMA)` when a store opens.

A schema change: change the model, add the next revision under versions/ by hand (copy the
last one's header), and run tests/unit/test_migrations.py: its `alembic check` fails while the
models and the migrations disagree.
"""
