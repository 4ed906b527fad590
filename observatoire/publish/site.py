"""The public site: static French pages rendered from `templates/`, published atomically.

No request to any other host (no CDN, web font or tracker), readable without JavaScript,
printable; every scraped string is escaped (Jinja2 autoescape). Pages: home (map,
national figure, ranking), one page per department, per procedure and per month,
methodology, downloads (the open data, checksums, licence), transparency (the robot's own
load), an Atom feed of monthly reports and of episodes without any slot, and iCalendar
feeds of announced slot releases ("mises en ligne").

`build_site` reads what every page shares once (`SiteData`), then calls one function per
page family; each adds its files to a `SiteFiles`, written into a fresh folder and swapped
in place. The words and numbers in French come from `formatting`, the database reads
beyond the monthly figures from `site_queries`.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment
from sqlalchemy import Engine

from observatoire import __version__
from observatoire.config import reference_departments
from observatoire.publish.charts import share_trend
from observatoire.publish.choropleth import (
    CREDIT,
    OVERSEAS_NAMES,
    RETIRED_CLASS,
    MapValue,
    legend,
    render_map,
)
from observatoire.publish.formatting import (
    TEMPLATES,
    environment,
    month_fr,
    month_short,
    paris_day,
    percent,
    period_note,
    with_cimade_percent,
)
from observatoire.publish.site_queries import (
    adapter_versions,
    episode_gaps,
    latest_probes,
    observed_pages,
    probe_totals,
    retired_targets,
    transparency,
)
from observatoire.publish.swap import publish_dir
from observatoire.record import releases
from observatoire.record.evidence import EvidenceStore
from observatoire.record.rollups import probe_time_range
from observatoire.settings import Settings
from observatoire.stats import (
    CIMADE_CLASSES,
    METHOD_VERSION,
    MonthPeriod,
    StatsInput,
    month_periods,
    monthly_stats,
)

TREND_MONTHS = 24

#: A row of a figures table as the templates receive it: column name → value, whose type
#: depends on the column (text, count, share, time).
Record = dict[str, Any]


@dataclass(frozen=True)
class SiteContext:
    simulated: bool
    built_at: datetime
    evidence: EvidenceStore | None = None
    user_agent: str = ""
    contact_url: str = ""
    #: Public address of the site ("https://…/"), for the citation links; relative if "".
    base_url: str = ""


def context_from_settings(simulated: bool, settings: Settings | None = None) -> SiteContext:
    settings = settings or Settings.from_env()
    return SiteContext(
        simulated,
        datetime.now(UTC),
        EvidenceStore(settings.evidence_dir),
        settings.user_agent,
        settings.contact_url,
    )


def build_site(engine: Engine, out: Path, ctx: SiteContext, open_data: Path | None = None) -> Path:
    """Render every page into a fresh folder, then swap it in place of `out`.

    The open data is not computed here: `open_data`, a folder `export_all` already
    wrote (`publish` and `demo` do it first), is copied into `donnees/` and listed; without
    it the downloads page says where the data comes from."""
    site = read_site_data(engine, ctx)
    files = SiteFiles(copies={"style.css": TEMPLATES / "site" / "style.css"})
    pages = Pages(site_environment(site.periods), common_values(site), files)
    home_page(pages, site)
    department_index_page(pages, site)
    department_pages(pages, site)
    procedure_pages(pages, site)
    month_pages(pages, site)
    methodology_page(pages, site)
    transparency_page(pages, site)
    downloads_page(pages, open_data)
    atom_feed(pages, site)
    release_calendars(files, site)
    publish_dir(out, files.write)
    return Path(out) / "index.html"


# -- What every page family reads ------------------------------------------------------
@dataclass(frozen=True)
class SiteData:
    """The figures and facts the pages share, read once per build."""

    engine: Engine
    ctx: SiteContext
    #: Monthly figures per level: department, department_procedure, procedure, national.
    levels: dict[str, pd.DataFrame]
    months: list[str]
    periods: dict[str, MonthPeriod]
    #: ONE reference month for every page: the last ended month with data (the running
    #: month only when nothing has ended yet); None before any probe.
    reference: str | None
    #: Department code → name, for every department (observed or not).
    names: dict[str, str]
    #: Every episode without any slot, with its department and procedure names.
    episodes: pd.DataFrame
    until: datetime
    #: Target → first probe of its current run on a link the prefecture deactivated.
    retired: dict[str, datetime]
    #: Department → since when all its links are deactivated.
    retired_departments: dict[str, datetime]

    @property
    def departments(self) -> pd.DataFrame:
        return self.levels["department"]

    def at_reference(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The rows of the reference month (all of them before any month has data)."""
        return frame[frame["month"] == self.reference] if self.reference else frame

    def department_retired(self, code: str) -> datetime | None:
        return self.retired_departments.get(code)


