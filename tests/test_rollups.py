"""The rollups kept up to date probe by probe equal a rebuild from the raw probes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, text

from observatoire.clock import VirtualClock
from observatoire.config import load_config
from observatoire.outcomes import Outcome
from observatoire.record.evidence import EvidenceStore
from observatoire.record.rollups import rebuild
from observatoire.record.store import sync_targets
from observatoire.robot.politeness import PolitePolicy
from observatoire.robot.sweep import run_sweep
from observatoire.simulator import RunningSimulator
from observatoire.stats import monthly_stats

from .conftest import DEMO_CONFIG
from .factories import mixed_probes


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
