"""The dossier as a judge and a prefecture's lawyer read it (issue 19), and the
applicant's dossier (issue 21, item 5): neutral facts and no verdict, the warning of CE
435594 for a short spread, "Portée et limites", quoted platform sentences, what was
sought and offered, newest first with every omission explained, the applicant's annexed
files hashed and verified, simulated data marked, a header and footer on every PDF
page, and the applicant's own attempts as the main part of their dossier.

The data are inserted as the robot and the capture reception store them (a demo-like
database), so each test builds in a second; one test prints the PDF with Chromium."""

from __future__ import annotations

import hashlib
import html
import json
import re
import shutil
import subprocess
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from observatoire.cli import app
from observatoire.db import make_engine
from observatoire.db.migrate import upgrade
from observatoire.publish.dossier import (
    SIMULATED_MARK,
    DossierError,
    Issuer,
    build_dossier,
    details_fr,
    summarize,
    verify,
)
from observatoire.record.evidence import EvidenceStore

from . import factories
from .conftest import REQUIRE_ALL, need_chromium
from .factories import insert_contributor

NO_SLOT = (
    "Il n'existe plus de plage horaire libre pour votre demande de rendez-vous. "
    "Veuillez recommencer ultérieurement."
)
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cf00000301010018dd8db40000000049454e44ae426082"
)
REAL_URL = "https://www.seine-saint-denis.gouv.fr/booking/create/9845"


def no_slot_page(stamp: str = "") -> bytes:
    """A legacy result page as the platform writes it (what the adapter recognised)."""
    return (
        '<html><body><form id="FormBookingCreate"><h2>Vérification de disponibilité</h2>'
        f"<p>{NO_SLOT}</p>{stamp}</form></body></html>"
    ).encode()


#: The counter page offering the afternoon counter when the morning one was sought.
OTHER_COUNTER = (
    '<html><body><form id="FormBookingCreate"><fieldset id="fchoix_Booking">'
    '<p class="Bligne"><input type="radio" name="planning" id="planning9847" value="9847">'
    '<label for="planning9847">Guichet après-midi</label></p></fieldset></form></body></html>'
).encode()


def add_target(
    engine,
    tid: str = "93-renouvellement-9845",
    url: str = REAL_URL,
    procedure: str = "renouvellement",
) -> str:
    return factories.add_target(
        engine,
        tid,
        "93",
        "Seine-Saint-Denis",
        procedure,
        prefecture="Bobigny",
        procedure_name="Renouvellement d'un titre de séjour",
        label="Renouvellement - guichet du matin",
        url=url,
        options={"planning": 9846},
    )


def add_probes(
    engine,
    evidence: EvidenceStore,
    tid: str,
    times: list[datetime],
    outcome: str = "no_slot",
    detail: str = "",
    page: bytes | None = None,
    screenshot: bytes | None = None,
    mode: str = "auto",
    contributor: int | None = None,
    volunteer: str | None = None,
) -> None:
    with Session(engine) as s, s.begin():
        for when in times:
            body = page if page is not None else no_slot_page(f"<!-- {when.isoformat()} -->")
            factories.add_probe(
                s,
                tid,
                when,
                outcome,
                detail=detail,
                requests_made=3,
                duration_ms=10,
                mode=mode,
                volunteer=volunteer,
                contributor_id=contributor,
                page_sha256=evidence.put(body, "html"),
                screenshot_sha256=evidence.put(screenshot, "png") if screenshot else None,
            )


