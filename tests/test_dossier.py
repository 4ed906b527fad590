"""The evidence dossier: counts (ISO weeks across a year boundary included), honest
statements when the criteria are not met, PDF pages, and tamper detection."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from observatoire.cli import app
from observatoire.clock import VirtualClock
from observatoire.config import load_config
from observatoire.db import Probe, TargetRow
from observatoire.publish.dossier import build_dossier, summarize, verify
from observatoire.record.evidence import EvidenceStore
from observatoire.record.store import sync_targets
from observatoire.robot.politeness import PolitePolicy
from observatoire.robot.sweep import run_sweep
from observatoire.simulator import RunningSimulator

from .conftest import DEMO_CONFIG, REQUIRE_ALL, need_chromium
from .factories import SEINE_SAINT_DENIS, add_probe, add_target


def _insert(engine, evidence: EvidenceStore, times: list[str], outcome: str = "no_slot") -> None:
    with Session(engine) as s, s.begin():
        if s.get(TargetRow, "93-x") is None:
            add_target(s, "93-x", **{**SEINE_SAINT_DENIS, "label": "Vie privée <b>"})
        for at in times:
            page = f"<html><body>Il n'existe plus de plage horaire libre ({at})</body></html>"
            sha = evidence.put(page.encode(), "html")
            add_probe(s, "93-x", at, outcome, requests_made=5, duration_ms=10, page_sha256=sha)


def test_iso_weeks_across_a_year_boundary(engine, tmp_path: Path) -> None:
    evidence = EvidenceStore(tmp_path / "ev")
    _insert(
        engine,
        evidence,
        ["2026-12-30T09:00:00+00:00", "2027-01-02T09:00:00+00:00", "2027-01-05T09:00:00+00:00"],
    )
    _insert(engine, evidence, ["2027-01-06T09:00:00+00:00"], outcome="error")
    manifest = build_dossier(engine, evidence, "93-x", tmp_path / "d", pdf=False)
    assert manifest["attempts"] == 4 and manifest["failed_attempts"] == 3
    assert manifest["iso_weeks_with_failure"] == ["2026-S53", "2027-S01"]
    assert manifest["span_days_first_to_last_failure"] == 6.0
    assert "criteria_met" not in manifest  # facts only, never a verdict
    assert manifest["insufficient_spread_warning"] is True  # 6 days < 7
    html = (tmp_path / "d" / "dossier.html").read_text("utf-8")
    assert "Vie privée &lt;b&gt;" in html  # scraped text escaped
    assert "non compté comme échec" in html  # the error is listed, not counted
    assert verify(tmp_path / "d") == []
    # Period filter, in Paris days.
    part = build_dossier(
        engine,
        evidence,
        "93-x",
        tmp_path / "p",
        since=date(2027, 1, 1),
        until=date(2027, 1, 5),
        pdf=False,
    )
    assert part["attempts"] == 2


def test_plain_warning_when_all_failures_fall_in_one_week(engine, tmp_path: Path) -> None:
    evidence = EvidenceStore(tmp_path / "ev")
    _insert(
        engine,
        evidence,
        ["2019-09-16T09:00:00+00:00", "2019-09-17T09:00:00+00:00", "2019-09-18T09:00:00+00:00"],
    )
    manifest = build_dossier(engine, evidence, "93-x", tmp_path / "d", pdf=False)
    assert manifest["insufficient_spread_warning"] is True
    html = (tmp_path / "d" / "dossier.html").read_text("utf-8")
    assert "une seule semaine calendaire (2019-S38)" in html
    assert "jugées insuffisantes" in html and "n° 435594" in html


def test_slots_found_are_said(tmp_path: Path) -> None:
    from observatoire.publish.dossier import Attempt

    t = datetime(2026, 3, 2, 9, tzinfo=UTC)
    attempts = [
        Attempt(t, "no_slot", "", None, "auto", None, None),
        Attempt(t + timedelta(days=8), "available", "", t, "auto", None, None),
        Attempt(t + timedelta(days=15), "no_slot", "", None, "auto", None, None),
    ]
    summary = summarize(attempts)
    assert summary.available == 1 and summary.warnings == []  # 15 days, 3 weeks
    assert any("créneaux ont été proposés lors d'une tentative de" in s for s in summary.statements)


async def test_dossier_from_simulator_data_with_pdf(
    simulator: RunningSimulator, clock: VirtualClock, engine, tmp_path: Path
) -> None:
    need_chromium()
    if shutil.which("pdftoppm") is None:
        if REQUIRE_ALL:
            pytest.fail("CI needs pdftoppm (Debian poppler-utils): scripts/setup.sh installs it")
        pytest.skip("pdftoppm (poppler-utils) not installed")
    config = load_config(DEMO_CONFIG, simulator_url=simulator.base_url)
    target = config.target("75-admission-exceptionnelle-948")  # scarce slots
    sync_targets(engine, config.targets, clock.now() - timedelta(days=30))
    evidence = EvidenceStore(tmp_path / "ev")
    policy = PolitePolicy("observatoire/test", 0.0, 5.0)
    start = clock.now() - timedelta(days=20)
    try:
        for day in range(0, 20, 3):
            clock.set(start + timedelta(days=day, hours=2))
            await run_sweep(
                [target],
                engine=engine,
                evidence=evidence,
                policy=policy,
                clock=clock,
                retry_base=0.0,
            )
    finally:
        await policy.aclose()
    out = tmp_path / "dossier"
    import asyncio

    manifest = await asyncio.to_thread(build_dossier, engine, evidence, target.id, out)
    with Session(engine) as s:
        count = s.scalar(select(func.count(Probe.id)).where(Probe.target_id == target.id))
    assert manifest["attempts"] == count == 7
    assert (out / "dossier.pdf").read_bytes()[:4] == b"%PDF"
    pages = tmp_path / "pages"
    subprocess.run(
        ["pdftoppm", "-png", "-r", "40", str(out / "dossier.pdf"), str(pages)], check=True
    )
    images = sorted(tmp_path.glob("pages*.png"))
    assert len(images) >= 3  # cover, summary and method, the attempts
    listed = {f["path"] for f in json.loads((out / "manifest.json").read_text())["files"]}
    assert "dossier.pdf" in listed and any(p.startswith("preuves/rendu-") for p in listed)

    # Tampering with one evidence file is caught.
    victim = next(p for p in (out / "preuves").glob("*.html"))
    victim.write_text(victim.read_text() + "<!-- edited -->")
    problems = verify(out)
    rel = f"preuves/{victim.name}"
    found = hashlib.sha256(victim.read_bytes()).hexdigest()
    assert problems == [
        f"{rel}: fichier modifié : son sha256 est {found}, manifest.json annonce "
        f"{victim.name.split('.')[0]}"
    ]
    result = CliRunner().invoke(app, ["dossier", "--verify", str(out)])
    assert result.exit_code == 1 and f"{rel}: fichier modifié" in result.stderr
    assert f"erreur : {out}: 1 problème ; le dossier a été modifié" in result.stderr
    (out / "preuves" / "extra.txt").write_text("x")
    assert "preuves/extra.txt: fichier ajouté : manifest.json ne le liste pas" in verify(out)
