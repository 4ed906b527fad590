"""The rollups kept up to date probe by probe equal a rebuild from the raw probes."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
from sqlalchemy import text

from observatoire.clock import VirtualClock
from observatoire.config import load_config
from observatoire.evidence import EvidenceStore
from observatoire.politeness import PolitePolicy
from observatoire.rollups import rebuild
from observatoire.simulator import RunningSimulator
from observatoire.stats import monthly_stats
from observatoire.store import sync_targets
from observatoire.sweep import run_sweep

from .conftest import DEMO_CONFIG


def snapshot(engine) -> dict[str, pd.DataFrame]:  # type: ignore[no-untyped-def]
    queries = {
        "days": "SELECT * FROM probe_days ORDER BY target_id, day",
        "leads": "SELECT * FROM probe_leads ORDER BY target_id, month, cimade, lead_days",
        "episodes": "SELECT target_id, start_at, last_at, end_at, probes FROM episodes "
        "ORDER BY target_id, start_at",
    }
    with engine.connect() as conn:
        return {k: pd.DataFrame(conn.execute(text(q)).mappings().all()) for k, q in queries.items()}


async def test_incremental_rollups_equal_a_rebuild(
    simulator: RunningSimulator, clock: VirtualClock, engine, tmp_path
) -> None:  # type: ignore[no-untyped-def]
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