def text_of(page: str) -> str:
    """What a reader sees: tags dropped, entities decoded, spaces folded."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def test_two_days_get_the_warning_and_no_verdict(engine, tmp_path: Path) -> None:
    """Sunday 22 and Monday 23 November 2026: two ISO weeks, 42 hours. The old dossier
    printed a green "criteria met" box; now: facts, and the warning of CE 435594."""
    evidence = EvidenceStore(tmp_path / "ev")
    tid = add_target(engine)
    sunday = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)  # 10:00 in Paris
    add_probes(engine, evidence, tid, [sunday, sunday + timedelta(hours=42)])
    add_probes(
        engine,
        evidence,
        tid,
        [sunday + timedelta(hours=30)],  # Monday 16:00 in Paris
        outcome="procedure_missing",
        detail="counter_not_offered",
        page=OTHER_COUNTER,
    )
    manifest = build_dossier(
        engine,
        evidence,
        tid,
        tmp_path / "d",
        pdf=False,
        opening_hours="lun-ven 09:00-12:00, 13:30-16:30",
        issuer=Issuer("Association Droit au séjour", "mailto:contact@example.org", "C. Martin"),
    )
    page = (tmp_path / "d" / "dossier.html").read_text("utf-8")
    text = text_of(page)
    assert manifest["iso_weeks_with_failure"] == ["2026-S47", "2026-S48"]
    assert manifest["failed_attempts"] == 3 and manifest["insufficient_spread_warning"] is True
    # Sunday 10:00 (closed), Monday 16:00 (open), Tuesday 04:00 (closed), Paris time.
    assert manifest["failures_within_opening_hours"] == 1
    # No verdict, anywhere.
    assert "criteria_met" not in manifest
    assert 'class="met"' not in page and "critères" not in text and "réunis" not in text
    # The warning, citing the decision, and the facts up front.
    assert "jugées insuffisantes" in text and "10 juin 2020, n° 435594" in text
    assert "42,0 heures" in text  # from the first to the last failure
    assert "dimanche (1)" in text and "lundi (1)" in text and "mardi (1)" in text
    assert "Plus long intervalle entre deux tentatives" in text
    # "Portée et limites", in plain French, with the renewal's presumption of urgency.
    assert "Portée et limites" in text
    assert "ne sont pas ses tentatives" in text and "entre deux observations" in text
    assert "CE, 9 juin 2022, n° 453391" in text
    # The platform's sentence is quoted; sought and offered are said.
    assert f"« {NO_SLOT} »" in text
    assert "Recherché : « Renouvellement - guichet du matin », guichet n° 9846" in text
    assert "Proposé par la page : « Guichet après-midi » (n° 9847)" in text
    # French labels only, no raw code, no "(s)".
    assert "counter_not_offered" not in page and "(s)" not in text
    assert details_fr("counter_not_offered") in text
    assert details_fr("form_closed:2026-03-01") == "formulaire fermé depuis le 2026-03-01"
    assert details_fr("target_retired") == "lien désactivé par la préfecture"
    # The issuer and the real period dates on the cover.
    assert "Association Droit au séjour" in text and "C. Martin" in text
    assert "du dimanche 22/11/2026 à 10:00 au mardi 24/11/2026 à 04:00" in text
    assert verify(tmp_path / "d") == []


def test_a_spread_over_weeks_gets_no_warning(tmp_path: Path) -> None:
    from observatoire.publish.dossier import Attempt

    t = datetime(2026, 3, 2, 9, tzinfo=UTC)
    attempts = [
        Attempt(t + timedelta(days=d, hours=h), "no_slot", "", None, "auto", None, None)
        for d, h in ((0, 0), (4, 6), (9, 1), (16, 3))
    ]
    summary = summarize(attempts, "09:00-12:00")
    assert summary.warnings == [] and len(summary.weeks_with_failure) == 3
    assert summary.span_days == 16 + 3 / 24
    assert summary.within_opening == 2  # 10:00 and 11:00 Paris on weekdays; 16:00, 13:00 not
    assert summary.largest_gap is not None and summary.largest_gap[0] == timedelta(days=7, hours=2)
    # All in one week: warned even if it were 7 days long in two ISO weeks, and vice versa.
    one_week = summarize(attempts[:2])
    assert one_week.warnings and "une seule semaine calendaire" in one_week.warnings[0]


def test_240_attempts_newest_first_and_every_omission_explained(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    evidence = EvidenceStore(tmp_path / "ev")
    tid = add_target(engine)
    start = datetime(2026, 2, 2, 7, 0, tzinfo=UTC)
    times = [start + timedelta(hours=2 * i) for i in range(240)]  # 20 days, 3 weeks
    # Two screenshots only: identical pages share one image per week.
    add_probes(engine, evidence, tid, times[0::2], screenshot=PNG, page=no_slot_page())
    add_probes(engine, evidence, tid, times[1::2], screenshot=PNG + b"b", page=no_slot_page("x"))
    manifest = build_dossier(
        engine, evidence, tid, tmp_path / "d", pdf=False, max_rows=200, max_captures=4
    )
    engine.dispose()
    assert manifest["attempts"] == 240 and manifest["rows_left_out_of_the_table"] == 40
    page = (tmp_path / "d" / "dossier.html").read_text("utf-8")
    rows = re.findall(r"<tr>\s*<td>(\w+ \d\d/\d\d/\d{4} à \d\d:\d\d)", page)
    assert len(rows) == 200
    stamps = [datetime.strptime(r.split(" ", 1)[1], "%d/%m/%Y à %H:%M") for r in rows]
    assert stamps == sorted(stamps, reverse=True)  # newest first
    assert rows[0].endswith((times[-1] + timedelta(hours=1)).strftime("%d/%m/%Y à %H:%M"))
    text = text_of(page)
    assert "40 tentatives plus anciennes n'y figurent pas" in text
    # 3 weeks x 2 distinct screenshots = 6 groups, 4 shown (the newest), 2 explained.
    assert manifest["images"] == 4 and manifest["images_left_out_by_the_limit"] == 2
    assert "2 pages distinctes (les plus anciennes) n'ont pas d'image" in text
    assert "identique octet pour octet" in text
    assert "image n° 1" in page and "sans image (voir la note)" in page
    assert verify(tmp_path / "d") == []


def test_annex_is_hashed_verified_and_a_tampered_one_is_caught(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    upgrade(cli_env["OBSERVATOIRE_DATABASE_URL"])
    engine = make_engine(cli_env["OBSERVATOIRE_DATABASE_URL"])
    evidence = EvidenceStore(Path(cli_env["OBSERVATOIRE_DATA_DIR"]) / "evidence")
    tid = add_target(engine)
    t = datetime(2026, 3, 2, 9, tzinfo=UTC)
    add_probes(engine, evidence, tid, [t, t + timedelta(days=9)])
    engine.dispose()
    annex = tmp_path / "mes captures"
    annex.mkdir()
    (annex / "capture du 3 mars.png").write_bytes(PNG)
    (annex / "courriel-prefecture.pdf").write_bytes(b"%PDF-1.4\n% a letter\n%%EOF\n")
    out = tmp_path / "d"
    result = CliRunner().invoke(
        app, ["dossier", "--target", tid, "--out", str(out), "--annex", str(annex)]
    )
    assert result.exit_code == 0, result.output + result.stderr
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    digest = hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest()
    # French CLI messages, the manifest's own sha256 printed.
    assert "Dossier établi" in result.output and "2 tentatives" in result.output
    assert f"Empreinte sha256 de manifest.json : {digest}" in result.output
    assert SIMULATED_MARK not in result.output  # a real-looking target is not marked
    pieces = manifest["annex"]
    assert [p["name"] for p in pieces] == ["capture du 3 mars.png", "courriel-prefecture.pdf"]
    assert pieces[0]["sha256"] == hashlib.sha256(PNG).hexdigest()
    listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    assert all(listed[p["path"]] == p["sha256"] for p in pieces)
    text = text_of((out / "dossier.html").read_text("utf-8"))
    assert "Pièces jointes par le demandeur" in text and "Pièce jointe n° 2" in text
    assert verify(out) == []
    ok = CliRunner().invoke(app, ["dossier", "--verify", str(out)])
    assert ok.exit_code == 0 and "chaque fichier correspond à manifest.json" in ok.output

    # The applicant's capture edited afterwards: caught, by the CLI too.
    victim = out / pieces[1]["path"]
    victim.write_bytes(victim.read_bytes() + b"% edited\n")
    edited_sha = hashlib.sha256(victim.read_bytes()).hexdigest()
    assert (
        f"{pieces[1]['path']}: fichier modifié : son sha256 est {edited_sha}, manifest.json "
        f"annonce {pieces[1]['sha256']}"
    ) in verify(out)
    bad = CliRunner().invoke(app, ["dossier", "--verify", str(out)])
    assert bad.exit_code == 1 and "le dossier a été modifié" in bad.stderr
    assert f"{pieces[1]['path']}: fichier modifié" in bad.stderr
    # Edited with its hash in the files list: the pièce list and the fingerprint disagree.
    edited = json.loads((out / "manifest.json").read_text("utf-8"))
    for f in edited["files"]:
        if f["path"] == pieces[1]["path"]:
            f["sha256"] = hashlib.sha256(victim.read_bytes()).hexdigest()
    (out / "manifest.json").write_text(json.dumps(edited), encoding="utf-8")
    assert (
        f"{pieces[1]['path']}: pièce jointe n° 2 : la liste des pièces annonce le sha256 "
        f"{pieces[1]['sha256']}, la liste des fichiers {edited_sha}"
    ) in verify(out)
    for p in edited["annex"]:
        if p["number"] == 2:
            p["sha256"] = hashlib.sha256(victim.read_bytes()).hexdigest()
    (out / "manifest.json").write_text(json.dumps(edited), encoding="utf-8")
    declared = manifest["dossier_fingerprint"]
    assert any(
        p.startswith(
            f"manifest.json: dossier_fingerprint: l'empreinte du dossier annoncée, "
            f"{declared}, ne correspond plus"
        )
        for p in verify(out)
    )

    # Bad annexes: a clear French message, exit 2, nothing written.
    (annex / "notes.txt").write_text("x")
    result = CliRunner().invoke(
        app, ["dossier", "--target", tid, "--out", str(tmp_path / "e"), "--annex", str(annex)]
    )
    assert result.exit_code == 2 and "notes.txt: type de fichier non pris en charge" in (
        result.stderr
    )
    assert "Traceback" not in result.output + result.stderr and not (tmp_path / "e").exists()
    (annex / "notes.txt").unlink()
    (annex / "faux.pdf").write_bytes(b"not a pdf")
    with pytest.raises(DossierError, match="faux.pdf: le contenu n'est pas"):
        build_dossier(
            make_engine(cli_env["OBSERVATOIRE_DATABASE_URL"]),
            evidence,
            tid,
            tmp_path / "e",
            pdf=False,
            annex=annex,
        )


def test_simulated_data_are_marked_everywhere(tmp_path: Path, cli_env: dict[str, str]) -> None:
    upgrade(cli_env["OBSERVATOIRE_DATABASE_URL"])
    engine = make_engine(cli_env["OBSERVATOIRE_DATABASE_URL"])
    evidence = EvidenceStore(Path(cli_env["OBSERVATOIRE_DATA_DIR"]) / "evidence")
    tid = add_target(
        engine, "92-remise-titre-12083", "http://127.0.0.1:8765/www.x.gouv.fr/booking/create/1"
    )
    t = datetime(2026, 3, 2, 9, tzinfo=UTC)
    add_probes(engine, evidence, tid, [t, t + timedelta(days=10)])
    engine.dispose()
    out = tmp_path / "d"
    result = CliRunner().invoke(app, ["dossier", "--target", tid, "--out", str(out)])
    assert result.exit_code == 0, result.output + result.stderr
    assert SIMULATED_MARK in result.output
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    assert manifest["simulated"] is True and manifest["avertissement"] == SIMULATED_MARK
    page = (out / "dossier.html").read_text("utf-8")
    assert page.count(SIMULATED_MARK) >= 2  # title and cover; the PDF's header: below
    assert verify(out) == []


def test_pdf_pages_carry_header_and_footer(sqlite_url: str, tmp_path: Path) -> None:
    need_chromium()
    if shutil.which("pdftotext") is None:
        if REQUIRE_ALL:
            pytest.fail("CI needs pdftotext (Debian poppler-utils)")
        pytest.skip("pdftotext (poppler-utils) not installed")
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    evidence = EvidenceStore(tmp_path / "ev")
    tid = add_target(engine, "93-x", "http://127.0.0.1:9/www.x.gouv.fr/booking/create/9845")
    start = datetime(2026, 3, 2, 8, tzinfo=UTC)
    # 3 weeks, an identical page within each week: 3 rendered images for 9 attempts.
    for week in range(3):
        times = [start + timedelta(days=7 * week + d, hours=d) for d in range(3)]
        add_probes(engine, evidence, tid, times, page=no_slot_page(f"semaine {week}"))
    annex = tmp_path / "annexe"
    annex.mkdir()
    (annex / "capture.png").write_bytes(PNG)
    out = tmp_path / "d"
    manifest = build_dossier(
        engine,
        evidence,
        tid,
        out,
        piece="7",
        annex=annex,
        opening_hours="09:00-16:00",
    )
    engine.dispose()
    assert manifest["images"] == 3 and manifest["rows_left_out_of_the_table"] == 0
    pdf = out / "dossier.pdf"
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True)
    pages = int(re.search(r"Pages:\s+(\d+)", info.stdout).group(1))
    assert pages >= 6  # cover, facts, attempts, three images, the annexed capture
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    sheets = text.split("\f")[:pages]
    fingerprint = manifest["dossier_fingerprint"]
    for number, sheet in enumerate(sheets, 1):
        flat = re.sub(r"\s+", " ", sheet)
        assert "Pièce n° 7" in flat, number
        assert f"page {number} / {pages}" in flat, number
        assert fingerprint in flat.replace(" ", ""), number
        assert SIMULATED_MARK in flat, number
    assert verify(out) == []


def test_applicant_dossier_from_their_own_captures(engine, tmp_path: Path) -> None:
    evidence = EvidenceStore(tmp_path / "ev")
    tid = add_target(engine)
    amina = insert_contributor(engine, "amina-93")
    other = insert_contributor(engine, "autre-demandeur")
    t = datetime(2026, 3, 2, 9, tzinfo=UTC)
    own = [t, t + timedelta(days=3, hours=5), t + timedelta(days=11, hours=2)]
    add_probes(
        engine, evidence, tid, own, mode="manual", contributor=amina, volunteer="amina-93",
        screenshot=PNG,
    )  # fmt: skip
    add_probes(engine, evidence, tid, [t + timedelta(days=2)], mode="manual", contributor=other)
    robot = [t + timedelta(hours=h) for h in range(0, 24 * 12, 24)]
    add_probes(engine, evidence, tid, robot)
    add_probes(engine, evidence, tid, [t - timedelta(days=30)])  # outside the period

    manifest = build_dossier(
        engine, evidence, tid, tmp_path / "d", pdf=False, contributor="amina-93"
    )
    assert manifest["kind"] == "demandeur"
    assert manifest["contributor"]["pseudonym"] == "amina-93"
    assert manifest["attempts"] == 3 and manifest["failed_attempts"] == 3
    roles = Counter(a["role"] for a in manifest["attempt_list"])
    assert roles == {"principal": 3, "contexte": 12}  # the other applicant never appears
    text = text_of((tmp_path / "d" / "dossier.html").read_text("utf-8"))
    assert "Tentatives du demandeur" in text and "tentative du demandeur" in text
    assert "Contexte : observations de l'observatoire sur la même page" in text
    assert "robot de l'observatoire" in text
    assert verify(tmp_path / "d") == []
    # By numeric id too; an unknown one is a clear error.
    assert build_dossier(engine, evidence, tid, tmp_path / "e", pdf=False, contributor=str(amina))
    with pytest.raises(DossierError, match="aucun contributeur"):
        build_dossier(engine, evidence, tid, tmp_path / "f", pdf=False, contributor="personne")
    # The observatory's dossier leaves every private applicant capture out.
    public = build_dossier(engine, evidence, tid, tmp_path / "g", pdf=False)
    assert {a["mode"] for a in public["attempt_list"]} == {"auto"}


def test_opening_hours_in_the_targets_file(tmp_path: Path) -> None:
    """`opening_hours` is read per target; a wrong one is `file:line: field: problem`."""
    from observatoire.config import ConfigError, load_config
    from observatoire.publish.dossier import opening_hours_of

    good = factories.VALID_TARGETS.replace(
        "        options: {planning: 15538}\n",
        '        options: {planning: 15538}\n        opening_hours: "lun-ven 09:00-12:00"\n',
    )
    path = tmp_path / "targets.yaml"
    path.write_text(good, encoding="utf-8")
    assert load_config(path).target("92-renouvellement-1").opening_hours == "lun-ven 09:00-12:00"
    assert opening_hours_of(path, "92-renouvellement-1") == "lun-ven 09:00-12:00"
    assert opening_hours_of(path, "92-naturalisation-2") is None
    path.write_text(good.replace("09:00-12:00", "12:00-09:00"), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    line = good.splitlines().index('        opening_hours: "lun-ven 09:00-12:00"') + 1
    assert str(caught.value) == (
        f"{path}:{line}: departments[0].targets[0].opening_hours: '12:00-09:00': the range "
        "must go forward within one day"
    )


def test_verify_says_each_problem_in_french_with_its_file(tmp_path: Path) -> None:
    """What --verify tells a clerk: the file first, then what was expected and what was
    found, in French; never an English word."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    evidence = EvidenceStore(tmp_path / "ev")
    tid = add_target(engine)
    t = datetime(2026, 3, 2, 9, tzinfo=UTC)  # lundi 02/03/2026 à 10:00, Paris
    add_probes(engine, evidence, tid, [t, t + timedelta(days=9)])
    out = tmp_path / "d"
    manifest = build_dossier(engine, evidence, tid, out, pdf=False)
    engine.dispose()
    original = (out / "manifest.json").read_text("utf-8")
    first = manifest["attempt_list"][0]["page_sha256"]

    # A file deleted, an evidence file renamed, the HTML gone.
    (out / "preuves" / f"{first}.html").unlink()
    second = manifest["attempt_list"][1]["page_sha256"]
    (out / "preuves" / f"{second}.html").rename(out / "preuves" / "page.html")
    (out / "dossier.html").rename(tmp_path / "dossier.html")
    problems = verify(out)
    assert f"preuves/{first}.html: fichier absent (manifest.json annonce le sha256 {first})" in (
        problems
    )
    assert f"preuves/{second}.html: fichier absent (manifest.json annonce le sha256 {second})" in (
        problems
    )
    assert "preuves/page.html: fichier ajouté : manifest.json ne le liste pas" in problems
    assert "dossier.html: fichier absent" in problems
    shutil.rmtree(out / "preuves")
    (tmp_path / "dossier.html").rename(out / "dossier.html")

    # An evidence file whose name is not its sha256 (listed so in the manifest).
    edited = json.loads(original)
    for f in edited["files"]:
        if f["path"] == f"preuves/{first}.html":
            f["path"] = "preuves/renomme.html"
    (out / "preuves").mkdir()
    (out / "preuves" / "renomme.html").write_bytes(evidence.get(first, "html"))
    (out / "manifest.json").write_text(json.dumps(edited), encoding="utf-8")
    assert (
        "preuves/renomme.html: fichier renommé : une preuve porte son sha256 pour nom, "
        f"preuves/{first}.html attendu"
    ) in verify(out)
    # The attempt whose evidence is no longer listed is named, in Paris time.
    edited["files"] = [f for f in edited["files"] if f["path"] != "preuves/renomme.html"]
    (out / "preuves" / "renomme.html").unlink()
    (out / "manifest.json").write_text(json.dumps(edited), encoding="utf-8")
    assert (
        f"manifest.json: attempt_list[0].page_sha256: page enregistrée {first} de la "
        "tentative du lundi 02/03/2026 à 10:00 absente de la liste des fichiers du dossier"
    ) in verify(out)

    # A figure removed, an attempt unreadable, opening hours unreadable.
    edited = json.loads(original)
    del edited["failed_attempts"]
    edited["failures_within_opening_hours"] = 5
    (out / "manifest.json").write_text(json.dumps(edited), encoding="utf-8")
    problems = verify(out)
    assert (
        "manifest.json: failed_attempts: chiffre absent (la liste des tentatives donne 2)"
    ) in problems
    assert (
        "manifest.json: failures_within_opening_hours: le manifeste indique 5, la liste des "
        "tentatives donne null"
    ) in problems
    edited = json.loads(original)
    edited["attempt_list"][0]["started_at"] = "le 2 mars"
    edited["attempt_list"][1]["outcome"] = "victoire"
    edited["opening_hours"] = "12:00-09:00"
    (out / "manifest.json").write_text(json.dumps(edited), encoding="utf-8")
    problems = verify(out)
    assert (
        'manifest.json: attempt_list[0]: started_at: date illisible "le 2 mars" '
        "(chiffres du résumé non recalculés)"
    ) in problems
    assert (
        'manifest.json: attempt_list[1]: outcome: résultat inconnu "victoire" '
        "(chiffres du résumé non recalculés)"
    ) in problems
    assert (
        "manifest.json: opening_hours: '12:00-09:00' : une plage va de l'ouverture à la "
        "fermeture, dans la même journée (chiffres du résumé non recalculés)"
    ) in problems
    # A hash the HTML cites that no file has: its line is given.
    page = (out / "dossier.html").read_text("utf-8")
    stray = "e" * 64
    (out / "dossier.html").write_text(page + f"<!-- {stray} -->\n", encoding="utf-8")
    problems += verify(out)
    assert (
        f"dossier.html:{page.count(chr(10)) + 1}: cite le sha256 {stray}, qu'aucun fichier de "
        "manifest.json ne porte"
    ) in problems
    english = re.compile(r"\b(missing|changed|not in|should|cites|which|is|but|gives)\b")
    assert not [p for p in problems if english.search(p)], problems


