"""A simulated stretch of weeks on one legacy target whose slots are released twice a
week and taken by competing bots: what the simulator knows (each batch's true survival)
against what the robot measures (the survival intervals of `record.releases`).

The release test checks it once with the default follow-ups; the follow-up benchmark
runs it for each setting (regular interval, follow-up step) and reports the cost in
requests against the width of the intervals. Both run this one month, so the test
guards exactly what the benchmark measures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine

from observatoire.clock import VirtualClock
from observatoire.config import Target, load_config
from observatoire.record.evidence import EvidenceStore
from observatoire.record.releases import Survival, survivals
from observatoire.record.store import sync_targets
from observatoire.robot.followup import drive_month
from observatoire.simulator import start_simulator
from observatoire.simulator.availability import Batch
from observatoire.simulator.scenario import Scenario

#: A Monday: the month starts on a week boundary.
MONTH_START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
HOST = "www.val-doise.gouv.fr"
#: One release batch: open for 150 min at most, sooner when one of two other bots gets
#: there (20 to 150 min); slots two weeks ahead.
RELEASE: dict[str, Any] = {
    "minutes": 150,
    "lead_days": [14, 14],
    "slots": [3, 8],
    "demand": {"bots": 2, "reaction_minutes": [20, 150]},
}
#: Tuesdays 12:00 and Fridays 09:30, nothing in between.
WEEKLY: dict[str, Any] = {
    "open_probability": 0.0,
    "releases": [
        {"weekday": 1, "time": "12:00", **RELEASE},
        {"weekday": 4, "time": "09:30", **RELEASE},
    ],
}


def scenario(start: datetime = MONTH_START) -> Scenario:
    """The simulated prefecture: one form, one planning, the weekly releases."""
    return Scenario.model_validate(
        {
            "seed": 17,
            "anchor": start,
            "profiles": {"weekly": WEEKLY},
            "legacy_sites": [
                {
                    "host": HOST,
                    "prefecture": "Préfecture du Val-d'Oise",
                    "forms": [
                        {
                            "id": 11404,
                            "title": "Renouvellement",
                            "plannings": [{"id": 11405, "label": "Cergy", "profile": "weekly"}],
                        }
                    ],
                }
            ],
        }
    )


def targets_file(folder: Path, base_url: str, interval_minutes: int, followup: object) -> Path:
    """A targets file with the month's one target; `followup` is its `followup:` value
    (None for none, True for the defaults, or a mapping)."""
    target: dict[str, object] = {
        "id": "95-renouvellement-11404",
        "procedure": "renouvellement",
        "label": "Renouvellement - Cergy",
        "platform": "legacy_booking",
        "url": f"{base_url}/{HOST}/booking/create/11404",
        "options": {"planning": 11405, "calendar_days": 7},
        "interval_minutes": interval_minutes,
    }
    if followup is not None:
        target["followup"] = followup
    doc = {
        "version": 1,
        "procedures": {"renouvellement": "Renouvellement d'un titre de séjour"},
        "departments": [
            {"code": "95", "name": "Val-d'Oise", "prefecture": "Cergy", "targets": [target]}
        ],
    }
    path = folder / "targets.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    return path


@dataclass
class MonthRun:
    """What the robot measured, and what was true."""

    measured: list[Survival]
    truth: list[Batch]
    #: The simulator's conduct report: requests per host, max in flight, violations.
    conduct: dict[str, Any]

    def batch_of(self, survival: Survival) -> list[Batch]:
        """The true batches a measured release may stand for: published within the
        release's uncertainty before its stated instant (one, when the inference is
        right)."""
        earliest = survival.published_at - timedelta(seconds=survival.uncertainty_seconds or 0)
        return [b for b in self.truth if earliest <= b.published_at <= survival.published_at]

    def contained(self) -> bool:
        """Every observed release stands for one true batch and its interval contains
        that batch's true survival."""
        for s in self.measured:
            if s.missed:
                continue
            batch = self.batch_of(s)
            if len(batch) != 1 or not s.contains(batch[0].survival_seconds):
                return False
        return True


def run_month(
    folder: Path,
    engine: Engine,
    *,
    interval_minutes: int,
    followup: object,
    user_agent: str,
    days: int = 28,
    start: datetime = MONTH_START,
) -> MonthRun:
    """Drive the robot through `days` simulated days against the month's simulator
    (virtual clock, loopback only), then read the survivals from `engine`."""
    clock = VirtualClock(start)
    end = start + timedelta(days=days)
    with start_simulator(scenario(start), clock) as sim:
        config = load_config(targets_file(folder, sim.base_url, interval_minutes, followup))
        targets: list[Target] = list(config.targets)
        sync_targets(engine, targets, start)
        drive_month(
            targets,
            start=start,
            end=end,
            clock=clock,
            engine=engine,
            evidence=EvidenceStore(folder / "evidence"),
            user_agent=user_agent,
        )
        truth = sim.state.release_truth(start, end)
        conduct = sim.state.conduct.report()
    return MonthRun(survivals(engine, end), truth, conduct)
