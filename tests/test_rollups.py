"""The rollups kept up to date probe by probe equal a rebuild from the raw probes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, text

from observatoire.captures.contributors import find_contributor
from observatoire.captures.review import accept_capture, reject_capture, review_queue
from observatoire.clock import VirtualClock
from observatoire.config import load_config
from observatoire.outcomes import Outcome, ProbeResult
from observatoire.record.evidence import EvidenceStore
from observatoire.record.rollups import rebuild
from observatoire.record.store import sync_targets
from observatoire.robot.politeness import PolitePolicy
from observatoire.robot.sweep import run_sweep
from observatoire.simulator import RunningSimulator
from observatoire.stats import monthly_stats

from .conftest import DEMO_CONFIG
from .factories import doubtful_capture, manual_probe, mixed_probes, robot_probe


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
    before = monthly_stats(engine, "target")
    incremental = live_equals_rebuild(engine)
    assert len(incremental["episodes"]) > 0 and len(incremental["leads"]) > 0
    pd.testing.assert_frame_equal(before, monthly_stats(engine, "target"))


# -- live saving and a rebuild fold in the same probes ------------------------------------
def test_rebuild_gives_the_live_rollups_with_follow_ups_and_private_captures(
    engine: Engine, tmp_path: Path
) -> None:
    mixed_probes(engine, EvidenceStore(tmp_path / "ev"))
    live_stats = monthly_stats(engine, "target")
    live = snapshot(engine)
    # What the rollups hold: no follow-up, no private capture.
    days = live["days"].set_index(["target_id", "day"])
    assert ("92-a", "2026-03-11") not in days.index  # only the private capture that day
    assert days.loc[("93-b", "2026-03-11"), "manual"] == 1  # the opted-in one
    assert days.loc[("93-b", "2026-03-12"), "manual"] == 1  # the volunteer's
    assert days["manual"].sum() == 2
    assert days["available"].sum() == 2 * 3 + 1  # robot slots (3 per target), volunteer
    outcomes = [o.value for o in Outcome]
    assert days[outcomes].sum().sum() == 2 * 10 + 2  # regular probes, counted captures
    live_equals_rebuild(engine)
    pd.testing.assert_frame_equal(live_stats, monthly_stats(engine, "target"))


# -- a capture's review moves its probe in and out as a rebuild would ----------------------
def live_equals_rebuild(engine: Engine) -> dict[str, pd.DataFrame]:
    """The live rollups, checked equal to a rebuild from the raw probes."""
    live = snapshot(engine)
    rebuild(engine)
    rebuilt = snapshot(engine)
    for name in live:
        pd.testing.assert_frame_equal(
            live[name].reset_index(drop=True),
            rebuilt[name].reset_index(drop=True),
            check_dtype=False,
            obj=name,
        )
    return live


def same_rollups(one: dict[str, pd.DataFrame], other: dict[str, pd.DataFrame]) -> bool:
    return all(one[k].reset_index(drop=True).equals(other[k].reset_index(drop=True)) for k in one)


def test_a_capture_enters_the_rollups_only_when_accepted_as_a_rebuild_would(
    engine: Engine, tmp_path: Path
) -> None:
    evidence = EvidenceStore(tmp_path / "ev")
    mixed_probes(engine, evidence)
    volunteer = find_contributor(engine, "benevole-mardi")
    assert volunteer is not None and volunteer.counted
    start = live_equals_rebuild(engine)
    march_11 = datetime(2026, 3, 11, 10, 0, tzinfo=UTC)  # inside a no-slot run of 92-a
    march_16 = datetime(2026, 3, 16, 10, 0, tzinfo=UTC)  # after its slots of 15 March
    slots = ProbeResult.with_slots([march_11 + timedelta(days=3)])
    # Doubtful captures, stored after the robot's later probes: they change nothing.
    found = doubtful_capture(engine, evidence, volunteer, "92-a", march_11, slots)
    empty = doubtful_capture(
        engine, evidence, volunteer, "92-a", march_16, ProbeResult(Outcome.NO_SLOT)
    )
    forged = doubtful_capture(
        engine, evidence, volunteer, "93-b", march_16, ProbeResult(Outcome.NO_SLOT)
    )
    pending = live_equals_rebuild(engine)
    assert same_rollups(pending, start)

    # Accepted: in, at their place in time (the slots split 92-a's episode in two, the
    # "no slot" starts one a probe earlier), exactly as a rebuild computes them.
    accept_capture(engine, found, march_16)
    accept_capture(engine, empty, march_16)
    accepted = live_equals_rebuild(engine)
    days = accepted["days"].set_index(["target_id", "day"])
    assert days.loc[("92-a", "2026-03-11"), ["available", "manual"]].tolist() == [1, 1]
    assert days.loc[("92-a", "2026-03-16"), ["no_slot", "manual"]].tolist() == [1, 1]
    episodes = accepted["episodes"]
    assert (
        len(episodes[episodes["target_id"] == "92-a"])
        == len(start["episodes"][start["episodes"]["target_id"] == "92-a"]) + 1
    )
    # Rejected: out for good, nothing else moves.
    reject_capture(engine, forged, march_16, "horloge et image douteuses")
    assert same_rollups(live_equals_rebuild(engine), accepted)


def test_a_capture_contradicted_later_leaves_the_rollups_as_a_rebuild_would(
    engine: Engine, tmp_path: Path
) -> None:
    evidence = EvidenceStore(tmp_path / "ev")
    mixed_probes(engine, evidence)
    volunteer = find_contributor(engine, "benevole-mardi")
    assert volunteer is not None
    before = live_equals_rebuild(engine)
    # 23:55 in Paris on 12 April, after every probe of 93-b.
    at = datetime(2026, 4, 12, 21, 55, tzinfo=UTC)
    manual_probe(engine, evidence, volunteer, "93-b", at, ProbeResult(Outcome.NO_SLOT))
    counted = live_equals_rebuild(engine)
    day = counted["days"].set_index(["target_id", "day"]).loc[("93-b", "2026-04-12")]
    assert (day["manual"], day["no_slot"]) == (1, 1)
    # The robot sees slots seven minutes later (the next Paris day): the capture now
    # waits for review and leaves the figures it was counted in; its day, left without
    # any counted probe, disappears as a rebuild would not write it.
    seen = ProbeResult.with_slots([at + timedelta(days=2)])
    robot_probe(engine, evidence, "93-b", at + timedelta(minutes=7), seen)
    queue = review_queue(engine, recheck_since=at - timedelta(hours=1))
    assert [item.reason for item in queue] == [f"contradicted_by_probe:#{last_id(engine)}"]
    flagged = live_equals_rebuild(engine)
    days = flagged["days"].set_index(["target_id", "day"])
    assert ("93-b", "2026-04-12") not in days.index
    assert days.loc[("93-b", "2026-04-13"), "available"] == 1
    assert len(flagged["episodes"]) == len(before["episodes"])
    # A person accepts it (slots go in minutes): back in, as a rebuild computes it.
    accept_capture(engine, queue[0].id, at + timedelta(days=1), "les créneaux partent vite")
    accepted = live_equals_rebuild(engine)
    day = accepted["days"].set_index(["target_id", "day"]).loc[("93-b", "2026-04-12")]
    assert (day["manual"], day["no_slot"]) == (1, 1)
    assert accepted["episodes"]["probes"].sum() == flagged["episodes"]["probes"].sum() + 1


def last_id(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT MAX(id) FROM probes")).scalar_one())
