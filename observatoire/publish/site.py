"""The public site: static French pages rendered from `templates/`, published atomically.

No request to any other host (no CDN, web font or tracker), readable without JavaScript,
printable; every scraped string is escaped (Jinja2 autoescape). Pages: home (map,
national figure, ranking), one page per department, per procedure and per month,
methodology, downloads (the open data, checksums, licence), transparency (the robot's own
load) and an Atom feed of monthly reports and of episodes without any slot.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import Engine, func, select, text

from observatoire import __version__
from observatoire.clock import PARIS
from observatoire.config import reference_departments
from observatoire.db.models import Probe
from observatoire.db.types import UTCDateTime
from observatoire.french import MONTHS_FR
from observatoire.outcomes import OUTCOMES_FR
from observatoire.publish.charts import share_trend
from observatoire.publish.choropleth import (
    CREDIT,
    OVERSEAS_NAMES,
    RETIRED_CLASS,
    MapValue,
    legend,
    render_map,
)
from observatoire.publish.site_views import (
    de_month,
    detail_fr,
    episode_gaps,
    month_short,
    observed_pages,
    paris_day,
    period_note,
    platform_fr,
    retired_targets,
    with_cimade_percent,
)
from observatoire.publish.swap import publish_dir
from observatoire.record import releases
from observatoire.record.evidence import EvidenceStore
from observatoire.settings import Settings
from observatoire.stats import (
    CIMADE_CLASSES,
    METHOD_VERSION,
    StatsInput,
    counted_sql,
    month_periods,
    monthly_stats,
    probe_time_range,
)

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
TREND_MONTHS = 24


def percent(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    text_ = f"{100 * value:.{digits}f}".replace(".", ",")
    return f"{text_}\u202f%"


def number(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:,.{digits}f}".replace(",", "\u202f").replace(".", ",")


def month_fr(label: str | None) -> str:
    """'2026-03' -> 'mars 2026'."""
    if not label:
        return "—"
    year, month = label.split("-")[:2]
    return f"{MONTHS_FR[int(month) - 1]} {year}"


def paris_time(value: datetime | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return "—"
    return value.astimezone(PARIS).strftime("%d/%m/%Y à %H:%M")


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "xml"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        percent=percent,
        paris_time=paris_time,
        month_fr=month_fr,
        number=number,
        outcome_fr=lambda o: OUTCOMES_FR.get(o, o),
        month_short=month_short,
        de_month=de_month,
        detail_fr=detail_fr,
        platform_fr=platform_fr,
        paris_day=paris_day,
        month_note=lambda _m: "",
    )
    return env


@dataclass(frozen=True)
class SiteContext:
    simulated: bool
    built_at: datetime
    evidence: EvidenceStore | None = None
    user_agent: str = ""
    contact_url: str = ""
    #: Public address of the site ("https://…/"), for the citation links; relative if "".
    base_url: str = ""


def _rows(frame: pd.DataFrame) -> list[dict[str, object]]:
    """Records for the templates, column by column (much faster than `to_dict` on wide
    frames of mixed types, which the site calls hundreds of times)."""
    if not len(frame):
        return []
    columns = list(frame.columns)
    return [dict(zip(columns, row, strict=True)) for row in frame.to_numpy(dtype=object).tolist()]


def _latest_probes(engine: Engine, per_department: int = 3) -> pd.DataFrame:
    """The last probes of each department that left a screenshot or a page."""
    sql = text(
        "SELECT t.department AS department, p.target_id AS target_id, p.started_at AS started_at, "
        "p.outcome AS outcome, p.detail AS detail, p.mode AS mode, p.page_sha256 AS page_sha256, "
        "p.screenshot_sha256 AS screenshot_sha256 FROM probes p JOIN targets t "
        "ON t.id = p.target_id WHERE p.id IN (SELECT MAX(q.id) FROM probes q "
        f"WHERE {counted_sql('q')} GROUP BY q.target_id) ORDER BY p.started_at DESC"
    ).columns(started_at=UTCDateTime())
    with engine.connect() as conn:
        frame = pd.DataFrame(
            conn.execute(sql).mappings().all(),
            columns=[
                "department",
                "target_id",
                "started_at",
                "outcome",
                "detail",
                "mode",
                "page_sha256",
                "screenshot_sha256",
            ],
        )
    return frame.groupby("department").head(per_department) if len(frame) else frame


def _transparency(engine: Engine) -> pd.DataFrame:
    """The robot's own load per platform and month: probes and requests sent."""
    from observatoire.stats import _spans_cte, paris_months, probe_time_range

    span = probe_time_range(engine)
    if span is None:
        return pd.DataFrame(columns=["platform", "month", "probes", "requests", "most"])
    months = paris_months(*span)
    cte, params = _spans_cte("m", months)
    sql = text(
        f"WITH {cte} SELECT t.platform AS platform, m.label AS month, COUNT(*) AS probes, "
        "SUM(p.requests_made) AS requests, MAX(p.requests_made) AS most FROM m "
        "JOIN probes p ON p.started_at >= m.s AND p.started_at < m.e "
        f"JOIN targets t ON t.id = p.target_id WHERE {counted_sql('p')} "
        "GROUP BY t.platform, m.label "
        "ORDER BY m.label DESC, t.platform"
    ).bindparams(*params)
    with engine.connect() as conn:
        data = conn.execute(sql).mappings().all()
    return pd.DataFrame(data, columns=["platform", "month", "probes", "requests", "most"])


