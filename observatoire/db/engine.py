"""Engine set-up and the guard that refuses to run on an un-migrated database."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry


class DatabaseNotReady(RuntimeError):
    """The database is missing, unreachable or not at the latest migration."""


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def require_migrated(engine: Engine) -> None:
    """Raise DatabaseNotReady with the command that fixes it."""
    from observatoire.db.migrate import head_revision

    try:
        tables = set(inspect(engine).get_table_names())
        revision = current_revision(engine) if "alembic_version" in tables else None
    except Exception as exc:  # unreachable server, bad credentials, …
        raise DatabaseNotReady(
            f"cannot open the database {engine.url.render_as_string(hide_password=True)}: "
            f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}"
        ) from None
    head = head_revision()
    if revision is None:
        raise DatabaseNotReady(
            "the database is not initialised: run `observatoire db upgrade` first"
        )
    if revision != head:
        raise DatabaseNotReady(
            f"the database is at migration {revision}, this version needs {head}: "
            "run `observatoire db upgrade`"
        )
