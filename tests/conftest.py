"""Shared fixtures: databases (SQLite always, PostgreSQL when available), the simulator
on loopback with a virtual clock, the demo database (one run per session), and the
hand-counted databases the statistics, export and site tests share. Plain row builders
live in factories.py.

PostgreSQL tests skip locally when OBSERVATOIRE_TEST_DATABASE_URL is unset, and fail
under CI (OBSERVATOIRE_REQUIRE_ALL_TESTS=1), so a missing server never passes silently.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from observatoire.clock import VirtualClock
from observatoire.db import make_engine
from observatoire.db.migrate import upgrade
from observatoire.demo import DemoReport, run_demo
from observatoire.record.rollups import rebuild
from observatoire.simulator import RunningSimulator, start_simulator
from observatoire.simulator.scenario import load_scenario

from .factories import add_probe, add_target

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "config" / "demo.yaml"
PG_URL = os.environ.get("OBSERVATOIRE_TEST_DATABASE_URL")
REQUIRE_ALL = os.environ.get("OBSERVATOIRE_REQUIRE_ALL_TESTS") == "1"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday, 10:00 in Paris
#: The demo ends here; 40 days back is 1 March 12:00, so April is a partial month.
DEMO_END = datetime(2026, 4, 10, 12, tzinfo=UTC)


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
async def browser_pool():
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
def engine(db_url: str):
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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`--dist loadgroup`), every test that reads the shared demo runs
    on one worker, so the demo (over a minute) is built once, not once per worker."""
    for item in items:
        if "demo" in getattr(item, "fixturenames", ()) or "demo_site" in getattr(
            item, "fixturenames", ()
        ):
            item.add_marker(pytest.mark.xdist_group("demo"))


# -- the demo database, run once per session ---------------------------------------------
@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoReport:
    """One demo run (simulator, robot, a simulated volunteer) per test session, shared by
    every module that checks the public site: defined here, it runs once however many
    modules use it."""
    base = tmp_path_factory.getbasetemp()
    return run_demo(base / "site-demo", days=40, every_hours=12, end=DEMO_END, show_progress=False)


@pytest.fixture(scope="session")
def demo_site(demo: DemoReport) -> Path:
    return demo.site_index.parent.resolve()


# -- hand-counted databases (statistics, export and site tests) --------------------------
@pytest.fixture
def filled(engine: Engine) -> Engine:
    with Session(engine) as s, s.begin():
        add_target(s, "92-a", "92", "Hauts-de-Seine", "renouvellement")
        add_target(s, "92-b", "92", "Hauts-de-Seine", "naturalisation")
        add_target(s, "2a-c", "2A", "Corse-du-Sud")
        # 92-a, March 2026 (Paris): 3 no_slot, 1 available, 1 procedure_missing, 1 error.
        add_probe(s, "92-a", "2026-02-28T23:30:00+00:00", "no_slot")  # 1 March 00:30 CET
        add_probe(s, "92-a", "2026-03-10T10:00:00+00:00", "no_slot")
        add_probe(s, "92-a", "2026-03-29T01:30:00+00:00", "no_slot")  # DST night
        add_probe(s, "92-a", "2026-03-15T10:00:00+00:00", "available")
        add_probe(s, "92-a", "2026-03-16T10:00:00+00:00", "procedure_missing")
        add_probe(s, "92-a", "2026-03-17T10:00:00+00:00", "error")
        # 31 March 22:30 UTC is 1 April 00:30 in Paris (CEST): April.
        add_probe(s, "92-a", "2026-03-31T22:30:00+00:00", "available")
        # 92-b, March: 1 blocked, 1 no_slot.
        add_probe(s, "92-b", "2026-03-20T10:00:00+00:00", "blocked")
        add_probe(s, "92-b", "2026-03-21T10:00:00+00:00", "no_slot")
        # 2A: only coverage failures in March: no valid probe.
        add_probe(s, "2a-c", "2026-03-05T10:00:00+00:00", "unrecognized")
        add_probe(s, "2a-c", "2026-03-06T10:00:00+00:00", "error")
    rebuild(engine)  # rows were inserted behind the rollups' back
    return engine


@pytest.fixture
def week(engine: Engine) -> Engine:
    """One target, one week of March 2026, hand-counted below."""
    created = datetime(2026, 2, 28, 23, 0, tzinfo=UTC)  # 1 March 00:00 in Paris
    with Session(engine) as s, s.begin():
        add_target(s, "92-a", "92", "Hauts-de-Seine", created=created)
        plan = [
            ("2026-03-02T09:00", "no_slot", None, None),
            ("2026-03-02T15:00", "available", 10, 20),
            ("2026-03-03T09:00", "no_slot", None, None),
            ("2026-03-03T10:00", "error", None, None),
            ("2026-03-04T09:00", "available", 45, None),
            ("2026-03-05T09:00", "available", 90, 91),
            ("2026-03-06T09:00", "available", 5, 40),
            ("2026-03-07T09:00", "procedure_missing", None, None),
        ]
        for at, outcome, first, second in plan:
            when = datetime.fromisoformat(at + "+00:00")
            add_probe(
                s,
                "92-a",
                when,
                outcome,
                first_slot_at=when + timedelta(days=first) if first else None,
                second_slot_at=when + timedelta(days=second) if second else None,
            )
    rebuild(engine)
    return engine


@pytest.fixture
def mixed(engine: Engine) -> Engine:
    """Unreliable months at the boundary: 92-a has 11 unrecognized pages out of 100 probes
    in March (11 %), 92-b exactly 10 out of 100 (10 %), 2a-c 10 % in March and 1 out of
    1 in April."""
    start = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
    plan = {
        "92-a": [("unrecognized", 11), ("no_slot", 89)],
        "92-b": [("unrecognized", 10), ("available", 90)],
        "2a-c": [("unrecognized", 10), ("blocked", 5), ("no_slot", 85)],
    }
    with Session(engine) as s, s.begin():
        add_target(s, "92-a", "92", "Hauts-de-Seine")
        add_target(s, "92-b", "92", "Hauts-de-Seine")
        add_target(s, "2a-c", "2A", "Corse-du-Sud")
        for tid, parts in plan.items():
            hour = 0
            for outcome, count in parts:
                for _ in range(count):
                    add_probe(s, tid, (start + timedelta(hours=hour)).isoformat(), outcome)
                    hour += 1
        add_probe(s, "2a-c", "2026-04-10T10:00:00+00:00", "unrecognized")
    rebuild(engine)
    return engine