def build_site(engine: Engine, out: Path, ctx: SiteContext, open_data: Path | None = None) -> Path:
    """Render every page into a fresh folder, then swap it in place of `out`.

    The open data is not computed here: `open_data`, a folder `export_all` already
    wrote (`publish` and `demo` do it first), is copied into `donnees/` and listed; without
    it the downloads page says where the data comes from."""
    data = StatsInput.load(engine)
    levels = {
        lvl: monthly_stats(engine, lvl, data)
        for lvl in ("department", "department_procedure", "procedure", "national")
    }
    deps = levels["department"]
    months = sorted(set(deps["month"])) if len(deps) else []
    span = probe_time_range(engine)
    periods = month_periods(months, *span, ctx.built_at) if span else {}
    # ONE reference month for every page: the last ended month with data (the running
    # month only when nothing has ended yet).
    ended = [m for m in months if not periods[m].running]
    reference = ended[-1] if ended else (months[-1] if months else None)
    names = {code: d.name for code, d in reference_departments().items()}
    env = environment()
    env.filters["month_note"] = lambda m: period_note(periods.get(m))
    latest = _latest_probes(engine)
    # "Mises en ligne" (issue 17): per-department section and calendar feeds.
    release_sections = releases.site_sections(engine, ctx.built_at)
    release_feeds = releases.site_feeds(engine, ctx.built_at)
    retired = retired_targets(engine)
    pages_seen = observed_pages(engine)
    with engine.connect() as conn:
        # A private applicant's captures appear on no public page, not even as a count.
        last_probe = conn.execute(
            select(func.max(Probe.started_at)).where(text(counted_sql()))
        ).scalar()
        total = conn.execute(text(f"SELECT COUNT(*) FROM probes WHERE {counted_sql()}")).scalar()
        total = total or 0
    targets = data.targets
    episodes = data.episodes.copy()
    if len(episodes):
        episodes = episodes.join(
            targets.set_index("target_id")[["department", "department_name", "procedure_name"]],
            on="target_id",
        )
    retired_deps = {
        code: min(retired[t] for t in group["target_id"])
        for code, group in targets.groupby("department")
        if len(group) and all(t in retired for t in group["target_id"])
    }

    common = dict(
        simulated=ctx.simulated,
        built_at=ctx.built_at,
        version=__version__,
        method_version=METHOD_VERSION,
        map_credit=CREDIT,
        last_probe=last_probe,
        total_probes=total,
        reference=reference,
        base_url=ctx.base_url,
    )
    pages: dict[str, str] = {}

    def page(path: str, template: str, **values: object) -> None:
        root = "../" * path.count("/")
        pages[path] = env.get_template(template).render(
            root=root, page_path=path, **common, **values
        )

    def chart(rows: pd.DataFrame, title: str) -> str:
        points = [
            (
                month_short(r["month"]),
                r["share_no_way"],
                r["share_low_cluster"] if not pd.isna(r["share_low_cluster"]) else r["share_low"],
                r["share_high_cluster"]
                if not pd.isna(r["share_high_cluster"])
                else r["share_high"],
            )
            for r in _rows(rows.tail(TREND_MONTHS).iloc[::-1])
        ]
        marks = {
            month_short(m): period_note(periods.get(m))
            for m in rows["month"].tail(TREND_MONTHS)
            if period_note(periods.get(m))
        }
        return share_trend(points, title, marks)

    def dep_retired(code: str) -> datetime | None:
        return retired_deps.get(code)

    # Home: map and ranking for the reference month.
    month_rows = deps[deps["month"] == reference] if reference else deps
    map_values = {}
    for r in _rows(month_rows):
        since = dep_retired(r["department"])
        if since is not None and not r["valid"]:
            map_values[r["department"]] = MapValue(
                None,
                f"lien désactivé par la préfecture depuis le {paris_day(since)}",
                f"departements/{r['department']}.html",
                RETIRED_CLASS[0],
            )
            continue
        map_values[r["department"]] = MapValue(
            None if r["valid"] == 0 else float(r["share_no_way"]),
            percent(r["share_no_way"]) if r["valid"] else "aucune mesure valide",
            f"departements/{r['department']}.html",
        )
    national = levels["national"]
    nat_row = national[national["month"] == reference] if reference else national
    ranking = _rows(month_rows.sort_values("share_no_way", ascending=False, na_position="last"))
    for r in ranking:
        r["retired_since"] = dep_retired(r["department"])
    page(
        "index.html",
        "site/index.html",
        headline_month=reference,
        national=_rows(nat_row)[0] if len(nat_row) else None,
        departments_total=len(names),
        map_svg=render_map(
            map_values,
            names,
            "Carte : part des consultations sans "
            f"possibilité de rendez-vous, {month_fr(reference)}",
        ),
        legend=legend(),
        overseas=OVERSEAS_NAMES,
        ranking=ranking,
        episodes_open=_rows(
            episode_gaps(
                engine,
                episodes[episodes["ongoing"]]
                .sort_values("duration_days", ascending=False)
                .head(10),
                data.until,
            )
        )
        if len(episodes)
        else [],
    )

    # Departments.
    all_deps = []
    ref_by_dep = {r["department"]: r for r in _rows(month_rows)}
    with_pages = set(deps["department"])
    for code, dep in reference_departments().items():
        last = [ref_by_dep[code]] if code in ref_by_dep else []
        all_deps.append(
            {
                "code": code,
                "name": dep.name,
                "last": last[0] if last else None,
                "has_page": code in with_pages,
                "retired_since": dep_retired(code),
            }
        )
    page("departements/index.html", "site/departements.html", departments=all_deps)
    evidence_files: dict[str, str] = {}
    procs_all = levels["department_procedure"]
    deps_by = {code: part for code, part in deps.groupby("department", sort=False)}
    procs_by = {code: part for code, part in procs_all.groupby("department", sort=False)}
    latest_by = {code: part for code, part in latest.groupby("department", sort=False)}
    pages_by = {code: part for code, part in pages_seen.groupby("department", sort=False)}
    # The 20 latest episodes of each department, with their gaps (one batch of queries).
    shown = (
        episode_gaps(
            engine,
            episodes.sort_values("start", ascending=False).groupby("department").head(20),
            data.until,
        )
        if len(episodes)
        else episodes
    )
    episodes_by = (
        {code: part for code, part in shown.groupby("department", sort=False)} if len(shown) else {}
    )
    for code in sorted(deps_by):
        rows = deps_by[code].sort_values("month")
        trend = rows.tail(TREND_MONTHS)
        procs = procs_by.get(code, procs_all.iloc[:0])
        shots = []
        for r in _rows(latest_by.get(code, latest.iloc[:0])):
            sha = r["screenshot_sha256"] if isinstance(r["screenshot_sha256"], str) else None
            r["page_sha256"] = r["page_sha256"] if isinstance(r["page_sha256"], str) else None
            r["screenshot_sha256"] = sha
            # Only the robot's own captures are shown: an assisted or manual capture
            # carries the volunteer's pseudonym in its stamp, which never goes public.
            public = r["mode"] == "auto"
            exists = bool(
                sha and public and ctx.evidence and ctx.evidence.path_for(sha, "png").exists()
            )
            if exists:
                evidence_files[f"preuves/{sha}.png"] = str(sha)
            shots.append({**r, "image": f"preuves/{sha}.png" if exists else None})
        ref_row = _rows(rows[rows["month"] == reference]) if reference else []
        dep_pages = _rows(pages_by.get(code, pages_seen.iloc[:0]))
        for p_ in dep_pages:
            p_["retired_since"] = retired.get(p_["target_id"])
        page(
            f"departements/{code}.html",
            "site/departement.html",
            code=code,
            name=names.get(code, code),
            ref=ref_row[0] if ref_row else None,
            retired_since=dep_retired(code),
            chart=chart(
                rows,
                f"Part des consultations valides sans possibilité de rendez-vous, "
                f"{names.get(code, code)}, par mois",
            ),
            trend=_rows(trend.iloc[::-1]),
            procedures=_rows(procs.sort_values(["month", "procedure"], ascending=[False, True])),
            observed=dep_pages,
            episodes=_rows(episodes_by[code]) if code in episodes_by else [],
            latest=shots,
            releases=release_sections.get(code),
        )

    # Procedures nationally.
    procs = levels["procedure"]
    for slug in sorted(set(procs["procedure"])):
        rows = procs[procs["procedure"] == slug].sort_values("month")
        name = rows["procedure_name"].iloc[0]
        ref_row = _rows(rows[rows["month"] == reference]) if reference else []
        by_prefecture = procs_all[
            (procs_all["procedure"] == slug) & (procs_all["month"] == reference)
        ].sort_values("department")
        page(
            f"procedures/{slug}.html",
            "site/procedure.html",
            slug=slug,
            name=name,
            ref=ref_row[0] if ref_row else None,
            months=_rows(rows.iloc[::-1]),
            cimade_rows=with_cimade_percent(_rows(by_prefecture)),
            chart=chart(
                rows,
                f"Part des consultations valides sans possibilité de rendez-vous, {name}, par mois",
            ),
        )
    proc_list = sorted({(r["procedure"], r["procedure_name"]) for r in _rows(procs)})

    # Monthly pages: a report once the month has ended, provisional figures before.
    for month in months:
        page(
            f"archives/{month}.html",
            "site/archive.html",
            month=month,
            period=periods[month],
            rows=_rows(deps[deps["month"] == month].sort_values("department")),
            national=_rows(national[national["month"] == month]),
            cimade_rows=with_cimade_percent(
                _rows(
                    procs_all[procs_all["month"] == month].sort_values(["department", "procedure"])
                )
            ),
        )

    page(
        "methodologie.html",
        "site/methodologie.html",
        cimade=CIMADE_CLASSES,
        adapters=_adapter_versions(engine),
    )
    page(
        "transparence.html",
        "site/transparence.html",
        load=_rows(_transparency(engine)),
        user_agent=ctx.user_agent,
        contact_url=ctx.contact_url,
    )
    page(
        "archives/index.html",
        "site/archives.html",
        months=list(reversed(months)),
        periods=periods,
        procedures=proc_list,
    )

    feed = env.get_template("site/flux.xml").render(
        built_at=ctx.built_at,
        # Reports only for months that have ended.
        national=_rows(
            national[[not periods[m].running for m in national["month"]]].sort_values(
                "month", ascending=False
            )
        )
        if len(national)
        else [],
        episodes=_rows(episodes.sort_values("start", ascending=False).head(50))
        if len(episodes)
        else [],
        simulated=ctx.simulated,
    )
    package = (
        json.loads((open_data / "datapackage.json").read_text("utf-8"))
        if open_data is not None and (open_data / "datapackage.json").exists()
        else None
    )
    page("donnees/index.html", "site/donnees.html", package=package)

    def write(folder: Path) -> None:
        for rel, content in pages.items():
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
        (folder / "flux.xml").write_text(feed, encoding="utf-8")
        for name, calendar in release_feeds.items():
            (folder / name).write_text(calendar, encoding="utf-8", newline="")
        shutil.copy(TEMPLATES / "site" / "style.css", folder / "style.css")
        for rel, sha in evidence_files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            assert ctx.evidence is not None
            shutil.copy(ctx.evidence.path_for(sha, "png"), folder / rel)
        if package is not None and open_data is not None:
            # Already exported: copied, never recomputed.
            for item in open_data.iterdir():
                if item.is_file() and not item.name.startswith("."):
                    shutil.copyfile(item, folder / "donnees" / item.name)

    publish_dir(out, write)
    return Path(out) / "index.html"


def _adapter_versions(engine: Engine) -> list[dict[str, object]]:
    sql = text(
        "SELECT adapter, adapter_version, COUNT(*) AS probes, MIN(started_at) AS first, "
        f"MAX(started_at) AS last FROM probes WHERE {counted_sql()} "
        "GROUP BY adapter, adapter_version "
        "ORDER BY adapter, adapter_version"
    ).columns(first=UTCDateTime(), last=UTCDateTime())
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sql).mappings().all()]


def context_from_settings(simulated: bool, settings: Settings | None = None) -> SiteContext:
    settings = settings or Settings.from_env()
    return SiteContext(
        simulated,
        datetime.now(UTC),
        EvidenceStore(settings.evidence_dir),
        settings.user_agent,
        settings.contact_url,
    )
