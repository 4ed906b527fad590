"""The static site and the CSV export: French, escaped, atomically published."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy.orm import Session

from observatoire.db import TargetRow
from observatoire.publish.export import export_all
from observatoire.publish.site import SiteContext, build_site
from observatoire.publish.swap import publish_dir
from observatoire.record.rollups import rebuild

from .factories import add_probe, add_target


@pytest.fixture
def small(engine):
    with Session(engine) as s, s.begin():
        add_target(s, "2a-x", "2A", "Corse-du-Sud <script>alert(1)</script>")
        add_probe(s, "2a-x", "2026-03-10T10:00:00+00:00", "no_slot")
        add_probe(s, "2a-x", "2026-03-11T10:00:00+00:00", "available")
    rebuild(engine)
    return engine


def test_site_is_french_and_escapes_scraped_text(small, tmp_path: Path) -> None:
    index = build_site(
        small, tmp_path / "site", SiteContext(simulated=True, built_at=datetime.now(UTC))
    )
    html = index.read_text("utf-8")
    assert '<html lang="fr">' in html
    assert "Données simulées" in html
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html
    assert "50\u202f%" in html  # 1 no_slot out of 2 valid
    # No resource from another host: no external src, stylesheet, import or url().
    import re

    assert not re.search(r'src="https?://|<link[^>]+href="https?://|@import|url\(https?:', html)
    assert (tmp_path / "site" / "style.css").exists()


def test_real_data_site_has_no_simulated_banner(small, tmp_path: Path) -> None:
    index = build_site(small, tmp_path / "site", SiteContext(False, datetime.now(UTC)))
    assert "Données simulées" not in index.read_text("utf-8")


def test_failed_build_leaves_previous_site_intact(tmp_path: Path) -> None:
    out = tmp_path / "site"
    publish_dir(out, lambda d: (d / "index.html").write_text("v1"))
    assert (out / "index.html").read_text() == "v1"

    def broken(folder: Path) -> None:
        (folder / "index.html").write_text("half")
        raise RuntimeError("template error")

    with pytest.raises(RuntimeError):
        publish_dir(out, broken)
    assert (out / "index.html").read_text() == "v1"
    publish_dir(out, lambda d: (d / "index.html").write_text("v2"))
    assert (out / "index.html").read_text() == "v2"
    leftovers = [p.name for p in tmp_path.iterdir() if ".build-" in p.name]
    assert leftovers == []
    assert len([p for p in tmp_path.iterdir() if ".site.v" in p.name]) <= 2


def test_publish_over_a_plain_folder(tmp_path: Path) -> None:
    from observatoire.publish.swap import PublishRefused

    out = tmp_path / "site"
    out.mkdir()
    (out / "old.html").write_text("old")
    # Not ours (no marker): refused, left as it was (tests/test_no_destruction.py).
    with pytest.raises(PublishRefused):
        publish_dir(out, lambda d: (d / "index.html").write_text("new"))
    assert not out.is_symlink() and (out / "old.html").read_text() == "old"
    (out / "old.html").unlink()
    publish_dir(out, lambda d: (d / "index.html").write_text("new"))  # empty: fine
    assert out.is_symlink() and (out / "index.html").read_text() == "new"


def test_export_csv(small, tmp_path: Path) -> None:
    files = export_all(small, tmp_path / "export")
    stats = tmp_path / "export" / "stats_department.csv"
    assert stats in [f.path for f in files]
    frame = pd.read_csv(stats, dtype={"department": str})
    assert frame.loc[0, "department"] == "2A"
    assert frame.loc[0, "share_no_way"] == pytest.approx(0.5)
    sums = (tmp_path / "export" / "SHA256SUMS").read_text().splitlines()
    for line in sums:
        digest, name = line.split("  ")
        assert hashlib.sha256((tmp_path / "export" / name).read_bytes()).hexdigest() == digest
    targets = pd.read_csv(tmp_path / "export" / "targets.csv", dtype=str)
    assert list(targets["department"]) == ["2A"]
    with Session(small) as s:
        assert s.query(TargetRow).count() == 1


def test_unreliable_months_reach_the_site_and_the_csv(mixed, tmp_path: Path) -> None:
    from frictionless import validate

    built = datetime(2026, 5, 2, tzinfo=UTC)
    export_all(mixed, tmp_path / "export")
    index = build_site(
        mixed, tmp_path / "site", SiteContext(False, built), open_data=tmp_path / "export"
    )
    site = index.parent
    home = index.read_text("utf-8")
    # National figure (April 2026 is the last complete month): its one target-month is
    # unreliable; the ranking says which department includes one.
    assert "1 mois-page, dont 1 mois peu fiable" in home
    march = (site / "archives" / "2026-03.html").read_text("utf-8")
    assert "3 mois-pages, dont 1 mois peu fiable" in march
    hauts = (site / "departements" / "92.html").read_text("utf-8")
    assert "fiabilité réduite : 10,5\u202f% de pages non reconnues" in hauts
    assert "dont 1 mois peu fiable sur 2" in hauts
    corsica = (site / "departements" / "2A.html").read_text("utf-8")
    assert "fiabilité réduite : 100,0\u202f% de pages non reconnues" in corsica  # April
    # March: 10 unrecognized out of 100 probes is exactly 10 %: shown, not flagged.
    assert "10,0\u202f% de pages non reconnues" in corsica
    assert "fiabilité réduite : 10,0" not in corsica
    method = (site / "methodologie.html").read_text("utf-8")
    assert 'id="mois-peu-fiables"' in method and "dépassent strictement 10" in method

    stats = pd.read_csv(site / "donnees" / "stats_target.csv", dtype={"department": str})
    flagged = stats[stats["unreliable"]]
    assert sorted(zip(flagged["target"], flagged["month"], strict=True)) == [
        ("2a-c", "2026-04"),
        ("92-a", "2026-03"),
    ]
    deps = pd.read_csv(site / "donnees" / "stats_department.csv", dtype={"department": str})
    assert (
        deps.set_index(["department", "month"]).loc[("92", "2026-03"), "unreliable_target_months"]
        == 1
    )
    assert validate(str(site / "donnees" / "datapackage.json")).valid


def test_site_build_does_not_export_open_data(small, tmp_path: Path) -> None:
    """The open data is computed by `export` (and `publish`), never as a side effect of
    the site build, which only publishes a copy of an existing export."""
    alone = build_site(small, tmp_path / "alone", SiteContext(False, datetime.now(UTC))).parent
    assert sorted(p.name for p in (alone / "donnees").iterdir()) == ["index.html"]
    assert "observatoire export" in (alone / "donnees" / "index.html").read_text("utf-8")
    export_all(small, tmp_path / "export")
    before = (tmp_path / "export" / "datapackage.json").read_bytes()
    site = build_site(
        small,
        tmp_path / "site",
        SiteContext(False, datetime.now(UTC)),
        open_data=tmp_path / "export",
    ).parent
    assert (site / "donnees" / "datapackage.json").read_bytes() == before  # a copy
    assert (site / "donnees" / "probes.csv").exists()
    assert "stats_procedure.csv" in (site / "donnees" / "index.html").read_text("utf-8")
