"""Public figures that can be quoted without misleading (issue 18), checked on the demo
database (simulator, robot, simulated volunteer): the scope and unit of the headline, the
clustered interval beside the naive one, months that are running or partial, coverage
above 100 % only with its footnote, La Cimade's table, the citation block, no pseudonym in
any public file, and open data that Frictionless validates in both formats."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from frictionless import validate
from lxml import html as lxml_html
from sqlalchemy import text
from sqlalchemy.orm import Session

from observatoire.db import make_engine
from observatoire.demo import DEMO_VOLUNTEER, DemoReport
from observatoire.publish.export import export_all
from observatoire.publish.site import SiteContext, build_site
from observatoire.record.rollups import rebuild
from observatoire.stats import StatsInput, cluster_interval, month_periods, monthly_stats, wilson

from .conftest import DEMO_END
from .factories import add_probe, add_target


def read(site: Path, rel: str) -> str:
    return (site / rel).read_text("utf-8")


def test_headline_names_its_scope_unit_and_both_intervals(
    demo: DemoReport, demo_site: Path
) -> None:
    engine = make_engine(demo.database_url)
    national = monthly_stats(engine, "national").set_index("month")
    # Built after the demo ended: April 2026 (10 days) is the last ended month.
    row = national.loc["2026-04"]
    departments = (
        engine.connect()
        .execute(
            text(
                "SELECT COUNT(DISTINCT t.department) FROM probes p JOIN targets t ON t.id = "
                "p.target_id WHERE p.outcome IN ('available', 'no_slot', 'procedure_missing', "
                "'form_open') AND p.started_at >= '2026-03-31 22:00:00'"
            )
        )
        .scalar_one()
    )
    assert row["departments_observed"] == departments > 1
    home = read(demo_site, "index.html")
    assert (
        f"sur les <strong>{departments} départements observés</strong> (sur 101), "
        f"<strong>{row['targets_observed']} pages de rendez-vous</strong>" in home
    )
    assert "part des consultations" in home.lower()
    assert "Un département, une voix" in home and "médiane" in home
    assert "si l'on traitait chaque consultation comme indépendante (Wilson)" in home
    engine.dispose()


def test_clustered_interval_is_seeded_wider_and_published(demo: DemoReport) -> None:
    # Ten pages, each always closed or always open: the probes of a page are not
    # independent, and the interval that resamples pages says so.
    no_way = np.array([50.0] * 6 + [0.0] * 4)
    valid = np.array([50.0] * 10)
    low, high = cluster_interval(no_way, valid, "2026-03|target|x")
    naive = wilson(300, 500)
    assert low < naive[0] - 0.1 and high > naive[1] + 0.1
    assert (low, high) == cluster_interval(no_way, valid, "2026-03|target|x")
    assert (low, high) != cluster_interval(no_way, valid, "2026-03|target|y")
    assert all(np.isnan(cluster_interval(np.array([1.0]), np.array([2.0]), "k")))

    engine = make_engine(demo.database_url)
    first = monthly_stats(engine, "department", StatsInput.load(engine))
    again = monthly_stats(engine, "department", StatsInput.load(engine))
    cols = ["share_low_cluster", "share_high_cluster"]
    pd.testing.assert_frame_equal(first[cols], again[cols])  # reproducible build to build
    national = monthly_stats(engine, "national")
    assert set(national["cluster_unit"]) <= {"target", "day"}
    assert national["share_low_cluster"].notna().all()
    engine.dispose()

    stats = pd.read_csv(demo.export_dir / "stats_national.csv", dtype={"month": str})
    for col in ("share_low", "share_high", "share_low_cluster", "share_high_cluster"):
        assert stats[col].between(0, 1).all(), col
    package = json.loads((demo.export_dir / "datapackage.json").read_text("utf-8"))
    fields = {
        f["name"]: f
        for r in package["resources"]
        if r["name"] == "stats_national"
        for f in r["schema"]["fields"]
    }
    assert {"share_low_cluster", "departments_mean_share", "departments_median_share"} <= set(
        fields
    )
    assert "bootstrap" in fields["share_low_cluster"]["description"]


def test_coverage_above_100_percent_always_has_its_footnote(demo_site: Path) -> None:
    above = 0
    for page in demo_site.rglob("*.html"):
        body = page.read_text("utf-8")
        for m in re.finditer(r"(\d{3,})(?:,\d+)?\u202f%", body):
            if int(m.group(1)) <= 100:
                continue
            above += 1
            assert body[m.end() :].startswith('<sup><a href="#note-couverture"'), page
            assert 'id="note-couverture"' in body, page
    assert above > 0  # the demo over-covers some months (the first probe counts in full)


def test_running_and_partial_months(demo: DemoReport, tmp_path: Path) -> None:
    engine = make_engine(demo.database_url)
    # Built during April: April is running, it gets no report and no feed entry.
    during = build_site(
        engine,
        tmp_path / "during",
        SiteContext(True, DEMO_END + timedelta(hours=2)),
    ).parent
    engine.dispose()
    feed = read(during, "flux.xml")
    assert "urn:observatoire:rapport:2026-03" in feed
    assert "urn:observatoire:rapport:2026-04" not in feed
    april = read(during, "archives/2026-04.html")
    assert "mois en cours" in april and "Rapport" not in april.split("<h1>")[1][:40]
    assert "Chiffres provisoires" in april
    home = read(during, "index.html")
    assert "Situation en mars 2026" in home  # one reference month: the last ended one
    department = sorted((during / "departements").glob("[0-9]*.html"))[0].read_text("utf-8")
    assert "En mars 2026" in department
    assert "en cours : 10 j sur 30" in department

    # Built afterwards (the demo fixture): April has ended but was observed 10 days.
    after = demo.site_index.parent
    april = read(after, "archives/2026-04.html")
    assert "Rapport d’avril 2026" in april and "observé 10 jours sur 30" in april
    assert "Rapport d’avril 2026 (partiel : 10 j sur 30)" in read(after, "flux.xml")
    department = sorted((after / "departements").glob("[0-9]*.html"))[0].read_text("utf-8")
    assert "partiel : 10 j sur 30" in department
    chart = department.split('<svg class="chart"')[1].split("</svg>")[0]
    assert "avr. 2026 *" in chart and "* avr. 2026 : partiel : 10 j sur 30" in chart
    assert "chart-title" in chart and re.search(r'class="value"[^>]*>\d+ %<', chart)
    assert "26-0" not in chart


def test_cimade_table_and_citation_blocks(demo_site: Path) -> None:
    month = read(demo_site, "archives/2026-03.html")
    procedure = sorted((demo_site / "procedures").glob("*.html"))[0].read_text("utf-8")
    for body in (month, procedure):
        doc = lxml_html.fromstring(body)
        table = doc.xpath("//table[contains(@class, 'cimade')]")[0]
        head = [th.text_content() for th in table.xpath(".//thead//th")]
        assert head[2:7] == [
            "Au moins deux dates sur un mois",
            "Une seule date sous un mois",
            "Première date entre un et deux mois",
            "Première date au-delà de 2 mois",
            "Pas de date disponible",
        ]
        rows = table.xpath(".//tbody/tr[th]")
        assert rows
        for tr in rows:
            cells = [td.text_content() for td in tr.xpath("./td")]
            if cells[-1] == "0":  # no classed probe (a retired link): every class is "—"
                assert cells[1:6] == ["—"] * 5
                continue
            shares = [float(c.replace("\u202f%", "").replace(",", ".")) for c in cells[1:6]]
            assert 99 <= sum(shares) <= 101, cells
    department = sorted((demo_site / "departements").glob("[0-9]*.html"))[0]
    for body, link in (
        (department.read_text("utf-8"), f"departements/{department.name}#mois-2026-04"),
        (month, "archives/2026-03.html#national"),
        (procedure, "#mois-2026-04"),
    ):
        block = lxml_html.fromstring(body).xpath("//section[@id='citer']")[0]
        words = block.text_content()
        assert "Citer ce chiffre" in words and "n'ont trouvé aucune possibilité" in words
        assert link in words
        assert "Méthode" in words and "version 2" in words and "Généré le" in words
        assert "Intervalle de confiance à 95" in words and "Wilson" in words
    # The cited anchor exists on its page.
    assert 'id="mois-2026-04"' in department.read_text("utf-8")


def test_no_pseudonym_in_any_public_file(demo: DemoReport, demo_site: Path) -> None:
    needle = DEMO_VOLUNTEER.encode()
    public = [*demo_site.rglob("*"), *demo.export_dir.rglob("*")]
    leaks = [p for p in public if p.is_file() and needle in p.read_bytes()]
    assert leaks == []
    # Screenshots: the stamp of an assisted capture is drawn with the pseudonym in it,
    # so none of them is published; the page says why.
    engine = make_engine(demo.database_url)
    with engine.connect() as conn:
        assisted = set(
            conn.execute(
                text(
                    "SELECT screenshot_sha256 FROM probes WHERE mode <> 'auto' "
                    "AND screenshot_sha256 IS NOT NULL"
                )
            ).scalars()
        )
    engine.dispose()
    assert assisted  # the demo's volunteer did capture pages
    published = {p.stem for p in (demo_site / "preuves").glob("*.png")}
    assert published and not (published & assisted)
    pages = " ".join(p.read_text("utf-8") for p in (demo_site / "departements").glob("*.html"))
    assert "non reproduite ici" in pages


def test_open_data_types_and_both_packages_validate(demo: DemoReport, tmp_path: Path) -> None:
    engine = make_engine(demo.database_url)
    export_all(engine, tmp_path / "parquet", fmt="parquet")
    engine.dispose()
    for folder in (demo.export_dir, tmp_path / "parquet"):
        report = validate(str(folder / "datapackage.json"))
        assert report.valid, report.flatten(["resource", "type", "note"])[:5]
        package = json.loads((folder / "datapackage.json").read_text("utf-8"))
        assert package["simulated"] is True
        resources = {r["name"]: r for r in package["resources"]}
        assert "stats_procedure" in resources
        assert resources["targets"]["schema"]["primaryKey"] == ["target"]
        assert resources["probes"]["schema"]["foreignKeys"][0]["reference"] == {
            "resource": "targets",
            "fields": ["target"],
        }
        outcome = next(f for f in resources["probes"]["schema"]["fields"] if f["name"] == "outcome")
        assert "no_slot" in outcome["constraints"]["enum"]
        assert "target_id" not in {
            f["name"] for r in package["resources"] for f in r["schema"]["fields"]
        }
        assert resources["stats_department"]["title"].startswith("Statistiques")
    probes = pq.read_schema(tmp_path / "parquet" / "probes.parquet")
    assert probes.field("started_at").type == pa.timestamp("us", tz="UTC")
    assert probes.field("department").type == pa.string()
    assert probes.field("adapter_version").type == pa.string()
    episodes = pq.read_schema(tmp_path / "parquet" / "episodes.parquet")
    assert episodes.field("ongoing").type == pa.bool_()
    assert episodes.field("start").type == pa.timestamp("us", tz="UTC")
    targets = pq.read_table(tmp_path / "parquet" / "targets.parquet").to_pandas()
    assert targets["simulated"].all()
    csv_targets = pd.read_csv(demo.export_dir / "targets.csv", dtype=str)
    assert set(csv_targets["simulated"]) == {"True"} or set(csv_targets["simulated"]) == {"true"}
    donnees = (demo.site_index.parent / "donnees" / "index.html").read_text("utf-8")
    assert "pd.read_csv" in donnees and "read_csv(" in donnees and '"2A"' in donnees


@pytest.fixture
def retired_and_spaced(engine):
    """A department whose only link was deactivated, and one watched by volunteers every
    three days."""
    with Session(engine) as s, s.begin():
        add_target(s, "23-a", "23", "Creuse")
        add_target(s, "15-a", "15", "Cantal")
        for day in (2, 5, 8, 11, 14):
            add_probe(s, "15-a", f"2026-03-{day:02d}T10:00:00+00:00", "no_slot")
        add_probe(s, "15-a", "2026-03-15T10:00:00+00:00", "available")
        for day in (5, 6, 7):
            add_probe(s, "23-a", f"2026-03-{day:02d}T10:00:00+00:00", "error")
    with engine.begin() as conn:
        conn.execute(text("UPDATE probes SET detail = 'target_retired' WHERE outcome = 'error'"))
    rebuild(engine)
    return engine


def test_retired_link_and_spaced_episodes(retired_and_spaced, tmp_path: Path) -> None:
    index = build_site(
        retired_and_spaced,
        tmp_path / "site",
        SiteContext(False, datetime(2026, 4, 2, tzinfo=UTC)),
    )
    site = index.parent
    creuse = read(site, "departements/23.html")
    assert "Lien désactivé par la préfecture depuis le 05/03/2026" in creuse
    assert "target_retired" not in creuse
    home = index.read_text("utf-8")
    assert re.search(r'<path class="dep qr"[^>]*/><title>23 Creuse : lien désactivé', home)
    assert "Lien désactivé par la préfecture depuis le 05/03/2026" in home
    cantal = read(site, "departements/15.html")
    episode = cantal.split("Épisodes sans aucun créneau")[1]
    # 5 observations 3 days apart, closed by the 15 March slot: 13 days, largest gap 3.
    assert "observations espacées" in episode
    assert re.search(
        r"13,0 <small[^>]*>observations espacées</small></td>"
        r"<td[^>]*>5</td><td[^>]*>3,0</td>",
        episode,
    )


def test_month_periods_running_and_partial() -> None:
    first = datetime(2026, 9, 5, 22, 30, tzinfo=UTC)  # 6 September in Paris
    last = datetime(2026, 11, 20, 12, tzinfo=UTC)
    periods = month_periods(
        ["2026-09", "2026-10", "2026-11"], first, last, datetime(2026, 11, 26, tzinfo=UTC)
    )
    assert (periods["2026-09"].status, periods["2026-09"].days_covered) == ("partiel", 25)
    assert periods["2026-10"].status == "complet" and not periods["2026-10"].partial
    assert periods["2026-11"].running and periods["2026-11"].days_covered == 20
    # Once November has ended, it is a partial month (observed until the 20th).
    after = month_periods(["2026-11"], first, last, datetime(2026, 12, 1, tzinfo=UTC))
    assert after["2026-11"].status == "partiel"
