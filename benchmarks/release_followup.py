"""Requests spent per observed release against the precision of its survival (issue 17).

One legacy target on the simulator releases a batch twice a week (Tuesday 12:00, Friday
09:30); two other bots take each slot within 20 to 150 minutes. For each setting (the
regular interval, and the follow-up step if any) the robot runs four simulated weeks
and we report: requests sent, releases observed (of the true ones), requests per
observed release, the median width of the survival intervals, and whether every
interval contains the true survival.

    .venv/bin/python -m benchmarks.release_followup [--weeks 4]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from observatoire.clock import VirtualClock
from observatoire.config import load_config
from observatoire.db import make_engine
from observatoire.db.migrate import upgrade
from observatoire.record.evidence import EvidenceStore
from observatoire.record.releases import survivals
from observatoire.record.store import sync_targets
from observatoire.robot.followup import drive_month
from observatoire.simulator import start_simulator
from observatoire.simulator.scenario import Scenario

START = datetime(2026, 3, 2, tzinfo=UTC)
HOST = "www.val-doise.gouv.fr"
UA = "observatoire-bench/1.0 (+https://example.org/contact)"
RELEASE = {
    "minutes": 150,
    "lead_days": [14, 14],
    "slots": [3, 8],
    "demand": {"bots": 2, "reaction_minutes": [20, 150]},
}
#: (label, regular interval in minutes, follow-up every N minutes or None)
SETTINGS = [
    ("horaire, sans suivi", 60, None),
    ("toutes les 2 h, sans suivi", 120, None),
    ("toutes les 2 h, suivi 20 min", 120, 20),
    ("toutes les 2 h, suivi 10 min", 120, 10),
    ("horaire, suivi 10 min", 60, 10),
    ("horaire, suivi 5 min", 60, 5),
]


def scenario() -> Scenario:
    releases = [
        {"weekday": 1, "time": "12:00", **RELEASE},
        {"weekday": 4, "time": "09:30", **RELEASE},
    ]
    return Scenario.model_validate(
        {
            "seed": 17,
            "anchor": START,
            "profiles": {"weekly": {"open_probability": 0.0, "releases": releases}},
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


def run_one(
    folder: Path, interval: int, every: int | None, weeks: int
) -> dict[str, float | int | bool]:
    url = f"sqlite:///{folder / 'bench.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    clock = VirtualClock(START)
    end = START + timedelta(weeks=weeks)
    with start_simulator(scenario(), clock) as sim:
        target: dict[str, object] = {
            "id": "95-renouvellement-11404",
            "procedure": "renouvellement",
            "label": "Renouvellement - Cergy",
            "platform": "legacy_booking",
            "url": f"{sim.base_url}/{HOST}/booking/create/11404",
            "options": {"planning": 11405, "calendar_days": 7},
            "interval_minutes": interval,
        }
        if every is not None:
            target["followup"] = {"every_minutes": every, "for_minutes": 60}
        doc = {
            "version": 1,
            "procedures": {"renouvellement": "Renouvellement"},
            "departments": [
                {"code": "95", "name": "Val-d'Oise", "prefecture": "Cergy", "targets": [target]}
            ],
        }
        path = folder / "targets.yaml"
        path.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
        config = load_config(path)
        sync_targets(engine, config.targets, START)
        drive_month(
            config.targets,
            start=START,
            end=end,
            clock=clock,
            engine=engine,
            evidence=EvidenceStore(folder / "evidence"),
            user_agent=UA,
        )
        truth = sim.state.release_truth(START, end)
        conduct = sim.state.conduct.report()
    measured = [s for s in survivals(engine, end) if not s.missed]
    engine.dispose()
    requests = sum(conduct["requests"].values())
    widths = [
        (s.high - (s.low or 0.0)) / 60 if s.high is not None else float("inf") for s in measured
    ]
    contained = True
    for s in measured:
        earliest = s.published_at - timedelta(seconds=s.uncertainty_seconds or 0)
        batch = [b for b in truth if earliest <= b.published_at <= s.published_at]
        contained &= len(batch) == 1 and s.contains(batch[0].survival_seconds)
    return {
        "requests": requests,
        "true": len(truth),
        "observed": len(measured),
        "per_release": requests / len(measured) if measured else float("inf"),
        "median_width_min": statistics.median(widths) if widths else float("inf"),
        "contained": contained,
        "violations": len(conduct["violations"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weeks", type=int, default=4)
    args = parser.parse_args()
    print(
        "| réglage | requêtes | mises en ligne vues / vraies | requêtes par mise en ligne "
        "vue | largeur médiane de l'intervalle (min) | vérité contenue | violations |\n"
        "|---|---|---|---|---|---|---|"
    )
    for label, interval, every in SETTINGS:
        with tempfile.TemporaryDirectory() as tmp:
            r = run_one(Path(tmp), interval, every, args.weeks)
        print(
            f"| {label} | {r['requests']} | {r['observed']} / {r['true']} | "
            f"{r['per_release']:.0f} | {r['median_width_min']:.0f} | "
            f"{'oui' if r['contained'] else 'NON'} | {r['violations']} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
