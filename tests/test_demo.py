"""The demo end to end: simulator → probes → database → statistics → CSV → site."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from observatoire.config import load_config
from observatoire.db import Probe, make_engine
from observatoire.demo import run_demo

from .conftest import DEMO_CONFIG


def test_demo_end_to_end(tmp_path: Path) -> None:
    end = datetime(2026, 4, 2, 12, tzinfo=UTC)
    report = run_demo(tmp_path / "demo", days=3, every_hours=6, end=end, show_progress=False)
    assert report.violations == []
    assert report.max_in_flight == 1
    # Every target keeps its own cadence over 3 days of sweeps every 6 hours.
    config = load_config(DEMO_CONFIG, simulator_url="http://127.0.0.1:9")
    automatic = [t for t in config.targets if t.platform != "rdv_prefecture"]
    expected = sum(-(-12 * 360 // t.interval_minutes) for t in automatic)
    # One permanence (Monday 30 March, 14:00 in Paris): each captcha-first target once.
    assert report.assisted == len(config.targets) - len(automatic) == 3
    assert report.probes == expected + report.assisted
    assert report.requests >= 3 * report.probes

    engine = make_engine(report.database_url)
    with Session(engine) as session:
        assert session.scalar(select(func.count(Probe.id))) == report.probes
        first, last = session.execute(
            select(func.min(Probe.started_at), func.max(Probe.started_at))
        ).one()
        adapters = set(session.scalars(select(Probe.adapter).distinct()))
        no_evidence = session.scalar(
            select(func.count(Probe.id)).where(Probe.page_sha256.is_(None))
        )
    engine.dispose()
    # Every row comes from a real probe through the real adapter, over the virtual period.
    assert adapters == {"legacy_booking", "eappointment", "demarches_simplifiees", "rdv_prefecture"}
    assert no_evidence == 0
    assert end - timedelta(days=3) <= first < end - timedelta(days=3) + timedelta(hours=1)
    assert last > end - timedelta(hours=7)

    html = report.site_index.read_text("utf-8")
    assert "Données simulées" in html
    assert "Hauts-de-Seine" in html and "Seine-Maritime" in html
    assert "%" in html

    stats = pd.read_csv(report.export_dir / "stats_department.csv", dtype={"department": str})
    assert set(stats["month"]) == {"2026-03", "2026-04"}
    assert "92" in set(stats["department"])
    assert stats["probes"].sum() == report.probes
    assert stats["probes_assisted"].sum() == report.assisted
    # Coverage counts automatic probes only: the assisted ones are published beside it.
    dept92 = stats[stats["department"] == "92"]
    assert (dept92["probes_assisted"] > 0).any()
    assert "avec un bénévole" in (report.site_index.parent / "departements" / "92.html").read_text(
        "utf-8"
    )


def _probe_rows(url: str) -> list[tuple[object, ...]]:
    engine = make_engine(url)
    with Session(engine) as session:
        rows = session.execute(
            select(
                Probe.target_id, Probe.scheduled_at, Probe.mode, Probe.outcome, Probe.detail
            ).order_by(Probe.target_id, Probe.scheduled_at, Probe.started_at)
        ).all()
    engine.dispose()
    return [tuple(r) for r in rows]


def test_demo_can_rerun_in_place(tmp_path: Path) -> None:
    end = datetime(2026, 4, 2, 12, tzinfo=UTC)
    first = run_demo(tmp_path / "d", days=1, every_hours=12, end=end, show_progress=False)
    rows = _probe_rows(first.database_url)
    second = run_demo(tmp_path / "d", days=1, every_hours=12, end=end, show_progress=False)
    assert first.probes == second.probes > 0
    assert second.outcomes == first.outcomes  # same seed, same virtual time: same truth
    # Row for row, however the concurrent sites interleaved (faults drawn per site).
    assert _probe_rows(second.database_url) == rows
