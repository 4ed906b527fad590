"""Evidence dossier for a référé "mesures utiles" (CJA L. 521-3): every attempt on one
target over a period, in Europe/Paris time, with its outcome and the sha256 of each
evidence file, a summary of what a judge looks for (failed attempts in several distinct
ISO weeks, CE 10 June 2020 n° 435594; a procedure that cannot be selected counts, CE 18 Feb
2022 n° 455740), and a plain statement when those criteria are not met.

Writes `dossier.html`, `dossier.pdf` (printed by Chromium), the evidence files themselves
(named by their sha256) and `manifest.json` listing every file with its sha256, so anyone
can re-check them; `verify()` does exactly that.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from observatoire import __version__
from observatoire.browser import BrowserPool
from observatoire.clock import PARIS
from observatoire.db.models import Probe, TargetRow
from observatoire.evidence import EvidenceStore
from observatoire.evidence_render import render_png
from observatoire.outcomes import NO_WAY_TO_BOOK, Outcome
from observatoire.site import environment

#: Thumbnails rendered from saved HTML (httpx probes have no screenshot) at most.
MAX_RENDERED = 120


class DossierError(ValueError):
    pass


@dataclass
class Attempt:
    started_at: datetime
    outcome: str
    detail: str
    first_slot_at: datetime | None
    mode: str
    page_sha256: str | None
    screenshot_sha256: str | None
    thumbnail: str | None = None  # relative path of the image shown
    thumbnail_sha256: str | None = None
    rendered: bool = False

    @property
    def failed(self) -> bool:
        return Outcome(self.outcome) in NO_WAY_TO_BOOK

    @property
    def iso_week(self) -> str:
        year, week, _ = self.started_at.astimezone(PARIS).isocalendar()
        return f"{year}-S{week:02d}"


@dataclass
class Summary:
    attempts: int
    failed: int
    available: int
    not_measured: int
    weeks_with_failure: list[str]
    first: datetime | None
    last: datetime | None
    share_without_slot: float | None
    criteria_met: bool
    statements: list[str] = field(default_factory=list)


def summarize(attempts: list[Attempt]) -> Summary:
    failed = [a for a in attempts if a.failed]
    available = [a for a in attempts if a.outcome == Outcome.AVAILABLE.value]
    valid = [a for a in attempts if Outcome(a.outcome).is_valid]
    weeks = sorted({a.iso_week for a in failed})
    statements = []
    if not failed:
        statements.append(
            "Aucune tentative n'a constaté l'impossibilité de prendre "
            "rendez-vous sur la période : ce dossier ne l'établit pas."
        )
    elif len(weeks) < 2:
        statements.append(
            "Toutes les tentatives infructueuses ont eu lieu la même semaine "
            f"({weeks[0]}) : le Conseil d'État demande des tentatives qui ne "
            "soient pas toutes faites la même semaine (CE, 10 juin 2020, "
            "n° 435594)."
        )
    if available:
        statements.append(
            f"Des créneaux ont été proposés lors de {len(available)} "
            "tentative(s) sur la période : elles sont listées ci-dessous."
        )
    return Summary(
        attempts=len(attempts),
        failed=len(failed),
        available=len(available),
        not_measured=len(attempts) - len(valid),
        weeks_with_failure=weeks,
        first=attempts[0].started_at if attempts else None,
        last=attempts[-1].started_at if attempts else None,
        share_without_slot=len(failed) / len(valid) if valid else None,
        criteria_met=len(weeks) >= 2 and not available,
        statements=statements,
    )


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_dossier(
    engine: Engine,
    evidence: EvidenceStore,
    target_id: str,
    out: Path,
    since: date | None = None,
    until: date | None = None,
    user_agent: str = "",
    pdf: bool = True,
) -> dict[str, object]:
    with Session(engine) as session:
        target = session.get(TargetRow, target_id)
        if target is None:
            raise DossierError(f"unknown target {target_id!r}")
        query = select(Probe).where(Probe.target_id == target_id).order_by(Probe.started_at)
        if since:
            query = query.where(
                Probe.started_at
                >= datetime.combine(since, datetime.min.time(), PARIS).astimezone(UTC)
            )
        if until:
            nxt = date.fromordinal(until.toordinal() + 1)
            query = query.where(
                Probe.started_at < datetime.combine(nxt, datetime.min.time(), PARIS).astimezone(UTC)
            )
        attempts = [
            Attempt(
                p.started_at,
                p.outcome,
                p.detail,
                p.first_slot_at,
                p.mode,
                p.page_sha256,
                p.screenshot_sha256,
            )
            for p in session.scalars(query)
        ]
        info = {
            c: getattr(target, c)
            for c in (
                "id",
                "department",
                "department_name",
                "prefecture",
                "procedure_name",
                "label",
                "platform",
                "url",
            )
        }
    out.mkdir(parents=True, exist_ok=True)
    files_dir = out / "preuves"
    files_dir.mkdir(exist_ok=True)
    for a in attempts:
        if a.page_sha256 and evidence.path_for(a.page_sha256, "html").exists():
            (files_dir / f"{a.page_sha256}.html").write_bytes(evidence.get(a.page_sha256, "html"))
        if a.screenshot_sha256 and evidence.path_for(a.screenshot_sha256, "png").exists():
            shutil.copy(
                evidence.path_for(a.screenshot_sha256, "png"),
                files_dir / f"{a.screenshot_sha256}.png",
            )
            a.thumbnail = f"preuves/{a.screenshot_sha256}.png"
            a.thumbnail_sha256 = a.screenshot_sha256
    summary = summarize(attempts)
    asyncio.run(_render_missing(attempts, files_dir, info["url"], user_agent, pdf))

    html = (
        environment()
        .get_template("dossier/dossier.html")
        .render(
            target=info,
            attempts=attempts,
            summary=summary,
            since=since,
            until=until,
            generated_at=datetime.now(UTC),
            version=__version__,
            user_agent=user_agent,
        )
    )
    (out / "dossier.html").write_text(html, encoding="utf-8")
    if pdf:
        asyncio.run(_print_pdf(out / "dossier.html", out / "dossier.pdf", user_agent))
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json")
    manifest = {
        "target": info,
        "period": {
            "from": since.isoformat() if since else None,
            "to": until.isoformat() if until else None,
        },
        "generated_at": datetime.now(UTC).isoformat(),
        "robot_version": __version__,
        "attempts": summary.attempts,
        "failed_attempts": summary.failed,
        "iso_weeks_with_failure": summary.weeks_with_failure,
        "criteria_met": summary.criteria_met,
        "files": [
            {"path": str(p.relative_to(out)), "sha256": _sha256_file(p), "bytes": p.stat().st_size}
            for p in files
        ],
    }
    (out / "manifest.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    return manifest


async def _render_missing(
    attempts: list[Attempt], files_dir: Path, url: str, user_agent: str, enabled: bool
) -> None:
    """httpx probes kept HTML only: render a stamped image of the page as saved."""
    todo = [
        a
        for a in attempts
        if a.thumbnail is None and a.page_sha256 and (files_dir / f"{a.page_sha256}.html").exists()
    ][:MAX_RENDERED]
    if not todo or not enabled:
        return
    pool = BrowserPool(user_agent or f"observatoire/{__version__}")
    try:
        for a in todo:
            page = (files_dir / f"{a.page_sha256}.html").read_bytes()
            png = await render_png(pool, page, url, a.started_at)
            sha = hashlib.sha256(png).hexdigest()
            (files_dir / f"rendu-{sha}.png").write_bytes(png)
            a.thumbnail, a.thumbnail_sha256, a.rendered = f"preuves/rendu-{sha}.png", sha, True
    finally:
        await pool.close()


async def _print_pdf(html: Path, pdf: Path, user_agent: str) -> None:
    pool = BrowserPool(user_agent or f"observatoire/{__version__}")
    try:
        browser = await pool.browser()
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(html.resolve().as_uri(), wait_until="load")
        await page.pdf(
            path=str(pdf),
            format="A4",
            print_background=True,
            margin={"top": "15mm", "bottom": "15mm", "left": "12mm", "right": "12mm"},
        )
        await context.close()
    finally:
        await pool.close()


def verify(folder: Path) -> list[str]:
    """Problems found re-checking a dossier's files against its manifest (empty: intact)."""
    manifest_path = folder / "manifest.json"
    if not manifest_path.exists():
        return ["manifest.json is missing"]
    manifest = json.loads(manifest_path.read_text("utf-8"))
    problems = []
    listed = set()
    for entry in manifest["files"]:
        path = folder / entry["path"]
        listed.add(entry["path"])
        if not path.exists():
            problems.append(f"missing: {entry['path']}")
        elif _sha256_file(path) != entry["sha256"]:
            problems.append(f"changed: {entry['path']} (sha256 differs from the manifest)")
        elif (
            path.parent.name == "preuves"
            and not path.name.startswith("rendu-")
            and (path.stem != entry["sha256"])
        ):
            problems.append(f"renamed: {entry['path']}")
    for path in folder.rglob("*"):
        rel = str(path.relative_to(folder))
        if path.is_file() and rel != "manifest.json" and rel not in listed:
            problems.append(f"not in the manifest: {rel}")
    return problems