def read_site_data(engine: Engine, ctx: SiteContext) -> SiteData:
    data = StatsInput.load(engine)
    levels = {
        lvl: monthly_stats(engine, lvl, data)
        for lvl in ("department", "department_procedure", "procedure", "national")
    }
    deps = levels["department"]
    months = sorted(set(deps["month"])) if len(deps) else []
    span = probe_time_range(engine)
    periods = month_periods(months, *span, ctx.built_at) if span else {}
    ended = [m for m in months if not periods[m].running]
    reference = ended[-1] if ended else (months[-1] if months else None)
    targets = data.targets
    episodes = data.episodes.copy()
    if len(episodes):
        episodes = episodes.join(
            targets.set_index("target_id")[["department", "department_name", "procedure_name"]],
            on="target_id",
        )
    retired = retired_targets(engine)
    retired_departments = {
        code: min(retired[t] for t in group["target_id"])
        for code, group in targets.groupby("department")
        if len(group) and all(t in retired for t in group["target_id"])
    }
    return SiteData(
        engine=engine,
        ctx=ctx,
        levels=levels,
        months=months,
        periods=periods,
        reference=reference,
        names={code: d.name for code, d in reference_departments().items()},
        episodes=episodes,
        until=data.until,
        retired=retired,
        retired_departments=retired_departments,
    )


def site_environment(periods: dict[str, MonthPeriod]) -> Environment:
    """The French environment, its `month_note` filter marking partial and running months."""
    env = environment()
    env.filters["month_note"] = lambda m: period_note(periods.get(m))
    return env


def common_values(site: SiteData) -> dict[str, object]:
    """What every page shows: version, reference month, last probe, number of probes."""
    last_probe, total = probe_totals(site.engine)
    return dict(
        simulated=site.ctx.simulated,
        built_at=site.ctx.built_at,
        version=__version__,
        method_version=METHOD_VERSION,
        map_credit=CREDIT,
        last_probe=last_probe,
        total_probes=total,
        reference=site.reference,
        base_url=site.ctx.base_url,
    )


# -- What the folder will hold ---------------------------------------------------------
@dataclass
class SiteFiles:
    """Every file of the new site folder by relative path, gathered before any is written."""

    #: Pages and the Atom feed.
    texts: dict[str, str] = field(default_factory=dict)
    #: iCalendar feeds, written with their own line ends (CRLF) untouched.
    calendars: dict[str, str] = field(default_factory=dict)
    #: Files copied as they are: stylesheet, screenshots, open data (already exported,
    #: never recomputed).
    copies: dict[str, Path] = field(default_factory=dict)

    def write(self, folder: Path) -> None:
        for rel, content in self.texts.items():
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
        for rel, calendar in self.calendars.items():
            (folder / rel).write_text(calendar, encoding="utf-8", newline="")
        for rel, source in self.copies.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, folder / rel)


