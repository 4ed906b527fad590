"""Evidence retention: the window, then state changes, anomalies and one probe per
target per day; rows stay, files shared by a kept probe stay."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from observatoire.config import load_config
from observatoire.db.models import Probe
from observatoire.outcomes import Outcome, ProbeResult
from observatoire.record.evidence import EvidenceStore
from observatoire.record.retention import prune_evidence
from observatoire.record.store import ProbeRecord, save_probe, sync_targets

from .conftest import DEMO_CONFIG, T0

TARGET = "92-remise-titre-12083"


def test_retention_keeps_what_a_dossier_needs(engine: Engine, tmp_path: Path) -> None:
    cfg = load_config(DEMO_CONFIG, simulator_url="http://127.0.0.1:9")
    sync_targets(engine, cfg.targets, T0 - timedelta(days=200))
    store = EvidenceStore(tmp_path / "evidence")
    shared = b"<html>Il n'existe plus de plage horaire libre</html>"  # identical pages

    def probe(days_ago: float, outcome: Outcome, page: bytes) -> int:
        when = T0 - timedelta(days=days_ago)
        result = ProbeResult(outcome, page=page, screenshot=b"\x89PNG" + page)
        record = ProbeRecord(TARGET, when, when, when, result, 3, 1, 5, "legacy_booking", "1")
        return save_probe(engine, store, record)

    # Old day 1 (120 days ago): four hourly probes.
    old = [
        probe(120.0, Outcome.NO_SLOT, shared),  # first of the day: kept
        probe(119.96, Outcome.NO_SLOT, b"<html>no slot 2</html>"),  # pruned
        probe(119.92, Outcome.BLOCKED, b"<html>captcha</html>"),  # anomaly: kept
        probe(119.88, Outcome.NO_SLOT, b"<html>no slot 4</html>"),  # change: kept
        probe(119.84, Outcome.NO_SLOT, shared),  # pruned, but its file is shared
    ]
    recent = probe(10, Outcome.NO_SLOT, b"<html>recent</html>")  # in the window

    dry = prune_evidence(engine, store, T0, 90, dry_run=True)
    assert (dry.examined, dry.pruned_probes) == (6, 2)
    report = prune_evidence(engine, store, T0, 90)
    assert report.pruned_probes == 2
    assert report.files_deleted == 2  # no slot 2 (html + png); the shared file stays
    with Session(engine) as session:
        rows = {p.id: p for p in session.scalars(select(Probe))}
    assert len(rows) == 6  # rows are never deleted
    pruned = {old[1], old[4]}
    for pid, row in rows.items():
        if pid in pruned:
            assert row.page_sha256 is None and row.screenshot_sha256 is None
            assert row.outcome == "no_slot"
        else:
            assert row.page_sha256 and store.verify(row.page_sha256, "html"), pid
            assert row.screenshot_sha256 and store.verify(row.screenshot_sha256, "png")
    assert rows[recent].page_sha256
    # Idempotent.
    again = prune_evidence(engine, store, T0, 90)
    assert (again.pruned_probes, again.files_deleted) == (0, 0)
