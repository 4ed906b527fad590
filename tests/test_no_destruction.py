"""Nothing destroyed, public files readable (issue 15, items 3 and 5): `site build`,
`publish` and `dossier` write only into folders of their own, never rename or delete
another one; what they publish is world-readable while the evidence store keeps 0600;
a dossier never holds another target's files, and its verification catches edited
figures and evidence removed with its manifest entry."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from observatoire.db import Probe, make_engine
from observatoire.publish.dossier import DossierError, build_dossier, verify
from observatoire.publish.swap import MARKER
from observatoire.record.evidence import EvidenceStore
from observatoire.record.rollups import rebuild

from . import factories
from .factories import SEINE_SAINT_DENIS, add_target, invoke

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cf00000301010018dd8db40000000049454e44ae426082"
)


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def add_probe(
    engine, evidence: EvidenceStore, tid: str, at: str, outcome: str = "no_slot", shot: bool = False
) -> tuple[str, str | None]:
    page = evidence.put(f"<html><body>{tid} {at}</body></html>".encode(), "html")
    png = evidence.put(PNG + at.encode(), "png") if shot else None
    factories.add_probe(
        engine,
        tid,
        at,
        outcome,
        requests_made=3,
        duration_ms=10,
        page_sha256=page,
        screenshot_sha256=png,
    )
    return page, png


@pytest.fixture
def data(cli_env: dict[str, str]) -> Path:
    """A migrated database with one target and probes; the data folder holds evidence."""
    assert invoke("db", "upgrade").exit_code == 0
    engine = make_engine(cli_env["OBSERVATOIRE_DATABASE_URL"])
    evidence = EvidenceStore(Path(cli_env["OBSERVATOIRE_DATA_DIR"]) / "evidence")
    add_target(engine, "93-a", **SEINE_SAINT_DENIS)
    add_probe(engine, evidence, "93-a", "2026-03-02T09:00:00+00:00")
    add_probe(engine, evidence, "93-a", "2026-03-10T09:00:00+00:00", shot=True)
    rebuild(engine)  # the rollups the site reads
    engine.dispose()
    return Path(cli_env["OBSERVATOIRE_DATA_DIR"])


def test_site_build_refuses_a_folder_it_did_not_create(data: Path) -> None:
    (data / "notes-de-l-operateur.txt").write_text("à garder", encoding="utf-8")
    before = snapshot(data)
    siblings = set(data.parent.iterdir())
    result = invoke("site", "build", "--out", str(data))
    assert result.exit_code == 2
    assert "not empty and was not created by observatoire" in result.stderr
    assert snapshot(data) == before and data.is_dir() and not data.is_symlink()
    assert set(data.parent.iterdir()) == siblings  # nothing renamed aside, nothing built
    # A second try (the old code deleted the renamed folder then) changes nothing either.
    assert invoke("site", "build", "--out", str(data)).exit_code == 2
    assert snapshot(data) == before


def test_site_build_refuses_a_symlink_to_a_foreign_folder(data: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "www"
    foreign.mkdir()
    (foreign / "index.html").write_text("autre site")
    link = tmp_path / "public"
    link.symlink_to(foreign)
    result = invoke("site", "build", "--out", str(link))
    assert result.exit_code == 2 and "did not create" in result.stderr
    assert link.resolve() == foreign and (foreign / "index.html").read_text() == "autre site"


def test_publish_refuses_a_foreign_site_folder(data: Path) -> None:
    site = data / "site"
    site.mkdir()
    (site / "mine.html").write_text("x")
    result = invoke("publish")
    assert result.exit_code == 2 and "was not created by observatoire" in result.stderr
    assert (site / "mine.html").read_text() == "x" and not site.is_symlink()
    assert not (data / "export").exists()  # a refused publication writes nothing


def test_publish_refuses_a_foreign_export_folder_before_writing(data: Path) -> None:
    export = data / "export"
    export.mkdir()
    (export / "probes.csv").write_text("mes notes")
    (export / "budget.ods").write_text("à garder")
    before = snapshot(export)
    result = invoke("publish")
    assert result.exit_code == 2 and "budget.ods" in result.stderr
    assert snapshot(export) == before
    assert not (data / "site").exists()
    # Its own files only (an earlier export): published over.
    (export / "budget.ods").unlink()
    assert invoke("publish").exit_code == 0
    assert (export / "datapackage.json").is_file() and (data / "site" / MARKER).is_file()


def test_site_rebuilds_its_own_folder_and_prunes_only_marked_versions(
    data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pub" / "site"
    out.parent.mkdir()
    foreign_version = out.parent / ".site.v999-notes"  # looks like a version, is not ours
    foreign_version.mkdir()
    (foreign_version / "keep.txt").write_text("keep")
    for _ in range(4):
        assert invoke("site", "build", "--out", str(out)).exit_code == 0
    assert out.is_symlink() and (out / MARKER).is_file()
    versions = [p for p in out.parent.iterdir() if p.name.startswith(".site.v")]
    assert foreign_version in versions and (foreign_version / "keep.txt").read_text() == "keep"
    assert len([v for v in versions if (v / MARKER).exists()]) <= 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert invoke("site", "build", "--out", str(empty)).exit_code == 0  # empty: fine
    assert (empty / "index.html").exists()


def test_public_files_are_world_readable_and_evidence_keeps_its_mode(
    data: Path, tmp_path: Path
) -> None:
    os.umask(0o077)  # a strict operator umask must not leak into the public files
    try:
        out = tmp_path / "site"
        assert invoke("site", "build", "--out", str(out)).exit_code == 0
        shots = list((out / "preuves").glob("*.png"))
        assert shots, "the department page shows the latest screenshot"
        for path in out.resolve().rglob("*"):
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode == (0o755 if path.is_dir() else 0o644), (path, oct(mode))
        assert stat.S_IMODE(out.resolve().stat().st_mode) == 0o755
        stored = next((data / "evidence").rglob("*.png"))
        assert stat.S_IMODE(stored.stat().st_mode) == 0o600  # the store is not public
        export = tmp_path / "export"
        assert invoke("export", "--out", str(export)).exit_code == 0
        for path in export.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
        dossier = tmp_path / "dossier"
        engine = make_engine(os.environ["OBSERVATOIRE_DATABASE_URL"])
        build_dossier(engine, EvidenceStore(data / "evidence"), "93-a", dossier, pdf=False)
        engine.dispose()
        for path in [dossier, *dossier.rglob("*")]:
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode == (0o755 if path.is_dir() else 0o644), (path, oct(mode))
    finally:
        os.umask(0o022)


def test_dossier_refuses_a_foreign_folder_and_never_mixes_targets(
    data: Path, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    engine = make_engine(cli_env["OBSERVATOIRE_DATABASE_URL"])
    evidence = EvidenceStore(data / "evidence")
    add_target(engine, "93-b", **SEINE_SAINT_DENIS)
    page_b, _ = add_probe(engine, evidence, "93-b", "2026-03-03T09:00:00+00:00")
    foreign = tmp_path / "documents"
    foreign.mkdir()
    (foreign / "lettre.odt").write_text("x")
    result = invoke("dossier", "--target", "93-a", "--out", str(foreign))
    assert (
        result.exit_code == 2
        and (f"--out {foreign}: répertoire non vide qui n'est pas un dossier de preuves")
        in result.stderr
    )
    assert snapshot(foreign) == {"lettre.odt": hashlib.sha256(b"x").hexdigest()}

    out = tmp_path / "dossier"
    build_dossier(engine, evidence, "93-b", out, pdf=False)
    assert (out / "preuves" / f"{page_b}.html").exists()
    manifest = build_dossier(engine, evidence, "93-a", out, pdf=False)  # reused: ours
    engine.dispose()
    assert not (out / "preuves" / f"{page_b}.html").exists()  # nothing of 93-b left
    assert all(
        "93-b" not in (out / f["path"]).read_text("utf-8", errors="replace")
        for f in manifest["files"]
        if f["path"].endswith(".html")
    )
    assert verify(out) == []
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".dossier.")]


def test_missing_evidence_stops_the_dossier(data: Path, tmp_path: Path, cli_env) -> None:
    evidence = EvidenceStore(data / "evidence")
    engine = make_engine(cli_env["OBSERVATOIRE_DATABASE_URL"])
    with Session(engine) as s:
        sha = s.query(Probe.page_sha256).order_by(Probe.started_at).first()[0]
    evidence.path_for(sha, "html").unlink()
    with pytest.raises(DossierError, match="1 fichier de preuve manque dans le dépôt"):
        build_dossier(engine, evidence, "93-a", tmp_path / "d", pdf=False)
    engine.dispose()
    assert not (tmp_path / "d").exists()
    result = invoke("dossier", "--target", "93-a", "--out", str(tmp_path / "d"))
    assert result.exit_code == 2 and sha in result.stderr


def test_verify_recomputes_the_summary_and_checks_cited_hashes(
    data: Path, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    engine = make_engine(cli_env["OBSERVATOIRE_DATABASE_URL"])
    out = tmp_path / "d"
    manifest = build_dossier(engine, EvidenceStore(data / "evidence"), "93-a", out, pdf=False)
    engine.dispose()
    assert verify(out) == []
    path = out / "manifest.json"
    original = path.read_text("utf-8")

    edited = json.loads(original)
    edited["failed_attempts"] = 12
    edited["iso_weeks_with_failure"] = ["2026-S10", "2026-S11", "2026-S12"]
    path.write_text(json.dumps(edited), encoding="utf-8")
    problems = verify(out)
    assert (
        "manifest.json: failed_attempts: le manifeste indique 12, la liste des tentatives donne 2"
    ) in problems
    result = invoke("dossier", "--verify", str(out))
    assert result.exit_code == 1 and "le dossier a été modifié" in result.stderr

    # An evidence file and its manifest entry removed together: the HTML still cites it.
    gone = manifest["attempt_list"][0]["page_sha256"]
    edited = json.loads(original)
    edited["files"] = [f for f in edited["files"] if gone not in f["path"]]
    edited["attempt_list"] = edited["attempt_list"][1:]
    path.write_text(json.dumps(edited), encoding="utf-8")
    (out / "preuves" / f"{gone}.html").unlink()
    problems = verify(out)
    cited = f": cite le sha256 {gone}, qu'aucun fichier de manifest.json ne porte"
    assert any(p.startswith("dossier.html:") and p.endswith(cited) for p in problems), problems
    assert (
        "manifest.json: attempts: le manifeste indique 2, la liste des tentatives donne 1"
    ) in problems
