"""`observatoire demo`: the whole chain on the bundled simulator, in a few minutes.

The simulator and the robot share a virtual clock: the demo walks it over a simulated
period (by default 60 days, a sweep every 6 hours), and every row it stores comes from
a real probe through the real adapter over real HTTP on loopback. Then it builds the
statistics, the CSV files and the site, and says where they are.

Captcha-first targets (RDV-Préfecture) are observed as in real life, during a weekly
"permanence" (Mondays and Thursdays, once in the day): the assisted flow runs in the
robot's browser and a *simulated* volunteer, `benevole-simule`, answers the captcha
through the simulator's test hook. That stand-in exists only here and in the tests,
against the simulator: on a real platform only a person can answer.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from observatoire.assist.observation import AssistServices, Observation, State
from observatoire.assist.queue import assist_queue
from observatoire.clock import PARIS, VirtualClock
from observatoire.config import Target, load_config
from observatoire.db import make_engine
from observatoire.db.migrate import upgrade
from observatoire.publish.export import export_all
from observatoire.publish.site import SiteContext, build_site
from observatoire.record.store import sync_targets
from observatoire.robot.runtime import Runtime
from observatoire.robot.sweep import run_sweep
from observatoire.settings import Settings
from observatoire.simulator import RunningSimulator, start_simulator
from observatoire.simulator.scenario import load_scenario

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "config" / "demo.yaml"
#: Virtual time that passes between two probes of one sweep.
PROBE_SPACING = timedelta(seconds=20)
DEMO_VOLUNTEER = "benevole-simule"
#: Permanence days (Monday = 0) and opening hours, Europe/Paris.
PERMANENCE_DAYS = (0, 3)
PERMANENCE_HOURS = range(9, 19)


def is_permanence(when: datetime, done: set[str]) -> bool:
    """The first sweep of a permanence day within its opening hours."""
    local = when.astimezone(PARIS)
    day = local.date().isoformat()
    if local.weekday() in PERMANENCE_DAYS and local.hour in PERMANENCE_HOURS and day not in done:
        done.add(day)
        return True
    return False


async def permanence(
    services: AssistServices,
    clock: VirtualClock,
    targets: list[Target],
    simulator: RunningSimulator,
) -> tuple[dict[str, int], int]:
    """Observe every due captcha-first target with the simulated volunteer; returns the
    outcomes seen and the requests made."""
    seen: dict[str, int] = {}
    requests = 0
    now = services.clock.now()
    for entry in assist_queue(services.engine, targets, now):
        if not entry.is_due(now):
            continue
        observation = Observation(services, entry.target, DEMO_VOLUNTEER)
        await observation.start()
        while observation.state is State.CAPTCHA:
            rdvpref = simulator.state.rdvpref
            await observation.answer(rdvpref.answer(rdvpref.latest_captcha() or ""))
        if observation.result is not None:
            key = observation.result.outcome.value
            seen[key] = seen.get(key, 0) + 1
        requests += observation.requests_made
        clock.advance(PROBE_SPACING)
    return seen, requests


@dataclass
class DemoReport:
    out: Path
    database_url: str
    probes: int
    #: Of `probes`, those observed with the simulated volunteer.
    assisted: int
    requests: int
    outcomes: dict[str, int]
    seconds: float
    site_index: Path
    export_dir: Path
    violations: list[str]
    max_in_flight: int


def run_demo(
    out: Path,
    *,
    days: int = 60,
    every_hours: float = 6.0,
    end: datetime | None = None,
    config_path: Path = DEMO_CONFIG,
    show_progress: bool = True,
) -> DemoReport:
    started = time.monotonic()
    out = Path(out).absolute()
    if out.exists():
        shutil.rmtree(out / "evidence", ignore_errors=True)
        for old in out.glob("demo.sqlite*"):
            old.unlink()
    out.mkdir(parents=True, exist_ok=True)
    database_url = f"sqlite:///{out / 'demo.sqlite'}"
    upgrade(database_url)
    engine = make_engine(database_url)

    end = (end or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    clock = VirtualClock(start)
    scenario = load_scenario().model_copy(update={"anchor": end})
    # The robot's runtime as every entry point builds it, on the demo's own database and
    # folder. Loopback simulator: no politeness delay needed, but still one request in
    # flight per host (the simulator checks it); the identification rule still holds.
    settings = replace(Settings.from_env(), database_url=database_url, data_dir=out)
    runtime = Runtime.from_settings(settings, clock=clock, engine=engine).with_politeness(
        min_delay=0.0, timeout=10.0
    )
    evidence = runtime.evidence
    step = timedelta(hours=every_hours)
    rounds: list[datetime] = []
    at = start
    while at < end:
        rounds.append(at)
        at += step

    outcomes: dict[str, int] = {}
    probes = requests = assisted = 0
    with start_simulator(scenario, clock, spread=True) as simulator:
        config = load_config(config_path, simulator_url=simulator.base_url_for)
        runtime.check_conduct(t.host for t in config.targets)
        sync_targets(engine, config.targets, start)

        async def sweep_all(progress: Progress | None) -> None:
            nonlocal probes, requests, assisted
            task = progress.add_task("sondages", total=len(rounds)) if progress else None
            permanence_days: set[str] = set()
            last: dict[str, datetime] = {}
            async with runtime.robot() as robot:
                policy, browser = robot.policy, robot.browser
                services = AssistServices(engine, evidence, policy, browser, clock)
                for when in rounds:
                    clock.set(when)
                    # Each target keeps its own cadence (browser targets are slower).
                    due = [
                        t
                        for t in config.targets
                        if t.id not in last
                        or when - last[t.id] >= timedelta(minutes=t.interval_minutes)
                    ]
                    for t in due:
                        last[t.id] = when
                    report = await run_sweep(
                        due,
                        browser=browser,
                        engine=engine,
                        evidence=evidence,
                        policy=policy,
                        clock=clock,
                        retry_base=0.0,
                        scheduled_at=when,
                        on_probe=lambda _t, _r: clock.advance(PROBE_SPACING),
                    )
                    probes += report.probed
                    requests += report.requests
                    for key, count in report.outcomes.items():
                        outcomes[key] = outcomes.get(key, 0) + count
                    if is_permanence(when, permanence_days):
                        seen, made = await permanence(services, clock, config.targets, simulator)
                        requests += made
                        for key, count in seen.items():
                            outcomes[key] = outcomes.get(key, 0) + count
                            probes += count
                            assisted += count
                    if progress is not None and task is not None:
                        progress.update(task, advance=1, description=f"sondages ({probes} faits)")

        if show_progress:
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            with Progress(*columns, transient=False) as progress:
                asyncio.run(sweep_all(progress))
        else:
            asyncio.run(sweep_all(None))
        conduct = simulator.state.conduct.report()

    export_dir = out / "export"
    export_all(engine, export_dir, simulated=True)
    site_index = build_site(
        engine,
        out / "site",
        SiteContext(
            simulated=True,
            built_at=datetime.now(UTC),
            evidence=evidence,
            user_agent=settings.user_agent,
            contact_url=settings.contact_url,
        ),
        open_data=export_dir,
    )
    engine.dispose()
    return DemoReport(
        out=out,
        database_url=database_url,
        probes=probes,
        assisted=assisted,
        requests=requests,
        outcomes=outcomes,
        seconds=time.monotonic() - started,
        site_index=site_index,
        export_dir=export_dir,
        violations=conduct["violations"],
        max_in_flight=max(conduct["max_in_flight"].values(), default=0),
    )
