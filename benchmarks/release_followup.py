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
from pathlib import Path

from observatoire.db import make_engine
from observatoire.db.migrate import upgrade
from observatoire.release_month import run_month

UA = "observatoire-bench/1.0 (+https://example.org/contact)"
#: (label, regular interval in minutes, follow-up every N minutes or None)
SETTINGS = [
    ("horaire, sans suivi", 60, None),
    ("toutes les 2 h, sans suivi", 120, None),
    ("toutes les 2 h, suivi 20 min", 120, 20),
    ("toutes les 2 h, suivi 10 min", 120, 10),
    ("horaire, suivi 10 min", 60, 10),
    ("horaire, suivi 5 min", 60, 5),
]


def run_one(
    folder: Path, interval: int, every: int | None, weeks: int
) -> dict[str, float | int | bool]:
    url = f"sqlite:///{folder / 'bench.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    followup = None if every is None else {"every_minutes": every, "for_minutes": 60}
    run = run_month(
        folder,
        engine,
        interval_minutes=interval,
        followup=followup,
        user_agent=UA,
        days=7 * weeks,
    )
    engine.dispose()
    measured = [s for s in run.measured if not s.missed]
    requests = sum(run.conduct["requests"].values())
    widths = [
        (s.high - (s.low or 0.0)) / 60 if s.high is not None else float("inf") for s in measured
    ]
    return {
        "requests": requests,
        "true": len(run.truth),
        "observed": len(measured),
        "per_release": requests / len(measured) if measured else float("inf"),
        "median_width_min": statistics.median(widths) if widths else float("inf"),
        "contained": run.contained(),
        "violations": len(run.conduct["violations"]),
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
