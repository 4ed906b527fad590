"""Benchmark: probes per second and peak memory of a sweep against the local simulator.

    .venv/bin/python -m benchmarks.sweep [--http-targets 60 --browser-targets 8 --rounds 3]

The simulator runs in its own process, one port per simulated host ("one host per
target"), with no politeness delay (loopback only). Each sweep stores every probe and
its evidence in a temporary SQLite database, as in production. Targets (issue #4):
≥ 50 httpx probes/s per core; ≥ 2 Playwright probes/s with one shared browser under
600 MB RSS (the whole process tree: Python, Playwright's driver and Chromium). The
browser is the one the robot uses: `chromium-headless-shell` when installed; compare with
OBSERVATOIRE_CHROMIUM_PATH=/usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

from benchmarks.common import PeakRss, SimulatorProcess, table
from observatoire.clock import SystemClock
from observatoire.config import Target
from observatoire.db import make_engine
from observatoire.db.migrate import upgrade
from observatoire.record.evidence import EvidenceStore
from observatoire.record.store import sync_targets
from observatoire.robot.browser import BrowserPool, chromium_path
from observatoire.robot.politeness import PolitePolicy
from observatoire.robot.sweep import run_sweep


def scenario(http_targets: int, browser_targets: int) -> str:
    """Synthetic sites: one legacy form per host, one eAppointment motive per host."""
    data = {
        "seed": 7,
        "profiles": {"half": {"open_probability": 0.5, "lead_days": [3, 40], "slots": [1, 8]}},
        "legacy_sites": [
            {
                "host": f"bench{i}.example",
                "prefecture": f"Préfecture {i}",
                "forms": [
                    {
                        "id": 1000 + i,
                        "title": "Titre de séjour",
                        "plannings": [{"id": 5000 + i, "label": "Guichet", "profile": "half"}],
                    }
                ],
            }
            for i in range(http_targets)
        ],
        "eappointment_sites": [
            {
                "host": f"eapp{i}.example",
                "app": "eAppointmentbench",
                "entry": "bench.jsp",
                "sitekey": "bench",
                "postal_codes": ["75000"],
                "motives": [{"key": "TS", "label": "Titre de séjour", "profile": "half"}],
            }
            for i in range(browser_targets)
        ],
    }
    return yaml.safe_dump(data, allow_unicode=True)


def targets(urls: dict[str, str], http_targets: int, browser_targets: int) -> list[Target]:
    out = []
    for i in range(http_targets):
        host = f"bench{i}.example"
        out.append(
            Target(
                f"75-bench-{i}",
                "75",
                "Paris",
                "Paris",
                "titre-sejour",
                "Titre",
                "Titre",
                "legacy_booking",
                f"{urls[host]}/{host}/booking/create/{1000 + i}",
                True,
                60,
                None,
                {"planning": 5000 + i, "calendar_days": 60},
            )
        )
    for i in range(browser_targets):
        host = f"eapp{i}.example"
        out.append(
            Target(
                f"75-bench-eapp-{i}",
                "75",
                "Paris",
                "Paris",
                "titre-sejour",
                "Titre",
                "Titre",
                "eappointment",
                f"{urls[host]}/{host}/eAppointmentbench/element/jsp/specific/bench.jsp",
                True,
                60,
                None,
                {"postal_code": "75000", "motive": "TS"},
            )
        )
    return out


async def measure(
    batch: list[Target], rounds: int, workdir: Path, label: str, exclude: frozenset[int]
) -> list[object]:
    url = f"sqlite:///{workdir / (label + '.sqlite')}"
    upgrade(url)
    engine = make_engine(url)
    sync_targets(engine, batch, datetime.now(UTC))
    # As in production: every request also takes its host's gate in the database.
    policy = PolitePolicy(
        "observatoire/bench (+https://example.org/contact)", 0.0, 30.0, engine=engine
    )
    browser = BrowserPool(policy.user_agent)
    evidence = EvidenceStore(workdir / f"evidence-{label}")
    outcomes: dict[str, int] = {}
    probes = requests = 0
    sweep = functools.partial(
        run_sweep,
        batch,
        engine=engine,
        evidence=evidence,
        policy=policy,
        clock=SystemClock(),
        retry_base=0.0,
        browser=browser,
    )
    with PeakRss(exclude=exclude) as rss:
        # One warm-up sweep (browser launch, connection pools) not counted.
        await sweep()
        t0 = time.monotonic()
        cpu0, sampler0 = time.process_time(), rss.cpu_seconds
        for _ in range(rounds):
            report = await sweep()
            probes += report.probed
            requests += report.requests
            for k, v in report.outcomes.items():
                outcomes[k] = outcomes.get(k, 0) + v
        elapsed = time.monotonic() - t0
        # The counted sweeps' CPU time in this process (Chromium's is not included),
        # the memory sampler's own reads of /proc left out.
        cpu = time.process_time() - cpu0 - (rss.cpu_seconds - sampler0)
    await browser.close()
    await policy.aclose()
    engine.dispose()
    mix = ", ".join(f"{k}={v}" for k, v in sorted(outcomes.items()))
    per_s = probes / elapsed
    return [
        label,
        len(batch),
        probes,
        f"{elapsed:.1f}",
        f"{per_s:.1f}",
        f"{probes / cpu:.1f}" if cpu else "-",
        f"{requests / probes:.1f}",
        f"{rss.peak:.0f}",
        mix,
    ]


async def main_async(args: argparse.Namespace) -> None:
    sim = SimulatorProcess(scenario(args.http_targets, args.browser_targets))
    rows = []
    with sim as urls:
        everything = targets(urls, args.http_targets, args.browser_targets)
        http = [t for t in everything if t.platform == "legacy_booking"]
        browser = [t for t in everything if t.platform == "eappointment"]
        with tempfile.TemporaryDirectory() as tmp:
            if http:
                rows.append(
                    await measure(
                        http, args.rounds, Path(tmp), "httpx (legacy_booking)", frozenset({sim.pid})
                    )
                )
            if browser:
                rows.append(
                    await measure(
                        browser,
                        args.rounds,
                        Path(tmp),
                        "playwright (eappointment)",
                        frozenset({sim.pid}),
                    )
                )
        conduct = sim.stop()
    print(
        table(
            [
                "sweep",
                "targets",
                "probes",
                "seconds",
                "probes/s",
                "probes per CPU-s",
                "requests/probe",
                "peak PSS MB (robot tree)",
                "outcomes",
            ],
            rows,
        )
    )
    print(
        f"\nrobot process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB;"
        f" cores: {os.cpu_count()}; browser: {chromium_path()}; simulator: separate process;"
        f" conduct violations: {len(conduct['violations'])};"
        f" max in flight per host: {max(conduct['max_in_flight'].values(), default=0)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--http-targets", type=int, default=60)
    parser.add_argument("--browser-targets", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