@dataclass
class Pages:
    """Renders pages into `files` with the values every page shows."""

    env: Environment
    common: dict[str, object]
    files: SiteFiles

    def render(self, path: str, template: str, **values: object) -> None:
        root = "../" * path.count("/")
        self.files.texts[path] = self.env.get_template(template).render(
            root=root, page_path=path, **self.common, **values
        )


def _rows(frame: pd.DataFrame) -> list[Record]:
    """Records for the templates, column by column (much faster than `to_dict` on wide
    frames of mixed types, which the site calls hundreds of times)."""
    if not len(frame):
        return []
    columns = list(frame.columns)
    return [dict(zip(columns, row, strict=True)) for row in frame.to_numpy(dtype=object).tolist()]


def _trend_chart(rows: pd.DataFrame, title: str, periods: dict[str, MonthPeriod]) -> str:
    """The last `TREND_MONTHS` months of `rows` as bars, partial months marked."""
    points = [
        (
            month_short(r["month"]),
            r["share_no_way"],
            r["share_low_cluster"] if not pd.isna(r["share_low_cluster"]) else r["share_low"],
            r["share_high_cluster"] if not pd.isna(r["share_high_cluster"]) else r["share_high"],
        )
        for r in _rows(rows.tail(TREND_MONTHS).iloc[::-1])
    ]
    marks = {
        month_short(m): period_note(periods.get(m))
        for m in rows["month"].tail(TREND_MONTHS)
        if period_note(periods.get(m))
    }
    return share_trend(points, title, marks)


# -- Page families ---------------------------------------------------------------------
def home_page(pages: Pages, site: SiteData) -> None:
    """index.html: the map and the ranking of the reference month, the national figure
    and the longest episodes still open."""
    reference = site.reference
    month_rows = site.at_reference(site.departments)
    nat_row = site.at_reference(site.levels["national"])
    ranking = _rows(month_rows.sort_values("share_no_way", ascending=False, na_position="last"))
    for r in ranking:
        r["retired_since"] = site.department_retired(r["department"])
    episodes = site.episodes
    pages.render(
        "index.html",
        "site/index.html",
        headline_month=reference,
        national=_rows(nat_row)[0] if len(nat_row) else None,
        departments_total=len(site.names),
        map_svg=render_map(
            _map_values(site, month_rows),
            site.names,
            "Carte : part des consultations sans "
            f"possibilité de rendez-vous, {month_fr(reference)}",
        ),
        legend=legend(),
        overseas=OVERSEAS_NAMES,
        ranking=ranking,
        episodes_open=_rows(
            episode_gaps(
                site.engine,
                episodes[episodes["ongoing"]]
                .sort_values("duration_days", ascending=False)
                .head(10),
                site.until,
            )
        )
        if len(episodes)
        else [],
    )


def _map_values(site: SiteData, month_rows: pd.DataFrame) -> dict[str, MapValue]:
    """Each department's share on the map; a department whose links are all deactivated
    and that has no valid probe this month says so instead of "no valid measure"."""
    values: dict[str, MapValue] = {}
    for r in _rows(month_rows):
        code: str = r["department"]
        href = f"departements/{code}.html"
        since = site.department_retired(code)
        if since is not None and not r["valid"]:
            values[code] = MapValue(
                None,
                f"lien désactivé par la préfecture depuis le {paris_day(since)}",
                href,
                RETIRED_CLASS[0],
            )
            continue
        values[code] = MapValue(
            None if r["valid"] == 0 else float(r["share_no_way"]),
            percent(r["share_no_way"]) if r["valid"] else "aucune mesure valide",
            href,
        )
    return values


def department_index_page(pages: Pages, site: SiteData) -> None:
    """departements/index.html: every department, with its figure of the reference month."""
    ref_by_dep = {r["department"]: r for r in _rows(site.at_reference(site.departments))}
    with_pages = set(site.departments["department"])
    all_deps = [
        {
            "code": code,
            "name": dep.name,
            "last": ref_by_dep.get(code),
            "has_page": code in with_pages,
            "retired_since": site.department_retired(code),
        }
        for code, dep in reference_departments().items()
    ]
    pages.render("departements/index.html", "site/departements.html", departments=all_deps)


