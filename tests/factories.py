"""Test data builders shared by the test modules: a target row, a probe row as the robot
stores it, a contributor, and a CLI call that must never print a traceback.

Plain functions with keyword defaults, so a test names only what it is about (the
department, the outcome, the time) and every other column keeps one reviewed default.
`mixed_probes` stores a month through the real paths (robot store, capture reception).
Modules used to copy these builders, or import them from one another's test files, which
made a fixture run twice and hid which copy a change had to follow.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner, Result

from observatoire.captures.contributors import ContributorInfo, add_contributor
from observatoire.captures.ocr import OcrReading
from observatoire.captures.reception import CaptureService
from observatoire.cli import app
from observatoire.db import Probe, TargetRow
from observatoire.db.migrate import upgrade
from observatoire.db.models import Contributor
from observatoire.outcomes import Outcome, ProbeResult
from observatoire.record.evidence import EvidenceStore
from observatoire.record.store import ProbeRecord, save_probe

NOW = datetime(2026, 1, 1, tzinfo=UTC)

#: A real-looking legacy target in Seine-Saint-Denis, for dossiers that print the address.
SEINE_SAINT_DENIS: dict[str, Any] = {
    "department": "93",
    "department_name": "Seine-Saint-Denis",
    "prefecture": "Bobigny",
    "procedure": "titre-sejour",
    "procedure_name": "Titre de séjour",
    "label": "Vie privée",
    "url": "https://www.seine-saint-denis.gouv.fr/booking/create/9845",
}


#: A valid targets file on the real hosts (legacy booking pages of Hauts-de-Seine): the
#: config tests mutate it line by line, and the CLI must refuse to probe it without a
#: contact URL.
VALID_TARGETS = """\
version: 1
defaults:
  interval_minutes: 60
procedures:
  renouvellement: Renouvellement
  naturalisation: Naturalisation
departments:
  - code: "92"
    name: Hauts-de-Seine
    prefecture: Nanterre
    targets:
      - id: 92-renouvellement-1
        procedure: renouvellement
        label: Renouvellement
        platform: legacy_booking
        url: https://www.hauts-de-seine.gouv.fr/booking/create/12249
        options: {planning: 15538}
      - id: 92-naturalisation-2
        procedure: naturalisation
        label: Naturalisation
        platform: legacy_booking
        url: https://www.hauts-de-seine.gouv.fr/booking/create/13525
  - code: "2A"
    name: Corse-du-Sud
    prefecture: Ajaccio
    targets: []
