"""Drift is visible to the operator: page fingerprints, `observatoire unrecognized` on a
real SQLite database with real evidence files, and the streaks `status` flags."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from observatoire.cli import app
from observatoire.config import load_config
from observatoire.db import make_engine
from observatoire.health import check_health
from observatoire.outcomes import Outcome, ProbeResult
from observatoire.record.evidence import EvidenceStore
from observatoire.record.fingerprint import UNPARSEABLE, drift_report, fingerprint
from observatoire.record.store import ProbeRecord, save_probe, sync_targets
from observatoire.settings import Settings

# Two captures of one template: other texts, other values, other counts of list items,
# other digits in ids, and the robot's stamp in one of them.
CAPTCHA_A = b"""<!DOCTYPE html><html lang="fr"><head><title>Captcha</title>
<meta name="csrf" content="abc123"></head><body>
<div data-observatoire="stamp"><p>observatoire, 02/03/2026 10:00</p><span>x</span></div>
<main id="main-12" class="fr-container"><h1>V\xc3\xa9rification</h1>
<form action="/rdvpref/reservation/demarche/4418/cgu/" method="post">
<img class="captcha" src="data:image/png;base64,AAAA"><input name="captcha" value="">
<ul class="steps"><li>un</li><li>deux</li></ul>
<button type="submit" class="fr-btn">Valider</button></form></main></body></html>"""
CAPTCHA_B = b"""<!DOCTYPE html><html lang="fr"><head><title>Autre titre</title>
<meta name="csrf" content="zzz999"></head><body>
<main id="main-7" class="fr-container"><h1>Autre texte, tout autre</h1>
<form action="/rdvpref/reservation/demarche/3327/cgu/" method="get">
<img class="captcha" src="data:image/png;base64,BBBBBBBB"><input name="captcha" value="x">
<ul class="steps"><li>un</li><li>deux</li><li>trois</li><li>quatre</li></ul>
<button type="submit" class="fr-btn">Continuer</button></form></main></body></html>"""
# A different shape: the same words, other elements.
CLOUDFLARE = b"""<!DOCTYPE html><html><head><title>Captcha</title></head><body>
<div id="cf-wrapper" class="cf-error-overview"><h1>V\xc3\xa9rification</h1>
<div class="cf-section"><p>Valider</p></div></div></body></html>"""


def test_fingerprint_ignores_text_and_values_but_not_structure() -> None:
    assert fingerprint(CAPTCHA_A) == fingerprint(CAPTCHA_B)
    assert fingerprint(CAPTCHA_A) != fingerprint(CLOUDFLARE)
    # Saved evidence is gzip: the fingerprint reads both.
    assert fingerprint(gzip.compress(CAPTCHA_B)) == fingerprint(CAPTCHA_A)
    # One more class, one other id, one more wrapper: another shape.
    assert fingerprint(CAPTCHA_A.replace(b'class="fr-btn"', b'class="fr-btn big"')) != (
        fingerprint(CAPTCHA_A)
    )
    assert fingerprint(CAPTCHA_A.replace(b'id="main-12"', b'id="content"')) != (
        fingerprint(CAPTCHA_A)
    )
    assert fingerprint(
        CAPTCHA_A.replace(b"<h1>", b"<div><h1>").replace(b"</h1>", b"</h1></div>")
    ) != fingerprint(CAPTCHA_A)
    # Class order does not matter; the robot's stamp does not count.
    assert fingerprint(CAPTCHA_A.replace(b'class="fr-btn"', b'class="fr-btn  "')) == (
        fingerprint(CAPTCHA_A)
    )
    assert fingerprint(b"") == fingerprint(b"  \n") == UNPARSEABLE


T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # Monday 2 March 2026, 10:00 in Paris
CONFIG = """version: 1
procedures:
  titre-sejour: Titre de séjour
departments:
  - code: "92"
    name: Hauts-de-Seine
    prefecture: Nanterre
    targets:
{targets}
"""
TARGET = """      - id: 92-t{n}
        procedure: titre-sejour
        label: Page {n}
        platform: legacy_booking
        url: "http://127.0.0.1:9/www.hauts-de-seine.gouv.fr/booking/create/{n}"
