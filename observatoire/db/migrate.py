"""Alembic, driven from code so `observatoire db upgrade` works from any directory.

Two `db upgrade` at once (a compose `migrate` service and an operator, two containers
starting together) must not race: on SQLite a lock file beside the database, on
PostgreSQL an advisory lock, is taken without waiting; the loser gets MigrationBusy
("another process is migrating; retry"), not a raw SQL error from half a migration.

On PostgreSQL the lock is per schema: an observatoire database is the schema its URL's
search_path names, and two of them in one server database (one per association, or the
tests' throwaway schemas) migrate independently.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
#: The advisory lock's key: this text and the schema migrated, hashed to a bigint by the
#: server (`hashtextextended`), so that each schema has its own lock.
ADVISORY_KEY_SQL = "hashtextextended('observatoire migrations:' || current_schema(), 0)"


class MigrationBusy(RuntimeError):
    """Another process holds the migration lock of this database."""

    def __init__(self) -> None:
        super().__init__("another process is migrating this database; retry in a moment")


def alembic_config(url: str | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migration found"
    return head


@contextlib.contextmanager
def migration_lock(url: str) -> Iterator[None]:
    """Hold this database's migration lock, or raise MigrationBusy at once."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            yield
            return
        lock_path = Path(f"{parsed.database}.migrate.lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise MigrationBusy() from None
            yield
        finally:
            os.close(fd)  # closing releases the lock
        return
    if parsed.get_backend_name() == "postgresql":
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                key = conn.execute(text(f"SELECT {ADVISORY_KEY_SQL}")).scalar_one()
                got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key})
                if not got.scalar():
                    raise MigrationBusy()
                conn.commit()
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
        finally:
            engine.dispose()
        return
    yield


def upgrade(url: str, revision: str = "head") -> None:
    with migration_lock(url):
        try:
            command.upgrade(alembic_config(url), revision)
        except OperationalError as exc:
            # A migrator that predates the lock (an older version) may still race us.
            if "locked" in str(exc.orig).lower() or "already exists" in str(exc.orig).lower():
                raise MigrationBusy() from None
            raise


def downgrade(url: str, revision: str) -> None:
    with migration_lock(url):
        command.downgrade(alembic_config(url), revision)
