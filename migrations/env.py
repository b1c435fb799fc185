"""Alembic environment: DDL only, raw SQL through op.execute, no ORM models.

The URL comes from the config's `sqlalchemy.url`, set by shared.migrate; an advisory lock makes
concurrent `duetime migrate` runs (compose, several dev shells) wait for each other.
"""

from alembic import context
from sqlalchemy import create_engine, text

MIGRATION_LOCK = 0x64756574  # "duet"

url = context.config.get_main_option("sqlalchemy.url")
assert url, "shared.migrate sets sqlalchemy.url"

if context.is_offline_mode():
    context.configure(url=url, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(url)
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
        connection.commit()
        try:
            context.configure(connection=connection, transaction_per_migration=True)
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
            connection.commit()
    engine.dispose()