"""


@pytest.fixture
def filled(cli_env: dict[str, str], tmp_path: Path):
    """A migrated SQLite database with probes and their evidence, saved as the robot
    saves them (content-addressed, gzip): a captcha shape that appears on Tuesday on
    four targets, a Cloudflare page, a timeout without page, and probes that do not
    belong in the report."""
    path = tmp_path / "targets.yaml"
    path.write_text(
        CONFIG.format(targets="".join(TARGET.format(n=n) for n in range(1, 7))), "utf-8"
    )
    assert CliRunner().invoke(app, ["db", "upgrade"]).exit_code == 0
    settings = Settings.from_env()
    engine = make_engine(settings.database_url)
    config = load_config(path)
    sync_targets(engine, config.targets, T0)
    evidence = EvidenceStore(settings.evidence_dir)

    def add(target: str, when: datetime, outcome: Outcome, detail: str, page: bytes | None):
        save_probe(
            engine,
            evidence,
            ProbeRecord(
                target_id=target,
                scheduled_at=when,
                started_at=when,
                finished_at=when,
                result=ProbeResult(outcome, detail, page=page),
                requests_made=1,
                attempts=1,
                duration_ms=1,
                adapter="legacy_booking",
                adapter_version="1.0",
            ),
        )

    tuesday = T0 + timedelta(days=1)
    add("92-t1", T0, Outcome.NO_SLOT, "", b"<html><body><p>ok</p></body></html>")
    add("92-t1", T0 + timedelta(hours=1), Outcome.ERROR, "http:503", None)
    add("92-t5", T0, Outcome.BLOCKED, "cloudflare", CLOUDFLARE)
    for n in range(1, 5):
        page = CAPTCHA_A if n % 2 else CAPTCHA_B.replace(b"Autre texte", f"page {n}".encode())
        add(f"92-t{n}", tuesday + timedelta(hours=n), Outcome.UNRECOGNIZED, "no_message", page)
    add("92-t6", tuesday + timedelta(days=1), Outcome.UNRECOGNIZED, "timeout:read", None)
    return engine, evidence, path


def test_unrecognized_groups_probes_by_page_shape(filled) -> None:
    engine, evidence, _ = filled
    result = CliRunner().invoke(app, ["unrecognized", "--json"])
    assert result.exit_code == 0, result.output
    groups = json.loads(result.stdout)
    assert len(groups) == 3  # the captcha shape, the Cloudflare page, the timeout
    by_kind = {(g["kind"], g["fingerprint"] or g["detail"]): g for g in groups}
    captcha = by_kind[("page", fingerprint(CAPTCHA_A))]
    assert (captcha["probes"], captcha["targets"]) == (4, 4)
    assert captcha["target_ids"] == ["92-t1", "92-t2", "92-t3", "92-t4"]
    assert captcha["first_seen"] == "2026-03-03T11:00:00+01:00"  # Tuesday, Paris time
    assert captcha["last_seen"] == "2026-03-03T14:00:00+01:00"
    assert captcha["mix"] == {"unrecognized/no_message": 4}
    example = Path(captcha["example_path"])
    assert example.exists() and example.name.endswith(".html.gz")
    assert fingerprint(example.read_bytes()) == captcha["fingerprint"]
    cloudflare = by_kind[("page", fingerprint(CLOUDFLARE))]
    assert cloudflare["mix"] == {"blocked/cloudflare": 1}
    timeout = by_kind[("detail", "timeout:read")]
    assert timeout["probes"] == 1 and timeout["example_path"] is None
    # Newest shapes first: the timeout (Wednesday), the captcha (Tuesday), Cloudflare.
    assert [g["probes"] for g in groups] == [1, 4, 1]
    assert groups[-1]["fingerprint"] == fingerprint(CLOUDFLARE)
    # Neither the no_slot nor the error probe is listed.
    assert sum(g["probes"] for g in groups) == 6

    # --since is a Paris day; --adapter filters.
    since = json.loads(
        CliRunner().invoke(app, ["unrecognized", "--json", "--since", "2026-03-04"]).stdout
    )
    assert [g["detail"] for g in since] == ["timeout:read"]
    other = CliRunner().invoke(app, ["unrecognized", "--adapter", "rdv_prefecture"])
    assert other.exit_code == 0 and "no unrecognized or blocked probe" in other.stdout

    table = CliRunner().invoke(app, ["unrecognized"])
    assert table.exit_code == 0
    assert fingerprint(CAPTCHA_A) in table.stdout and "Tue 2026-03-03 11:00" in table.stdout
    assert "no page:" in table.stdout and "timeout:read" in table.stdout

    # Pruned evidence: grouped by detail, said plainly.
    example.unlink()
    groups = drift_report(engine, evidence)
    keys = {g.key: g for g in groups}
    assert keys["detail:no_message (page file missing)"].probes == 1  # the example's page


def test_unrecognized_rejects_bad_options(filled) -> None:
    bad = CliRunner().invoke(app, ["unrecognized", "--since", "mardi"])
    assert bad.exit_code == 2 and "2026-03-01" in bad.stderr and "Traceback" not in bad.output
    bad = CliRunner().invoke(app, ["unrecognized", "--adapter", "nope"])
    assert bad.exit_code == 2 and "unknown adapter" in bad.stderr


def test_status_flags_streaks(filled) -> None:
    engine, evidence, path = filled
    config = load_config(path)
    start = T0 + timedelta(days=3)
    streaks = {
        "92-t1": [Outcome.UNRECOGNIZED] * 5,
        "92-t2": [Outcome.ERROR] * 5,  # target_retired, below
        "92-t3": [Outcome.BLOCKED] * 5,
        "92-t4": [Outcome.NO_SLOT] + [Outcome.UNRECOGNIZED] * 4,  # oldest is fine
        "92-t5": [Outcome.UNRECOGNIZED] * 3 + [Outcome.BLOCKED] * 2,  # mixed
    }
    for target, outcomes in streaks.items():
        for i, outcome in enumerate(outcomes):
            detail = "target_retired" if outcome is Outcome.ERROR else "x"
            when = start + timedelta(hours=i)
            save_probe(
                engine,
                evidence,
                ProbeRecord(
                    target,
                    when,
                    when,
                    when,
                    ProbeResult(outcome, detail),
                    1,
                    1,
                    1,
                    "legacy_booking",
                    "1.0",
                ),
            )
    now = start + timedelta(hours=6)
    report = check_health(engine, config.targets, now)
    flags = {f.split(":", 1)[0]: f for f in report.flags if "not probed" not in f}
    assert set(flags) == {"92-t1", "92-t2", "92-t3"}
    assert "all unrecognized" in flags["92-t1"] and "unrecognized --adapter" in flags["92-t1"]
    assert "link retired" in flags["92-t2"] and "finding" in flags["92-t2"]
    assert "all blocked" in flags["92-t3"]
    # With N = 4, 92-t4's last four are all unrecognized.
    report = check_health(engine, config.targets, now, last_n=4)
    assert any(f.startswith("92-t4: last 4 probes all unrecognized") for f in report.flags)
    # Fewer probes than N: no verdict yet (92-t6 has one unrecognized probe).
    report = check_health(engine, config.targets, now, last_n=1)
    assert any(f.startswith("92-t6: last 1 probes all unrecognized") for f in report.flags)
    assert not any(
        f.startswith("92-t6: last") for f in check_health(engine, config.targets, now).flags
    )

    # The command: exit 1 (needs a human), the streaks in its JSON, --last checked.
    result = CliRunner().invoke(app, ["status", "--config", str(path), "--log-json"])
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert any(f.startswith("92-t2: last 5 probes: link retired") for f in payload["flags"])
    row = next(r for r in payload["targets"] if r["target"] == "92-t3")
    assert "all blocked" in row["flag"]
    assert CliRunner().invoke(app, ["status", "--config", str(path), "--last", "0"]).exit_code == 2


def test_a_disabled_target_is_not_flagged(filled, tmp_path: Path) -> None:
    engine, evidence, path = filled
    text = path.read_text("utf-8").replace(
        "        label: Page 6\n", "        label: Page 6\n        enabled: false\n"
    )
    path.write_text(text, "utf-8")
    config = load_config(path)
    now = T0 + timedelta(days=2)
    assert not any(
        f.startswith("92-t6") for f in check_health(engine, config.targets, now, 1).flags
    )


def test_report_and_streaks_on_both_databases(engine, tmp_path: Path) -> None:
    """The streaming query and the window function, on SQLite and PostgreSQL alike."""
    path = tmp_path / "targets.yaml"
    path.write_text(CONFIG.format(targets=TARGET.format(n=1) + TARGET.format(n=2)), "utf-8")
    config = load_config(path)
    sync_targets(engine, config.targets, T0)
    evidence = EvidenceStore(tmp_path / "evidence")
    for i in range(6):
        for target, page in (("92-t1", CAPTCHA_A), ("92-t2", CAPTCHA_B)):
            when = T0 + timedelta(hours=i)
            result = ProbeResult(Outcome.UNRECOGNIZED, "no_message", page=page)
            record = ProbeRecord(target, when, when, when, result, 1, 1, 1, "legacy_booking", "1")
            save_probe(engine, evidence, record)
    groups = drift_report(engine, evidence, since=T0 + timedelta(hours=1), chunk=3)
    assert [(g.probes, len(g.targets)) for g in groups] == [(10, 2)]
    assert groups[0].last_seen == T0 + timedelta(hours=5)
    flags = check_health(engine, config.targets, T0 + timedelta(hours=6)).flags
    streaks = sorted(f.split(":")[0] for f in flags if "last 5 probes all unrecognized" in f)
    assert streaks == ["92-t1", "92-t2"]