def department_pages(pages: Pages, site: SiteData) -> None:
    """departements/<code>.html for each department with figures: trend, procedures,
    booking pages observed, episodes, latest screenshots (copied along) and the "mises
    en ligne" section."""
    reference, names = site.reference, site.names
    procs_all = site.levels["department_procedure"]
    latest = latest_probes(site.engine)
    pages_seen = observed_pages(site.engine)
    release_sections = releases.site_sections(site.engine, site.ctx.built_at)
    deps_by = {code: part for code, part in site.departments.groupby("department", sort=False)}
    procs_by = {code: part for code, part in procs_all.groupby("department", sort=False)}
    latest_by = {code: part for code, part in latest.groupby("department", sort=False)}
    pages_by = {code: part for code, part in pages_seen.groupby("department", sort=False)}
    episodes_by = _latest_episodes_by_department(site)
    for code in sorted(deps_by):
        rows = deps_by[code].sort_values("month")
        procs = procs_by.get(code, procs_all.iloc[:0])
        ref_row = _rows(rows[rows["month"] == reference]) if reference else []
        observed = _rows(pages_by.get(code, pages_seen.iloc[:0]))
        for p in observed:
            p["retired_since"] = site.retired.get(p["target_id"])
        name = names.get(code, code)
        pages.render(
            f"departements/{code}.html",
            "site/departement.html",
            code=code,
            name=name,
            ref=ref_row[0] if ref_row else None,
            retired_since=site.department_retired(code),
            chart=_trend_chart(
                rows,
                f"Part des consultations valides sans possibilité de rendez-vous, {name}, par mois",
                site.periods,
            ),
            trend=_rows(rows.tail(TREND_MONTHS).iloc[::-1]),
            procedures=_rows(procs.sort_values(["month", "procedure"], ascending=[False, True])),
            observed=observed,
            episodes=_rows(episodes_by[code]) if code in episodes_by else [],
            latest=_screenshots(
                _rows(latest_by.get(code, latest.iloc[:0])),
                site.ctx.evidence,
                pages.files.copies,
            ),
            releases=release_sections.get(code),
        )


def _latest_episodes_by_department(site: SiteData) -> dict[str, pd.DataFrame]:
    """The 20 latest episodes of each department, with their gaps (one batch of queries)."""
    episodes = site.episodes
    if not len(episodes):
        return {}
    shown = episode_gaps(
        site.engine,
        episodes.sort_values("start", ascending=False).groupby("department").head(20),
        site.until,
    )
    return (
        {code: part for code, part in shown.groupby("department", sort=False)} if len(shown) else {}
    )


def _screenshots(
    latest: list[Record], evidence: EvidenceStore | None, copies: dict[str, Path]
) -> list[Record]:
    """The latest probes with the screenshot each shows (`image`), added to `copies`.

    Only the robot's own captures are shown: an assisted or manual capture carries the
    volunteer's pseudonym in its stamp, which never goes public."""
    shots = []
    for r in latest:
        sha = r["screenshot_sha256"] if isinstance(r["screenshot_sha256"], str) else None
        r["page_sha256"] = r["page_sha256"] if isinstance(r["page_sha256"], str) else None
        r["screenshot_sha256"] = sha
        image = None
        if sha and r["mode"] == "auto" and evidence is not None:
            source = evidence.path_for(sha, "png")
            if source.exists():
                image = f"preuves/{sha}.png"
                copies[image] = source
        shots.append({**r, "image": image})
    return shots


