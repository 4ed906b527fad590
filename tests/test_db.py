"""Migrations on SQLite and PostgreSQL, the un-migrated guard, and column behaviour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from observatoire.cli import app
from observatoire.db import DatabaseNotReady, Probe, TargetRow, make_engine, require_migrated
from observatoire.db.migrate import downgrade, head_revision, upgrade

from .factories import probe_row, target_row


def _target(now: datetime) -> TargetRow:
    return target_row("92-x", procedure="x", prefecture="Nanterre", created=now)


def _probe(started: datetime, outcome: str = "no_slot") -> Probe:
    return probe_row("92-x", started, outcome)


def test_upgrade_downgrade_upgrade(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    require_migrated(engine)
    tables = set(inspect(engine).get_table_names())
    assert {"targets", "probes", "alembic_version"} <= tables
    indexes = {ix["name"] for ix in inspect(engine).get_indexes("probes")}
    assert "ix_probes_target_id_started_at" in indexes
    downgrade(db_url, "base")
    assert "probes" not in set(inspect(engine).get_table_names())
    with pytest.raises(DatabaseNotReady, match="db upgrade"):
        require_migrated(engine)
    upgrade(db_url)
    require_migrated(engine)
    engine.dispose()


def test_unmigrated_database_is_refused_by_commands(cli_env: dict[str, str]) -> None:
    for args in (["stats"], ["export"], ["site", "build"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert "observatoire db upgrade" in result.stderr
        assert "Traceback" not in result.output


def test_unreachable_database_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OBSERVATOIRE_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    result = CliRunner().invoke(app, ["stats"])
    assert result.exit_code == 2
    assert "cannot open the database" in result.stderr


def test_db_upgrade_command(cli_env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    engine = make_engine(cli_env["OBSERVATOIRE_DATABASE_URL"])
    require_migrated(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
            head_revision()
        )


def test_sqlite_pragmas(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000


def test_times_round_trip_as_aware_utc(engine) -> None:
    paris_summer = timezone(timedelta(hours=2))
    started = datetime(2026, 7, 1, 10, 30, 15, 123456, tzinfo=paris_summer)
    with Session(engine) as session, session.begin():
        session.add(_target(started))
        session.flush()
        session.add(_probe(started))
    with Session(engine) as session:
        row = session.query(Probe).one()
        assert row.started_at == started
        assert row.started_at.tzinfo is not None
        assert row.started_at.utcoffset() == timedelta(0)


def test_naive_datetimes_and_unknown_outcomes_are_refused(engine) -> None:
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        session.add(_target(now))
    with pytest.raises(StatementError), Session(engine) as session, session.begin():
        session.add(_probe(datetime(2026, 1, 1, 12, 0)))
    with pytest.raises(IntegrityError), Session(engine) as session, session.begin():
        session.add(_probe(now, outcome="maybe"))
    with pytest.raises(IntegrityError), Session(engine) as session, session.begin():
        probe = _probe(now)
        probe.target_id = "nope"
        session.add(probe)


def test_migrations_match_the_models(db_url: str) -> None:
    """Every model change went through a migration: autogenerate finds nothing to do."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from observatoire.db.models import Base

    upgrade(db_url)
    engine = make_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []
