"""The rollups kept up to date probe by probe equal a rebuild from the raw probes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from observatoire.captures.contributors import ContributorInfo, add_contributor
from observatoire.captures.reception import CaptureService
from observatoire.clock import VirtualClock
from observatoire.config import load_config
from observatoire.outcomes import Outcome, ProbeResult
from observatoire.record.evidence import EvidenceStore
from observatoire.record.rollups import rebuild
from observatoire.record.store import ProbeRecord, save_probe, sync_targets
from observatoire.robot.politeness import PolitePolicy
from observatoire.robot.sweep import run_sweep
from observatoire.simulator import RunningSimulator
from observatoire.stats import monthly_stats

from .conftest import DEMO_CONFIG


def snapshot(engine: Engine) -> dict[str, pd.DataFrame]:
    queries = {
        "days": "SELECT * FROM probe_days ORDER BY target_id, day",
        "leads": "SELECT * FROM probe_leads ORDER BY target_id, month, cimade, lead_days",
        "episodes": "SELECT target_id, start_at, last_at, end_at, probes FROM episodes "
        "ORDER BY target_id, start_at",
    }
    with engine.connect() as conn:
        return {k: pd.DataFrame(conn.execute(text(q)).mappings().all()) for k, q in queries.items()}


async def test_incremental_rollups_equal_a_rebuild(
    simulator: RunningSimulator, clock: VirtualClock, engine: Engine, tmp_path: Path
) -> None:
    config = load_config(DEMO_CONFIG, simulator_url=simulator.base_url)
    targets = [t for t in config.targets if t.platform != "eappointment"]
    sync_targets(engine, config.targets, clock.now() - timedelta(days=40))
    policy = PolitePolicy("observatoire/test", 0.0, 5.0)
    start = clock.now() - timedelta(days=36)
    try:
        for step in range(0, 36 * 24, 19):  # every 19 hours over 36 days
            clock.set(start + timedelta(hours=step))
            await run_sweep(
                targets,
                engine=engine,
                evidence=EvidenceStore(tmp_path / "ev"),
                policy=policy,
                clock=clock,
                retry_base=0.0,
            )
    finally:
        await policy.aclose()
    incremental = snapshot(engine)
    before = monthly_stats(engine, "target")
    assert len(incremental["episodes"]) > 0 and len(incremental["leads"]) > 0
    rebuild(engine)
    rebuilt = snapshot(engine)
    for name in incremental:
        pd.testing.assert_frame_equal(
            incremental[name].reset_index(drop=True),
            rebuilt[name].reset_index(drop=True),
            check_dtype=False,
        )
    pd.testing.assert_frame_equal(before, monthly_stats(engine, "target"))


# -- live saving and a rebuild fold in the same probes ------------------------------------
PRIVATE_PAGE = b"<html><body>page privee du demandeur 7f3a9c</body></html>"
PRIVATE_AT = datetime(2026, 3, 11, 8, 17, 43, tzinfo=UTC)


def robot_probe(
    engine: Engine,
    evidence: EvidenceStore,
    tid: str,
    at: datetime,
    result: ProbeResult,
    followup: bool = False,
) -> None:
    record = ProbeRecord(tid, None, at, at, result, 1, 1, 10, "legacy_booking", "1.0")
    save_probe(engine, evidence, replace(record, followup=followup))


def manual_probe(
    engine: Engine, evidence: EvidenceStore, who: ContributorInfo, tid: str, at: datetime,
    result: ProbeResult, page: bytes | None = None,
) -> None:  # fmt: skip
    """A capture stored by the reception desk, as the extension's would be."""
    CaptureService(engine, evidence)._store(
        who, "page", at, None, f"http://127.0.0.1/{tid}/booking/create/1", tid,
        "legacy_booking", result, page, None, None, "none", "", None,
    )  # fmt: skip


