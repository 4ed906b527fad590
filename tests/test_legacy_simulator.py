"""The legacy adapter against the live simulator over real HTTP: what the robot
records must match what the simulator meant to show (its ground truth)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from observatoire.adapters import ProbeContext, get_adapter
from observatoire.clock import VirtualClock
from observatoire.config import load_config
from observatoire.db.models import Probe
from observatoire.outcomes import Outcome
from observatoire.record.evidence import EvidenceStore
from observatoire.record.store import sync_targets
from observatoire.robot.politeness import PolitePolicy
from observatoire.robot.sweep import run_sweep
from observatoire.simulator import RunningSimulator

from .conftest import DEMO_CONFIG

EXPECTED = {
    "open": Outcome.AVAILABLE,
    "no_slot": Outcome.NO_SLOT,
    "no_calendar": Outcome.NO_SLOT,
    "missing": Outcome.PROCEDURE_MISSING,
    "retired": Outcome.ERROR,
    "closed": Outcome.ERROR,
    "overloaded": Outcome.BLOCKED,
}


async def test_outcomes_match_ground_truth(
    simulator: RunningSimulator, clock: VirtualClock
) -> None:
    config = load_config(DEMO_CONFIG, simulator_url=simulator.base_url)
    adapter = get_adapter("legacy_booking")
    policy = PolitePolicy("observatoire/test (+https://example.org)", 0.0, 5.0)
    seen: dict[Outcome, int] = {}
    states_seen: set[str] = set()
    start = clock.now()
    try:
        # Hours picked across the anchor's "missing" and "closed" periods and a normal one.
        for days_before in (34, 19, 3, 0.5):
            clock.set(start - timedelta(days=days_before))
            for target in config.targets:
                if target.platform != "legacy_booking":
                    continue
                before = len(simulator.state.truth_records())
                session = policy.session()
                result = await adapter.probe(target, ProbeContext(session, clock))
                await session.aclose()
                records = simulator.state.truth_records()[before:]
                states = [r for r in records if r.state != "calendar"]
                assert states, f"{target.id}: the simulator saw no result request"
                truth = states[-1]
                if truth.state == "counters":
                    # The robot stopped at the counter choice: only right if its counter
                    # was not offered.
                    assert target.options["planning"] not in (truth.offered or [])
                    assert result.outcome is Outcome.PROCEDURE_MISSING, (target.id, result)
                    seen[result.outcome] = seen.get(result.outcome, 0) + 1
                    continue
                assert result.outcome is EXPECTED[truth.state], (target.id, truth, result)
                if truth.state == "no_calendar":
                    assert result.detail == "no_calendar"
                states_seen.add(truth.state)
                if truth.state == "open":
                    assert result.first_slot_at is not None
                    assert result.first_slot_at == datetime.fromisoformat(truth.first_slot)
                    # slots counted within 60 days; 0 when the first is further away
                    assert result.slots_count is not None
                    assert result.slots_count <= (truth.slots or 0)
                seen[result.outcome] = seen.get(result.outcome, 0) + 1
    finally:
        await policy.aclose()
    assert {"no_calendar", "open", "no_slot"} <= states_seen, states_seen
    assert set(seen) >= {
        Outcome.AVAILABLE,
        Outcome.NO_SLOT,
        Outcome.PROCEDURE_MISSING,
        Outcome.ERROR,
    }
    conduct = simulator.state.conduct.report()
    assert conduct["violations"] == []
    assert set(conduct["max_in_flight"].values()) == {1}
    assert all(ua.startswith("observatoire/") for ua in conduct["user_agents"])


async def test_sweep_stores_rows_and_evidence(
    simulator: RunningSimulator, clock: VirtualClock, engine, tmp_path
) -> None:
    config = load_config(DEMO_CONFIG, simulator_url=simulator.base_url)
    sync_targets(engine, config.targets, clock.now())
    evidence = EvidenceStore(tmp_path / "evidence")
    policy = PolitePolicy("observatoire/test (+https://example.org)", 0.0, 5.0)
    try:
        report = await run_sweep(
            config.targets,
            engine=engine,
            evidence=evidence,
            policy=policy,
            clock=clock,
            retry_base=0.0,
        )
    finally:
        await policy.aclose()
    captcha_first = [t.id for t in config.targets if t.platform == "rdv_prefecture"]
    assert len(captcha_first) == 3
    assert all("volunteer" in report.skipped[t] for t in captcha_first)  # never probed alone
    assert report.probed == len(config.targets) - len(captcha_first)
    with Session(engine) as session:
        rows = session.scalars(select(Probe)).all()
    assert len(rows) == report.probed
    for row in rows:
        assert row.started_at.tzinfo is not None
        assert row.adapter == config.target(row.target_id).platform and row.adapter_version
        assert row.requests_made >= 1 and row.attempts >= 1
        assert row.page_sha256 is not None
        assert evidence.verify(row.page_sha256, "html")
    retired = [r for r in rows if r.target_id == "42-admission-exceptionnelle-804"]
    assert retired[0].outcome == "error" and retired[0].detail == "target_retired"
    assert retired[0].attempts == 1  # a retired link is not retried
    assert simulator.state.conduct.report()["violations"] == []


async def test_politeness_delay_is_kept_between_requests(simulator: RunningSimulator) -> None:
    import time

    config = load_config(DEMO_CONFIG, simulator_url=simulator.base_url)
    target = config.target("93-titre-sejour-9845")
    policy = PolitePolicy("observatoire/test (+https://example.org)", 0.15, 5.0)
    session = policy.session()
    t0 = time.monotonic()
    try:
        await get_adapter("legacy_booking").probe(
            target,
            ProbeContext(
                session, VirtualClock(datetime.fromisoformat("2026-03-02T09:00:00+00:00"))
            ),
        )
    finally:
        await session.aclose()
        await policy.aclose()
    elapsed = time.monotonic() - t0
    assert session.requests_made >= 3
    assert elapsed >= 0.15 * (session.requests_made - 1)


async def _probe(sim: RunningSimulator, clock: VirtualClock, target):
    policy = PolitePolicy("observatoire/test (+https://example.org)", 0.0, 5.0)
    session = policy.session()
    try:
        return await get_adapter("legacy_booking").probe(target, ProbeContext(session, clock))
    finally:
        await session.aclose()
        await policy.aclose()


async def test_step4_jump_is_read_as_slots_and_dated_from_the_calendar(
    simulator: RunningSimulator, clock: VirtualClock
) -> None:
    """Essonne's form jumps to step 4 ("Première plage horaire libre") when slots exist:
    the robot follows the module's own redirect, reads the calendar and never presses
    the button."""
    config = load_config(DEMO_CONFIG, simulator_url=simulator.base_url)
    target = config.target("91-renouvellement-14056")
    start = clock.now()
    jumped = 0
    for hours in range(0, 72, 6):
        clock.set(start + timedelta(hours=hours))
        before = len(simulator.state.truth_records())
        result = await _probe(simulator, clock, target)
        truth = [r for r in simulator.state.truth_records()[before:] if r.state != "calendar"]
        if truth[-1].path.endswith("/4"):
            jumped += 1
            assert truth[-1].state == "open"
            assert result.outcome is Outcome.AVAILABLE, result
            assert result.first_slot_at == datetime.fromisoformat(truth[-1].first_slot)
            assert result.final_url and result.final_url.endswith("/4")
        else:
            assert result.outcome is Outcome.NO_SLOT, (truth, result)
    assert jumped >= 2
    assert simulator.state.conduct.report()["violations"] == []


async def test_latin1_site_under_index_php_is_read(
    simulator: RunningSimulator, clock: VirtualClock
) -> None:
    """Seine-Saint-Denis serves ISO-8859-1 declared only in <meta charset>, and the
    module answers under /index.php/booking/create/… too."""
    import dataclasses

    config = load_config(DEMO_CONFIG, simulator_url=simulator.base_url)
    plain = config.target("93-titre-sejour-9845")
    target = dataclasses.replace(
        plain, url=plain.url.replace("/booking/create/", "/index.php/booking/create/")
    )
    start = clock.now()
    outcomes = set()
    for hours in range(0, 96, 5):
        clock.set(start + timedelta(hours=hours))
        before = len(simulator.state.truth_records())
        result = await _probe(simulator, clock, target)
        truth = [r for r in simulator.state.truth_records()[before:] if r.state != "calendar"]
        assert "/index.php/booking/create/9845/" in truth[-1].path
        expected = {"open": Outcome.AVAILABLE, "no_slot": Outcome.NO_SLOT}[truth[-1].state]
        assert result.outcome is expected, (truth[-1], result)
        assert result.page is not None and b"\xe9" in result.page  # latin-1 bytes on the wire
        outcomes.add(result.outcome)
        if len(outcomes) == 2:
            break
    assert outcomes == {Outcome.AVAILABLE, Outcome.NO_SLOT}
