"""Soak: 30 simulated days of hourly sweeps on the virtual clock with every fault kind
switched on for a share of requests; reports outcomes, RSS at start and end, and the
simulator's conduct counters.

    .venv/bin/python -m benchmarks.soak [--days 30 --fault-share 0.02]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.common import table, tree_rss_mb
from observatoire.clock import VirtualClock
from observatoire.config import load_config
from observatoire.db import make_engine
from observatoire.db.migrate import upgrade
from observatoire.demo import DEMO_CONFIG
from observatoire.record.evidence import EvidenceStore
from observatoire.record.store import sync_targets
from observatoire.robot.politeness import PolitePolicy
from observatoire.robot.sweep import run_sweep
from observatoire.simulator import start_simulator
from observatoire.simulator.scenario import FAULT_KINDS, load_scenario


async def soak(days: int, share: float, workdir: Path) -> list[list[object]]:
    end = datetime(2026, 6, 1, tzinfo=UTC)
    clock = VirtualClock(end - timedelta(days=days))
    scenario = load_scenario().model_copy(update={"anchor": end})
    url = f"sqlite:///{workdir / 'soak.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    rows = []
    with start_simulator(scenario, clock, spread=True) as sim:
        sim.state.hang_seconds = 0.5
        sim.set_faults([{"kind": k, "share": share} for k in FAULT_KINDS])
        config = load_config(DEMO_CONFIG, simulator_url=sim.base_url_for)
        targets = [t for t in config.targets if t.platform != "eappointment"]
        sync_targets(engine, config.targets, clock.now())
        # Time is compressed ~65 000x: Retry-After pauses are capped at 0.05 s real time,
        # still honoured (the host waits), as an hour is compressed into 0.05 s.
        policy = PolitePolicy("observatoire/soak", 0.0, 0.3, max_pause=0.05, engine=engine)
        evidence = EvidenceStore(workdir / "evidence")
        outcomes: dict[str, int] = {}
        rss_start = tree_rss_mb()
        t0 = time.monotonic()
        for hour in range(days * 24):
            clock.set(end - timedelta(days=days) + timedelta(hours=hour))
            report = await run_sweep(
                targets,
                engine=engine,
                evidence=evidence,
                policy=policy,
                clock=clock,
                retry_base=0.0,
            )
            for k, v in report.outcomes.items():
                outcomes[k] = outcomes.get(k, 0) + v
            if hour == 24:
                rss_day1 = tree_rss_mb()
        rss_end = tree_rss_mb()
        await policy.aclose()
        conduct = sim.state.conduct.report()
    for violation in conduct["violations"][:5]:
        print("violation:", violation)
    rows.append(
        [
            days,
            len(targets),
            sum(outcomes.values()),
            f"{time.monotonic() - t0:.0f}",
            f"{rss_start:.0f}",
            f"{rss_day1:.0f}",
            f"{rss_end:.0f}",
            len(conduct["violations"]),
            ", ".join(f"{k}={v}" for k, v in sorted(outcomes.items())),
        ]
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--fault-share", type=float, default=0.002)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = asyncio.run(soak(args.days, args.fault_share, Path(tmp)))
    print(
        table(
            [
                "days",
                "targets",
                "probes",
                "seconds",
                "RSS MB start",
                "RSS MB day 1",
                "RSS MB end",
                "violations",
                "outcomes",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