def mixed_probes(engine: Engine, evidence: EvidenceStore) -> None:
    """Regular probes, follow-ups, a private applicant's captures (not opted in), an
    opted-in applicant's and a volunteer's, over a month boundary (Paris), stored in
    time order as they would arrive."""
    from tests.test_stats import add_target

    with Session(engine) as s, s.begin():
        add_target(s, "92-a", "92", "Hauts-de-Seine", "renouvellement")
        add_target(s, "93-b", "93", "Seine-Saint-Denis", "naturalisation")
    private, _ = add_contributor(engine, "demandeur-prive", "applicant", PRIVATE_AT)
    public, _ = add_contributor(engine, "demandeur-public", "applicant", PRIVATE_AT, opted_in=True)
    volunteer, _ = add_contributor(engine, "benevole-mardi", "volunteer", PRIVATE_AT)
    start = datetime(2026, 3, 9, 9, 0, tzinfo=UTC)
    no_slot = ProbeResult(Outcome.NO_SLOT)
    events: list[tuple[datetime, Callable[[], None]]] = []

    def robot(tid: str, at: datetime, result: ProbeResult, followup: bool = False) -> None:
        events.append((at, lambda: robot_probe(engine, evidence, tid, at, result, followup)))

    def manual(who: ContributorInfo, tid: str, at: datetime, result: ProbeResult) -> None:
        page = result.page
        events.append((at, lambda: manual_probe(engine, evidence, who, tid, at, result, page)))

    for tid in ("92-a", "93-b"):
        for day in range(0, 30, 3):
            at = start + timedelta(days=day)
            if day % 9 == 6:
                robot(tid, at, ProbeResult.with_slots([at + timedelta(days=d) for d in (12, 40)]))
            else:
                robot(tid, at, no_slot)
            later = at + timedelta(hours=1)
            robot(tid, later, ProbeResult.with_slots([later + timedelta(days=2)]), followup=True)
    # Inside a no-slot run of 92-a: counted, this one would end the episode.
    found = ProbeResult.with_slots([PRIVATE_AT + timedelta(days=3)], page=PRIVATE_PAGE)
    manual(private, "92-a", PRIVATE_AT, found)
    retired = ProbeResult(Outcome.ERROR, "target_retired")
    manual(private, "93-b", PRIVATE_AT + timedelta(days=30), retired)
    manual(public, "93-b", PRIVATE_AT + timedelta(hours=5), no_slot)
    manual(volunteer, "93-b", PRIVATE_AT + timedelta(days=1), replace(found, page=None))
    for _, store in sorted(events, key=lambda e: e[0]):
        store()


def test_rebuild_gives_the_live_rollups_with_follow_ups_and_private_captures(
    engine: Engine, tmp_path: Path
) -> None:
    mixed_probes(engine, EvidenceStore(tmp_path / "ev"))
    live = snapshot(engine)
    live_stats = monthly_stats(engine, "target")
    # What the rollups hold: no follow-up, no private capture.
    days = live["days"].set_index(["target_id", "day"])
    assert ("92-a", "2026-03-11") not in days.index  # only the private capture that day
    assert days.loc[("93-b", "2026-03-11"), "manual"] == 1  # the opted-in one
    assert days.loc[("93-b", "2026-03-12"), "manual"] == 1  # the volunteer's
    assert days["manual"].sum() == 2
    assert days["available"].sum() == 2 * 3 + 1  # robot slots (3 per target), volunteer
    outcomes = [o.value for o in Outcome]
    assert days[outcomes].sum().sum() == 2 * 10 + 2  # regular probes, counted captures
    rebuild(engine)
    rebuilt = snapshot(engine)
    for name in live:
        pd.testing.assert_frame_equal(
            live[name].reset_index(drop=True),
            rebuilt[name].reset_index(drop=True),
            check_dtype=False,
        )
    pd.testing.assert_frame_equal(live_stats, monthly_stats(engine, "target"))
