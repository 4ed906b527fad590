"""Open-data exports validate with Frictionless; filters, Parquet, streaming of probes."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from frictionless import validate
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from observatoire.cli import app
from observatoire.publish.export import ExportFilter, export_all
from observatoire.publish.site import SiteContext, build_site
from observatoire.record.evidence import EvidenceStore

from .factories import PRIVATE_PAGE, mixed_probes


def test_csv_package_validates_with_frictionless(filled: Engine, tmp_path: Path) -> None:
    files = export_all(filled, tmp_path / "out")
    report = validate(str(tmp_path / "out" / "datapackage.json"))
    assert report.valid, report.flatten(["type", "message"])[:5]
    package = json.loads((tmp_path / "out" / "datapackage.json").read_text("utf-8"))
    assert package["licenses"][0]["name"] == "ODbL-1.0"
    names = {r["name"] for r in package["resources"]}
    assert {"probes", "stats_department", "stats_target", "episodes", "targets"} <= names
    for resource in package["resources"]:
        for field in resource["schema"]["fields"]:
            assert field["type"] and field["description"]
    probes = pd.read_csv(tmp_path / "out" / "probes.csv", dtype={"department": str})
    assert len(probes) == 11 and "id" not in probes.columns
    assert not any("path" in c for c in probes.columns)
    assert set(probes["department"]) == {"92", "2A"}
    assert probes["started_at"].str.endswith("+00:00").all()
    sums = (tmp_path / "out" / "SHA256SUMS").read_text().splitlines()
    assert len(sums) == len(files)
    for line in sums:
        digest, name = line.split("  ")
        assert hashlib.sha256((tmp_path / "out" / name).read_bytes()).hexdigest() == digest


def test_tampered_export_fails_validation(filled: Engine, tmp_path: Path) -> None:
    export_all(filled, tmp_path / "out")
    with (tmp_path / "out" / "probes.csv").open("a") as fh:
        fh.write("92-a,92,p,legacy_booking,auto,,,,no_slot,,,,,,1,1,1,x,1,0,,\n")
    assert not validate(str(tmp_path / "out" / "datapackage.json")).valid


def test_filters(filled: Engine, tmp_path: Path) -> None:
    flt = ExportFilter(since=date(2026, 3, 1), until=date(2026, 3, 31), department="92")
    export_all(filled, tmp_path / "f", flt=flt)
    probes = pd.read_csv(tmp_path / "f" / "probes.csv", dtype={"department": str})
    # 92's probes in March, Paris time: the 31 March 22:30 UTC one is already April.
    assert len(probes) == 8 and set(probes["department"]) == {"92"}
    stats = pd.read_csv(tmp_path / "f" / "stats_department.csv", dtype={"department": str})
    assert list(stats["month"]) == ["2026-03"] and list(stats["department"]) == ["92"]
    assert validate(str(tmp_path / "f" / "datapackage.json")).valid


def test_parquet(week: Engine, tmp_path: Path) -> None:
    files = export_all(week, tmp_path / "p", fmt="parquet")
    table = pq.read_table(tmp_path / "p" / "probes.parquet")
    assert table.num_rows == 8
    stats = pq.read_table(tmp_path / "p" / "stats_target.parquet").to_pandas()
    assert stats.loc[0, "days_without_slot"] == 2
    episodes = pq.read_table(tmp_path / "p" / "episodes.parquet").to_pandas()
    assert list(episodes["ongoing"]) == [False, False, True]
    package = json.loads((tmp_path / "p" / "datapackage.json").read_text())
    assert {r["format"] for r in package["resources"]} == {"parquet"}
    assert all(
        f.rows == r["stats"]["rows"] for f, r in zip(files, package["resources"], strict=True)
    )


def test_export_cli_checks_its_options(cli_env: dict[str, str]) -> None:
    assert CliRunner().invoke(app, ["db", "upgrade"]).exit_code == 0
    bad = CliRunner().invoke(app, ["export", "--from", "mars"])
    assert bad.exit_code == 2 and "2026-03-01" in bad.stderr
    bad = CliRunner().invoke(app, ["export", "--format", "xlsx"])
    assert bad.exit_code == 2
    ok = CliRunner().invoke(app, ["export", "--format", "parquet"])
    assert ok.exit_code == 0, ok.output


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_empty_database_exports_empty_valid_files(engine: Engine, tmp_path: Path, fmt: str) -> None:
    export_all(engine, tmp_path / fmt, fmt=fmt)
    package = json.loads((tmp_path / fmt / "datapackage.json").read_text())
    assert all(r["stats"]["rows"] == 0 for r in package["resources"])
    if fmt == "csv":
        assert validate(str(tmp_path / fmt / "datapackage.json")).valid


def test_csv_neutralises_formula_cells_but_not_numbers(filled: Engine, tmp_path: Path) -> None:
    from sqlalchemy.orm import Session

    from observatoire.db import Probe, TargetRow
    from observatoire.publish.export import neutralise_formulas

    with Session(filled) as s, s.begin():
        target = s.get(TargetRow, "92-a")
        assert target is not None
        target.label = '=HYPERLINK("http://evil.example","x")'
        for probe, detail in zip(
            s.query(Probe).order_by(Probe.id).limit(5),
            ["+33 1 23", "-cmd", "@SUM(A1)", "\tx", "ok - fine"],
            strict=True,
        ):
            probe.detail = detail
    export_all(filled, tmp_path / "out")
    targets = pd.read_csv(tmp_path / "out" / "targets.csv", dtype=str, keep_default_na=False)
    assert targets.set_index("target").loc["92-a", "label"] == (
        '\'=HYPERLINK("http://evil.example","x")'
    )
    probes = pd.read_csv(tmp_path / "out" / "probes.csv", dtype=str, keep_default_na=False)
    details = set(probes["detail"])
    assert {"'+33 1 23", "'-cmd", "'@SUM(A1)", "'\tx", "ok - fine"} <= details
    # Parquet is not a spreadsheet format: the data stays as it was.
    export_all(filled, tmp_path / "pq", fmt="parquet")
    raw = pq.read_table(tmp_path / "pq" / "probes.parquet").to_pandas()
    assert "-cmd" in set(raw["detail"])
    package = json.loads((tmp_path / "out" / "datapackage.json").read_text("utf-8"))
    assert "apostrophe" in package["description"] and "single quote" in package["description_en"]
    assert validate(str(tmp_path / "out" / "datapackage.json")).valid
    # Numeric columns are never touched: a negative number is data.
    frame = pd.DataFrame({"n": [-3, 4], "x": [-1.5, 2.0], "s": ["-3", "=1"]})
    fields = {"n": ("integer", ""), "x": ("number", ""), "s": ("string", "")}
    out = neutralise_formulas(frame.copy(), fields)
    assert list(out["n"]) == [-3, 4] and list(out["x"]) == [-1.5, 2.0]
    assert list(out["s"]) == ["'-3", "'=1"]


def test_a_private_applicants_captures_reach_no_export_file_and_no_site_page(
    engine: Engine, tmp_path: Path
) -> None:
    """An applicant who has not opted in: their captures serve their own dossier only.
    Not a row, a hash, a time or a count of them may reach the open data or the site."""
    evidence = EvidenceStore(tmp_path / "ev")
    mixed_probes(engine, evidence)
    with engine.connect() as conn:
        private = conn.execute(
            text(
                "SELECT p.started_at, p.page_sha256 FROM probes p JOIN contributors c "
                "ON c.id = p.contributor_id WHERE c.pseudonym = 'demandeur-prive'"
            )
        ).all()
        total = conn.execute(text("SELECT COUNT(*) FROM probes")).scalar_one()
    assert len(private) == 2 and private[0][1] == hashlib.sha256(PRIVATE_PAGE).hexdigest()
    export = tmp_path / "export"
    export_all(engine, export)
    probes = pd.read_csv(export / "probes.csv", dtype={"department": str})
    assert len(probes) == total - 2 == 42
    ctx = SiteContext(False, datetime(2026, 5, 1, tzinfo=UTC), evidence)
    site = tmp_path / "site"
    build_site(engine, site, ctx, open_data=export)
    stamps = {
        "2026-03-11T08:17:43",  # ISO, in the CSV files
        "11/03/2026 à 09:17",  # Paris, on the pages
        "2026-04-10T08:17:43",
        "10/04/2026 à 10:17",
    }
    leaks = []
    for path in [*export.rglob("*"), *site.resolve().rglob("*")]:
        if not path.is_file() or path.suffix == ".png":
            continue
        body = path.read_text("utf-8", errors="replace")
        for needle in {private[0][1], *stamps}:
            if needle in body:
                leaks.append((path.name, needle))
        if path.suffix == ".html":
            assert "depuis le 10/04/2026" not in body, path  # the private capture's finding
            assert "43 consultations" not in body.replace("\u202f", " "), path
    assert leaks == []
    index = (site / "index.html").read_text("utf-8").replace("\u202f", " ")
    assert "42 consultations" in index