#: A line of the log format (logs.setup_logging), not something the command said.
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")


def test_the_dossier_command_refuses_in_french(tmp_path: Path, cli_env: dict[str, str]) -> None:
    """Bad options of `dossier`: exit 2, `erreur : ` and what is wrong, in French."""
    upgrade(cli_env["OBSERVATOIRE_DATABASE_URL"])
    engine = make_engine(cli_env["OBSERVATOIRE_DATABASE_URL"])
    tid = add_target(engine)
    engine.dispose()
    a_file = tmp_path / "lettre.odt"
    a_file.write_text("x")

    def refused(*args: str) -> str:
        result = CliRunner().invoke(app, ["dossier", "--target", tid, *args])
        assert result.exit_code == 2, result.output + result.stderr
        assert "Traceback" not in result.output + result.stderr
        # Log lines of an earlier in-process command (`run` sets up logging) aside.
        said = "".join(line for line in result.stderr.splitlines(True) if not LOG_LINE.match(line))
        assert said.startswith("erreur : ") and "error" not in said, result.stderr
        return said

    out = str(tmp_path / "d")
    assert f"--out {a_file}: fichier, pas un répertoire ; choisissez" in refused(
        "--out", str(a_file)
    )
    assert "--from '1er mars': date illisible ; exemple : 2026-03-01" in refused(
        "--out", out, "--from", "1er mars"
    )
    assert (
        "--opening-hours 'lun-ven 9h-12h': '9h-12h' n'est pas une plage comme 09:00-12:00"
    ) in refused("--out", out, "--opening-hours", "lun-ven 9h-12h")
    assert "--opening-hours 'lundi-xyz 09:00-12:00': jour inconnu dans 'lundi-xyz'" in refused(
        "--out", out, "--opening-hours", "lundi-xyz 09:00-12:00"
    )
    assert "--contributor 'personne': aucun contributeur n'a ce pseudonyme ni ce numéro" in (
        refused("--out", out, "--contributor", "personne")
    )
    assert f"--annex {tmp_path / 'rien'}: répertoire introuvable" in refused(
        "--out", out, "--annex", str(tmp_path / "rien")
    )
    assert not (tmp_path / "d").exists()
    result = CliRunner().invoke(app, ["dossier", "--target", "93-inconnue", "--out", out])
    assert result.exit_code == 2
    assert "erreur : --target '93-inconnue': cible inconnue" in result.stderr
    result = CliRunner().invoke(app, ["dossier", "--out", out])
    assert result.exit_code == 2
    assert "erreur : --target et --out sont requis (ou --verify RÉPERTOIRE)" in result.stderr
