"""Shared fixtures: databases (SQLite always, PostgreSQL when available), the simulator
on loopback with a virtual clock, and helpers.

PostgreSQL tests skip locally when OBSERVATOIRE_TEST_DATABASE_URL is unset, and fail
under CI (OBSERVATOIRE_REQUIRE_ALL_TESTS=1), so a missing server never passes silently.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from observatoire.clock import VirtualClock
from observatoire.db import make_engine
from observatoire.db.migrate import upgrade
from observatoire.simulator import RunningSimulator, start_simulator
from observatoire.simulator.scenario import load_scenario

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "config" / "demo.yaml"
PG_URL = os.environ.get("OBSERVATOIRE_TEST_DATABASE_URL")
REQUIRE_ALL = os.environ.get("OBSERVATOIRE_REQUIRE_ALL_TESTS") == "1"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday, 10:00 in Paris


def need_postgres() -> str:
    if PG_URL:
        return PG_URL
    if REQUIRE_ALL:
        pytest.fail("CI needs PostgreSQL: OBSERVATOIRE_TEST_DATABASE_URL is not set")
    pytest.skip("PostgreSQL not available (set OBSERVATOIRE_TEST_DATABASE_URL)")


def need_chromium() -> None:
    from observatoire.robot.browser import chromium_path

    if chromium_path():
        return
    if REQUIRE_ALL:
        pytest.fail("CI needs Chromium (Debian package `chromium`): not found")
    pytest.skip("Chromium not installed (apt-get install chromium)")


@pytest.fixture
async def browser_pool():  # type: ignore[no-untyped-def]
    """The shared headless Chromium, as the robot uses it."""
    from observatoire.robot.browser import BrowserPool

    need_chromium()
    pool = BrowserPool("observatoire/test (+https://example.org/contact)")
    yield pool
    await pool.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    base = need_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'test.sqlite'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Runs the test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.sqlite'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def engine(db_url: str):  # type: ignore[no-untyped-def]
    upgrade(db_url)
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(T0)


@pytest.fixture
def simulator(clock: VirtualClock) -> Iterator[RunningSimulator]:
    scenario = load_scenario().model_copy(update={"anchor": T0})
    sim = start_simulator(scenario, clock)
    yield sim
    sim.stop()


@pytest.fixture
def live_simulator() -> Iterator[RunningSimulator]:
    """A simulator on real time, for commands that use the system clock."""
    sim = start_simulator()
    yield sim
    sim.stop()


@pytest.fixture
def cli_env(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point the CLI's settings at a temporary database and data folder."""
    env = {
        "OBSERVATOIRE_DATABASE_URL": sqlite_url,
        "OBSERVATOIRE_DATA_DIR": str(tmp_path / "data"),
        "OBSERVATOIRE_MIN_DELAY_SECONDS": "0",
        "OBSERVATOIRE_RETRY_BASE_SECONDS": "0",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("OBSERVATOIRE_CONTACT_URL", raising=False)
    return env
