"""Benchmark: monthly statistics over N synthetic probes, against DuckDB as a reference.

    .venv/bin/python -m benchmarks.aggregate [--sizes 1000000 10000000] [--postgres URL]

Synthetic rows (targets named `synthetic-…`, in a throw-away database of their own) are
generated inside the database by SQL, deterministically from the row number, so SQLite,
PostgreSQL and DuckDB hold exactly the same probes. Timed: everything `monthly_stats`
needs (per-day counts, lead-time histogram, episodes) and the department level. Targets
(issue #6): 10 M rows in ≤ 20 s and ≤ 2 GB on SQLite, within 3× of DuckDB, time growing
linearly with N.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from benchmarks.common import table
from observatoire.db import make_engine
from observatoire.db.migrate import upgrade
from observatoire.record.rollups import paris_days, rebuild
from observatoire.stats import StatsInput, monthly_stats

TARGETS = 200
START = datetime(2024, 1, 1, tzinfo=UTC)
SPAN_DAYS = 730  # two years of probes, whatever N


def step_seconds(n: int) -> float:
    return SPAN_DAYS * 86400 * TARGETS / n


def outcome_sql(i: str, div: str = "/") -> str:
    """Deterministic outcome mix from the row number (same in every engine): it varies
    over time for every target, with runs of no slot and days with slots."""
    r = f"((({i} {div} {TARGETS}) * 7919 + ({i} % {TARGETS}) * 104729) % 100)"
    return (
        f"CASE WHEN {r} < 28 THEN 'available' WHEN {r} < 85 THEN 'no_slot' "
        f"WHEN {r} < 88 THEN 'procedure_missing' WHEN {r} < 92 THEN 'blocked' "
        f"WHEN {r} < 97 THEN 'error' ELSE 'unrecognized' END"
    )


def fill_sqlite(url: str, n: int) -> None:
    engine = make_engine(url)
    step = step_seconds(n)
    start = START.timestamp()
    with engine.begin() as conn:
        conn.execute(text("PRAGMA synchronous=OFF"))
        for t in range(TARGETS):
            conn.execute(
                text(
                    "INSERT INTO targets VALUES (:id, :dep, 'Synthétique', 'X', 'p', 'P', 'L', "
                    "'legacy_booking', 'http://127.0.0.1/', NULL, '{}', 60, 1, '0', "
                    "'2023-12-31 00:00:00.000000', '2023-12-31 00:00:00.000000')"
                ),
                {"id": f"synthetic-{t}", "dep": f"{(t % 95) + 1:02d}"},
            )
        conn.execute(text("DROP INDEX ix_probes_started_at"))
        conn.execute(text("DROP INDEX ix_probes_target_id_started_at"))
        conn.execute(
            text(
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :n - 1) "
                "INSERT INTO probes (target_id, scheduled_at, started_at, finished_at, outcome, "
                "detail, first_slot_at, second_slot_at, slots_count, http_status, requests_made, "
                "attempts, duration_ms, adapter, adapter_version, robot_version, mode) "
                "SELECT 'synthetic-' || (i % :targets), NULL, "
                "strftime('%Y-%m-%d %H:%M:%f', :start + (i / :targets) * :step, 'unixepoch'), "
                "strftime('%Y-%m-%d %H:%M:%f', :start + (i / :targets) * :step + 3, 'unixepoch'), "
                f"{outcome_sql('i')}, '', "
                f"CASE WHEN {outcome_sql('i')} = 'available' THEN strftime('%Y-%m-%d %H:%M:%f', "
                ":start + (i / :targets) * :step + 86400 * (1 + (i * 31) % 120), 'unixepoch') END, "
                "NULL, NULL, 200, 5, 1, 900, 'legacy_booking', '1.0', 'synthetic', 'auto' FROM n"
            ),
            {"n": n, "targets": TARGETS, "start": start, "step": step},
        )
        conn.execute(text("CREATE INDEX ix_probes_started_at ON probes (started_at)"))
        conn.execute(
            text("CREATE INDEX ix_probes_target_id_started_at ON probes (target_id, started_at)")
        )
    engine.dispose()


def fill_postgres(url: str, n: int) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO targets SELECT 'synthetic-' || t, lpad(((t % 95) + 1)::text, 2, '0'), "
                "'Synthétique', 'X', 'p', 'P', 'L', 'legacy_booking', 'http://127.0.0.1/', NULL, "
                "'{}', 60, true, '0', '2023-12-31', '2023-12-31' FROM generate_series(0, :t - 1) t"
            ),
            {"t": TARGETS},
        )
        conn.execute(
            text(
                "INSERT INTO probes (target_id, started_at, finished_at, outcome, detail, "
                "first_slot_at, http_status, requests_made, attempts, duration_ms, adapter, "
                "adapter_version, robot_version, mode) "
                "SELECT 'synthetic-' || (i % :targets), "
                "to_timestamp(:start + (i / :targets) * :step), "
                "to_timestamp(:start + (i / :targets) * :step + 3), "
                f"{outcome_sql('i')}, '', "
                f"CASE WHEN {outcome_sql('i')} = 'available' THEN to_timestamp(:start + "
                "(i / :targets) * :step + 86400 * (1 + (i * 31) % 120)) END, "
                "200, 5, 1, 900, 'legacy_booking', '1.0', 'synthetic', 'auto' "
                "FROM generate_series(0::bigint, :n - 1) i"
            ),
            {"n": n, "targets": TARGETS, "start": START.timestamp(), "step": step_seconds(n)},
        )
        conn.execute(text("ANALYZE probes"))
    engine.dispose()


def time_stats(url: str) -> tuple[float, float, int]:
    """Seconds to rebuild the rollups from every raw probe (a bulk import's cost; probes
    made by the robot update them as they are stored), then to compute the statistics."""
    engine = make_engine(url)
    t0 = time.monotonic()
    rebuild(engine)
    rebuilt = time.monotonic() - t0
    t0 = time.monotonic()
    data = StatsInput.load(engine)
    frame = monthly_stats(engine, "department", data)
    elapsed = time.monotonic() - t0
    engine.dispose()
    return rebuilt, elapsed, len(frame)


def time_duckdb(n: int, workdir: Path) -> float | None:
    """The same per-day counts, lead histogram and episodes in DuckDB, on the same rows
    (generated by the same formula into Parquet), with the same Paris-day join."""
    try:
        import duckdb
    except ImportError:
        return None
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")  # naive UTC timestamps, as SQLite stores them
    parquet = workdir / f"probes-{n}.parquet"
    step = step_seconds(n)
    con.execute(
        "COPY (SELECT 'synthetic-' || (i % $targets) AS target_id, "
        "to_timestamp($start + (i // $targets) * $step)::TIMESTAMP AS started_at, "
        f"{outcome_sql('i', '//')} AS outcome, "
        f"CASE WHEN {outcome_sql('i', '//')} = 'available' THEN to_timestamp($start + "
        "(i // $targets) * $step + 86400 * (1 + (i * 31) % 120))::TIMESTAMP END "
        "AS first_slot_at "
        f"FROM range(0, {n}) t(i)) TO '{parquet}' (FORMAT parquet)",
        {"targets": TARGETS, "start": START.timestamp(), "step": step},
    )
    days = paris_days(START, START + timedelta(days=SPAN_DAYS))
    con.execute("CREATE TABLE d (label VARCHAR, s TIMESTAMP, e TIMESTAMP)")
    con.executemany(
        "INSERT INTO d VALUES (?, ?, ?)",
        [(x.label, x.start.replace(tzinfo=None), x.end.replace(tzinfo=None)) for x in days],
    )
    t0 = time.monotonic()
    con.execute(
        "SELECT p.target_id, d.label, "
        "SUM(CASE WHEN outcome = 'available' THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN outcome = 'no_slot' THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN outcome = 'procedure_missing' THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN outcome IN ('blocked', 'error', 'unrecognized') THEN 1 ELSE 0 END) "
        f"FROM d JOIN '{parquet}' p ON p.started_at >= d.s AND p.started_at < d.e "
        "GROUP BY 1, 2"
    ).fetchall()
    con.execute(
        "SELECT target_id, strftime(started_at, '%Y-%m'), "
        "floor(epoch(first_slot_at - started_at) / 86400) AS lead, COUNT(*) "
        f"FROM '{parquet}' WHERE outcome = 'available' GROUP BY 1, 2, 3"
    ).fetchall()
    con.execute(
        "WITH v AS (SELECT target_id, started_at, CASE WHEN outcome = 'available' THEN 1 "
        f"ELSE 0 END AS o FROM '{parquet}' WHERE outcome IN ('available', 'no_slot', "
        "'procedure_missing')), g AS (SELECT *, SUM(o) OVER (PARTITION BY target_id ORDER BY "
        "started_at ROWS UNBOUNDED PRECEDING) AS run FROM v) SELECT target_id, run, "
        "MIN(started_at), MAX(started_at), COUNT(*) FROM g WHERE o = 0 GROUP BY 1, 2"
    ).fetchall()
    elapsed = time.monotonic() - t0
    con.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument(
        "--postgres",
        default=os.environ.get("OBSERVATOIRE_TEST_DATABASE_URL"),
        help="also run on this PostgreSQL database (its tables are replaced)",
    )
    args = parser.parse_args()
    rows = []

    def row(
        db: str, n: int, fill_s: float, measured: tuple[float, float, int], duck: float | None
    ) -> list[object]:
        rebuilt, seconds, groups = measured
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return [
            db,
            f"{n:,}",
            f"{fill_s:.0f}",
            f"{rebuilt:.1f}",
            f"{seconds:.2f}",
            f"{peak:.0f}",
            f"{duck:.1f}" if duck else "-",
            f"{rebuilt / duck:.1f}x" if duck else "-",
            groups,
        ]

    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            url = f"sqlite:///{Path(tmp) / f'bench-{n}.sqlite'}"
            upgrade(url)
            t0 = time.monotonic()
            fill_sqlite(url, n)
            fill_s = time.monotonic() - t0
            measured = time_stats(url)
            duck = time_duckdb(n, Path(tmp))
            rows.append(row("sqlite", n, fill_s, measured, duck))
            Path(tmp, f"bench-{n}.sqlite").unlink()
            if args.postgres:
                from observatoire.db.migrate import downgrade

                downgrade(args.postgres, "base")
                upgrade(args.postgres)
                t0 = time.monotonic()
                fill_postgres(args.postgres, n)
                fill_s = time.monotonic() - t0
                rows.append(row("postgresql", n, fill_s, time_stats(args.postgres), duck))
                downgrade(args.postgres, "base")
    print(
        table(
            [
                "database",
                "probes",
                "fill s",
                "rebuild from raw s",
                "stats s (rollups)",
                "peak RSS MB",
                "duckdb raw s",
                "rebuild vs duckdb",
                "groups",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
