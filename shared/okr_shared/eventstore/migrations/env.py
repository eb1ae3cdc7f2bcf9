"""Alembic environment of the event store. Run through okr_shared.eventstore.migrate
(``okr migrate``), which passes the engine in ``config.attributes``."""

from alembic import context

from okr_shared.eventstore.migrate import VERSION_TABLE
from okr_shared.eventstore.schema import metadata

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
