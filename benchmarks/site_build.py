"""Benchmark: build the public site for 101 departments × 24 months of statistics.

    .venv/bin/python -m benchmarks.site_build [--probes-per-day 4]

One synthetic target per department (clearly named `synthetic-…`, in a throw-away
database), probes generated in SQL over 24 months, rollups rebuilt, then the site built
(pages, map, charts, feed, clustered intervals; the open data is exported separately, by
`export` or `publish`, and timed apart here). Targets (issues #7, #18): site build ≤ 10 s;
largest page ≤ 150 KB gzipped.
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from benchmarks.aggregate import outcome_sql
from benchmarks.common import table
from observatoire.config import reference_departments
from observatoire.db import make_engine
from observatoire.db.migrate import upgrade
from observatoire.publish.export import export_all
from observatoire.publish.site import SiteContext, build_site
from observatoire.record.rollups import rebuild

START = datetime(2024, 11, 1, tzinfo=UTC)
DAYS = 730


def fill(url: str, per_day: int) -> int:
    codes = list(reference_departments())
    engine = make_engine(url)
    n = len(codes) * DAYS * per_day
    step = 86400 / per_day
    with engine.begin() as conn:
        for i, code in enumerate(codes):
            conn.execute(
                text(
                    "INSERT INTO targets VALUES (:id, :dep, :name, 'X', 'titre-sejour', "
                    "'Titre de séjour', 'L', 'legacy_booking', 'https://example.invalid/', NULL, "
                    "'{}', :interval, 1, '0', '2024-10-01 00:00:00.000000', "
                    "'2024-10-01 00:00:00.000000')"
                ),
                {
                    "id": f"synthetic-{i}",
                    "dep": code,
                    "name": reference_departments()[code].name,
                    "interval": int(1440 / per_day),
                },
            )
        conn.execute(
            text(
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :n - 1) "
                "INSERT INTO probes (target_id, started_at, finished_at, outcome, detail, "
                "first_slot_at, requests_made, attempts, duration_ms, adapter, adapter_version, "
                "robot_version, mode) SELECT 'synthetic-' || (i % :t), "
                "strftime('%Y-%m-%d %H:%M:%f', :start + (i / :t) * :step, 'unixepoch'), "
                "strftime('%Y-%m-%d %H:%M:%f', :start + (i / :t) * :step + 2, 'unixepoch'), "
                f"{outcome_sql('i')}, '', CASE WHEN {outcome_sql('i')} = 'available' THEN "
                "strftime('%Y-%m-%d %H:%M:%f', :start + (i / :t) * :step + 86400 * "
                "(1 + (i * 31) % 120), 'unixepoch') END, 5, 1, 900, 'legacy_booking', '1.0', "
                "'synthetic', 'auto' FROM n"
            ),
            {"n": n, "t": len(codes), "start": START.timestamp(), "step": step},
        )
    rebuild(engine)
    engine.dispose()
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--probes-per-day", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'site.sqlite'}"
        upgrade(url)
        n = fill(url, args.probes_per_day)
        engine = make_engine(url)
        t0 = time.monotonic()
        index = build_site(
            engine,
            Path(tmp) / "site",
            SiteContext(simulated=True, built_at=datetime(2026, 11, 1, tzinfo=UTC)),
        )
        seconds = time.monotonic() - t0
        t1 = time.monotonic()
        export_all(engine, Path(tmp) / "export", simulated=True)
        export_seconds = time.monotonic() - t1
        site = index.parent.resolve()
        pages = sorted(site.rglob("*.html"))
        sizes = sorted(
            ((len(gzip.compress(p.read_bytes())), p.relative_to(site)) for p in pages), reverse=True
        )
        rows = [
            [
                f"{n:,}",
                len(pages),
                f"{seconds:.1f}",
                f"{export_seconds:.1f}",
                f"{sizes[0][0] / 1024:.1f}",
                str(sizes[0][1]),
                f"{sum(s for s, _ in sizes) / len(sizes) / 1024:.1f}",
            ]
        ]
    print(
        table(
            [
                "probes",
                "pages",
                "site build s",
                "export s (apart)",
                "largest page KB (gzip)",
                "largest page",
                "mean page KB (gzip)",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
