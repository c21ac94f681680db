"""Alembic environment: the connection comes from :meth:`transferlab.vuln.store.Store.migrate`.

For hand use: ``alembic -c <this folder>/alembic.ini -x url=sqlite:///runs/v.db upgrade head``.
"""

from alembic import context
from sqlalchemy import create_engine

from transferlab.vuln.store import metadata

config = context.config


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    with create_engine(url).begin() as conn:
        _run(conn)