"""


def invoke(*args: str) -> Result:
    """Run a CLI command in-process; a traceback in its output is a failure in itself,
    because bad input must end with a clear message, never a stack."""
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.output + result.stderr, result.output + result.stderr
    return result


def robot_env(tmp_path: Path, targets_yaml: str, **extra: str) -> dict[str, str]:
    """The environment of a robot run as a subprocess (daemon, kill and signal tests): a
    migrated SQLite database and the targets file in `tmp_path`, no politeness delay
    (loopback only), and no contact URL, so nothing can be pointed at a real host.
    `extra` adds or overrides variables."""
    db = f"sqlite:///{tmp_path / 'd.sqlite'}"
    upgrade(db)
    (tmp_path / "targets.yaml").write_text(targets_yaml, encoding="utf-8")
    env = {
        **os.environ,
        "OBSERVATOIRE_DATABASE_URL": db,
        "OBSERVATOIRE_DATA_DIR": str(tmp_path / "data"),
        "OBSERVATOIRE_MIN_DELAY_SECONDS": "0",
        "OBSERVATOIRE_RETRY_BASE_SECONDS": "0",
        "CFG": str(tmp_path / "targets.yaml"),
        **extra,
    }
    env.pop("OBSERVATOIRE_CONTACT_URL", None)
    return env


def target_row(
    tid: str,
    dept: str = "92",
    name: str = "Hauts-de-Seine",
    procedure: str = "p",
    *,
    created: datetime = NOW,
    **fields: Any,
) -> TargetRow:
    """A legacy-booking target on loopback; `fields` override any column."""
    values: dict[str, Any] = {
        "id": tid,
        "department": dept,
        "department_name": name,
        "prefecture": "X",
        "procedure": procedure,
        "procedure_name": procedure.upper(),
        "label": "L",
        "platform": "legacy_booking",
        "url": f"http://127.0.0.1/{tid}/booking/create/1",
        "site": None,
        "options": {},
        "interval_minutes": 60,
        "enabled": True,
        "config_hash": "0" * 16,
        "created_at": created,
        "updated_at": created,
    }
    values.update(fields)
    return TargetRow(**values)


def add_target(
    db: Session | Engine,
    tid: str,
    dept: str = "92",
    name: str = "Hauts-de-Seine",
    procedure: str = "p",
    *,
    created: datetime = NOW,
    **fields: Any,
) -> str:
    """Insert `target_row(...)` in an open session (flushed, so probes can follow) or, given
    an engine, in a transaction of its own. Returns the target id."""
    row = target_row(tid, dept, name, procedure, created=created, **fields)
    if isinstance(db, Session):
        db.add(row)
        db.flush()
    else:
        with Session(db) as s, s.begin():
            s.add(row)
    return tid


def probe_row(tid: str, at: str | datetime, outcome: str = "no_slot", **fields: Any) -> Probe:
    """An automatic probe that started and finished at `at` (ISO text or aware datetime);
    `fields` override any column (slots, evidence hashes, mode, counts)."""
    when = datetime.fromisoformat(at) if isinstance(at, str) else at
    values: dict[str, Any] = {
        "target_id": tid,
        "started_at": when,
        "finished_at": when,
        "outcome": outcome,
        "detail": "",
        "requests_made": 1,
        "attempts": 1,
        "duration_ms": 1,
        "adapter": "legacy_booking",
        "adapter_version": "1.0",
        "robot_version": "0",
        "mode": "auto",
    }
    values.update(fields)
    return Probe(**values)


def add_probe(
    db: Session | Engine, tid: str, at: str | datetime, outcome: str = "no_slot", **fields: Any
) -> None:
    """Insert `probe_row(...)`, in an open session or, given an engine, in its own
    transaction. Rows added this way bypass the rollups: call `rebuild` before reading."""
    row = probe_row(tid, at, outcome, **fields)
    if isinstance(db, Session):
        db.add(row)
    else:
        with Session(db) as s, s.begin():
            s.add(row)


def insert_contributor(
    engine: Engine, pseudonym: str, role: str = "applicant", opted_in: bool = False
) -> int:
    """A contributor row written directly, its token hash derived from the pseudonym (the
    reception's `add_contributor` draws a random token). Returns its id."""
    with Session(engine) as s, s.begin():
        row = Contributor(
            pseudonym=pseudonym,
            role=role,
            opted_in=opted_in,
            token_sha256=hashlib.sha256(pseudonym.encode()).hexdigest(),
            created_at=NOW,
        )
        s.add(row)
        s.flush()
        return row.id


def probe_record(tid: str, at: datetime, result: ProbeResult, **fields: Any) -> ProbeRecord:
    """What the robot hands to `save_probe`: started and finished at `at`, one attempt of
    ten milliseconds; `fields` override the rest (adapter, mode, volunteer, follow-up)."""
    values: dict[str, Any] = {
        "scheduled_at": None,
        "requests_made": 1,
        "attempts": 1,
        "duration_ms": 10,
        "adapter": "legacy_booking",
        "adapter_version": "1.0",
    }
    values.update(fields)
    return ProbeRecord(target_id=tid, started_at=at, finished_at=at, result=result, **values)


# -- probes stored through the real paths (robot store, capture reception) ---------------
PRIVATE_PAGE = b"<html><body>page privee du demandeur 7f3a9c</body></html>"
PRIVATE_AT = datetime(2026, 3, 11, 8, 17, 43, tzinfo=UTC)


def robot_probe(
    engine: Engine,
    evidence: EvidenceStore,
    tid: str,
    at: datetime,
    result: ProbeResult,
    followup: bool = False,
) -> None:
    save_probe(engine, evidence, probe_record(tid, at, result, followup=followup))


def manual_probe(
    engine: Engine, evidence: EvidenceStore, who: ContributorInfo, tid: str, at: datetime,
    result: ProbeResult, page: bytes | None = None,
) -> None:  # fmt: skip
    """A capture stored by the reception desk, as the extension's would be."""
    CaptureService(engine, evidence)._store(
        who, "page", at, None, f"http://127.0.0.1/{tid}/booking/create/1", tid,
        "legacy_booking", result, page, None, None, "none", "", None,
    )  # fmt: skip


def mixed_probes(engine: Engine, evidence: EvidenceStore) -> None:
    """Regular probes, follow-ups, a private applicant's captures (not opted in), an
    opted-in applicant's and a volunteer's, over a month boundary (Paris), stored in
    time order as they would arrive."""
    with Session(engine) as s, s.begin():
        add_target(s, "92-a", "92", "Hauts-de-Seine", "renouvellement")
        add_target(s, "93-b", "93", "Seine-Saint-Denis", "naturalisation")
    private, _ = add_contributor(engine, "demandeur-prive", "applicant", PRIVATE_AT)
    public, _ = add_contributor(engine, "demandeur-public", "applicant", PRIVATE_AT, opted_in=True)
    volunteer, _ = add_contributor(engine, "benevole-mardi", "volunteer", PRIVATE_AT)
    start = datetime(2026, 3, 9, 9, 0, tzinfo=UTC)
    no_slot = ProbeResult(Outcome.NO_SLOT)
    events: list[tuple[datetime, Callable[[], None]]] = []

    def robot(tid: str, at: datetime, result: ProbeResult, followup: bool = False) -> None:
        events.append((at, lambda: robot_probe(engine, evidence, tid, at, result, followup)))

    def manual(who: ContributorInfo, tid: str, at: datetime, result: ProbeResult) -> None:
        page = result.page
        events.append((at, lambda: manual_probe(engine, evidence, who, tid, at, result, page)))

    for tid in ("92-a", "93-b"):
        for day in range(0, 30, 3):
            at = start + timedelta(days=day)
            if day % 9 == 6:
                robot(tid, at, ProbeResult.with_slots([at + timedelta(days=d) for d in (12, 40)]))
            else:
                robot(tid, at, no_slot)
            later = at + timedelta(hours=1)
            robot(tid, later, ProbeResult.with_slots([later + timedelta(days=2)]), followup=True)
    # Inside a no-slot run of 92-a: counted, this one would end the episode.
    found = ProbeResult.with_slots([PRIVATE_AT + timedelta(days=3)], page=PRIVATE_PAGE)
    manual(private, "92-a", PRIVATE_AT, found)
    retired = ProbeResult(Outcome.ERROR, "target_retired")
    manual(private, "93-b", PRIVATE_AT + timedelta(days=30), retired)
    manual(public, "93-b", PRIVATE_AT + timedelta(hours=5), no_slot)
    manual(volunteer, "93-b", PRIVATE_AT + timedelta(days=1), replace(found, page=None))
    for _, store in sorted(events, key=lambda e: e[0]):
        store()


def doubtful_capture(
    engine: Engine,
    evidence: EvidenceStore,
    who: ContributorInfo,
    tid: str,
    at: datetime,
    result: ProbeResult,
) -> int:
    """A phone screenshot read as `result`, sent from a phone whose clock is two hours
    off: stored by the reception desk as a probe, waiting for review. Returns the
    capture's id."""
    detail = result.detail or f"ocr:{result.outcome.value}"
    reading = OcrReading(result.outcome, detail, "texte lu", first_slot_at=result.first_slot_at)
    shot = b"\x89PNG\r\n\x1a\n" + f"{tid} {at.isoformat()}".encode()
    done = CaptureService(engine, evidence).receive_screenshot(
        who, shot, tid, at, client_time=at - timedelta(hours=2), ocr=reading
    )
    assert (done.review, done.review_reason) == ("pending", "client_clock_differs"), done
    return done.id
