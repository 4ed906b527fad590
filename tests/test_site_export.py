"""The static site and the CSV export: French, escaped, atomically published."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy.orm import Session

from observatoire.db import TargetRow
from observatoire.export import export_all
from observatoire.publish import publish_dir
from observatoire.rollups import rebuild
from observatoire.site import SiteContext, build_site

from .test_stats import add_probe, add_target


@pytest.fixture
def small(engine):  # type: ignore[no-untyped-def]
    with Session(engine) as s, s.begin():
        add_target(s, "2a-x", "2A", "Corse-du-Sud <script>alert(1)</script>")
        add_probe(s, "2a-x", "2026-03-10T10:00:00+00:00", "no_slot")
        add_probe(s, "2a-x", "2026-03-11T10:00:00+00:00", "available")
    rebuild(engine)
    return engine


def test_site_is_french_and_escapes_scraped_text(small, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
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


def test_real_data_site_has_no_simulated_banner(small, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
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
    out = tmp_path / "site"
    out.mkdir()
    (out / "old.html").write_text("old")
    publish_dir(out, lambda d: (d / "index.html").write_text("new"))
    assert out.is_symlink() and (out / "index.html").read_text() == "new"


def test_export_csv(small, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
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