def procedure_pages(pages: Pages, site: SiteData) -> None:
    """procedures/<slug>.html: a procedure nationally, month by month, and per prefecture
    in the reference month with La Cimade's classes."""
    procs = site.levels["procedure"]
    procs_all = site.levels["department_procedure"]
    reference = site.reference
    for slug in sorted(set(procs["procedure"])):
        rows = procs[procs["procedure"] == slug].sort_values("month")
        name = rows["procedure_name"].iloc[0]
        ref_row = _rows(rows[rows["month"] == reference]) if reference else []
        by_prefecture = procs_all[
            (procs_all["procedure"] == slug) & (procs_all["month"] == reference)
        ].sort_values("department")
        pages.render(
            f"procedures/{slug}.html",
            "site/procedure.html",
            slug=slug,
            name=name,
            ref=ref_row[0] if ref_row else None,
            months=_rows(rows.iloc[::-1]),
            cimade_rows=with_cimade_percent(_rows(by_prefecture)),
            chart=_trend_chart(
                rows,
                f"Part des consultations valides sans possibilité de rendez-vous, {name}, par mois",
                site.periods,
            ),
        )


def month_pages(pages: Pages, site: SiteData) -> None:
    """archives/<month>.html (a report once the month has ended, provisional figures
    before) and archives/index.html, the list of months and procedures."""
    deps = site.departments
    national = site.levels["national"]
    procs_all = site.levels["department_procedure"]
    for month in site.months:
        pages.render(
            f"archives/{month}.html",
            "site/archive.html",
            month=month,
            period=site.periods[month],
            rows=_rows(deps[deps["month"] == month].sort_values("department")),
            national=_rows(national[national["month"] == month]),
            cimade_rows=with_cimade_percent(
                _rows(
                    procs_all[procs_all["month"] == month].sort_values(["department", "procedure"])
                )
            ),
        )
    procedures = sorted(
        {(r["procedure"], r["procedure_name"]) for r in _rows(site.levels["procedure"])}
    )
    pages.render(
        "archives/index.html",
        "site/archives.html",
        months=list(reversed(site.months)),
        periods=site.periods,
        procedures=procedures,
    )


def methodology_page(pages: Pages, site: SiteData) -> None:
    """methodologie.html: La Cimade's classes and the adapter versions used."""
    pages.render(
        "methodologie.html",
        "site/methodologie.html",
        cimade=CIMADE_CLASSES,
        adapters=adapter_versions(site.engine),
    )


def transparency_page(pages: Pages, site: SiteData) -> None:
    """transparence.html: the robot's own load, its User-Agent and how to reach us."""
    pages.render(
        "transparence.html",
        "site/transparence.html",
        load=_rows(transparency(site.engine)),
        user_agent=site.ctx.user_agent,
        contact_url=site.ctx.contact_url,
    )


def downloads_page(pages: Pages, open_data: Path | None) -> None:
    """donnees/index.html, listing the open data of `open_data` (copied alongside)."""
    package = (
        json.loads((open_data / "datapackage.json").read_text("utf-8"))
        if open_data is not None and (open_data / "datapackage.json").exists()
        else None
    )
    pages.render("donnees/index.html", "site/donnees.html", package=package)
    if package is not None and open_data is not None:
        for item in open_data.iterdir():
            if item.is_file() and not item.name.startswith("."):
                pages.files.copies[f"donnees/{item.name}"] = item


def atom_feed(pages: Pages, site: SiteData) -> None:
    """flux.xml: the reports of ended months and the 50 latest episodes."""
    national = site.levels["national"]
    episodes = site.episodes
    pages.files.texts["flux.xml"] = pages.env.get_template("site/flux.xml").render(
        built_at=site.ctx.built_at,
        national=_rows(
            national[[not site.periods[m].running for m in national["month"]]].sort_values(
                "month", ascending=False
            )
        )
        if len(national)
        else [],
        episodes=_rows(episodes.sort_values("start", ascending=False).head(50))
        if len(episodes)
        else [],
        simulated=site.ctx.simulated,
    )


def release_calendars(files: SiteFiles, site: SiteData) -> None:
    """mises-en-ligne*.ics: the slot releases announced for the next days (issue 17)."""
    files.calendars.update(releases.site_feeds(site.engine, site.ctx.built_at))
