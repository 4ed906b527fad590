"""The public site: static French pages rendered from `templates/`, published atomically.

No request to any other host (no CDN, web font or tracker), readable without JavaScript,
printable; every scraped string is escaped (Jinja2 autoescape). Pages: home (map,
national figure, ranking), one page per department, per procedure and per month,
methodology, downloads (the open data, checksums, licence), transparency (the robot's own
load) and an Atom feed of monthly reports and of episodes without any slot.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import Engine, func, select, text

from observatoire import __version__
from observatoire.charts import share_trend
from observatoire.choropleth import CREDIT, MapValue, legend, render_map
from observatoire.clock import PARIS
from observatoire.config import reference_departments
from observatoire.db.models import Probe
from observatoire.db.types import UTCDateTime
from observatoire.evidence import EvidenceStore
from observatoire.export import export_all
from observatoire.french import MONTHS_FR
from observatoire.publish import publish_dir
from observatoire.settings import Settings
from observatoire.stats import CIMADE_CLASSES, StatsInput, last_complete_month, monthly_stats

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
OUTCOMES_FR = {
    "available": "créneau proposé",
    "no_slot": "aucun créneau",
    "form_open": "formulaire ouvert",
    "procedure_missing": "démarche impossible à sélectionner",
    "blocked": "bloqué",
    "error": "erreur",
    "unrecognized": "page non reconnue",
}
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
    )
    return env


@dataclass(frozen=True)
class SiteContext:
    simulated: bool
    built_at: datetime
    evidence: EvidenceStore | None = None
    user_agent: str = ""
    contact_url: str = ""


def _rows(frame: pd.DataFrame) -> list[dict[str, object]]:
    return frame.to_dict(orient="records") if len(frame) else []


def _latest_probes(engine: Engine, per_department: int = 3) -> pd.DataFrame:
    """The last probes of each department that left a screenshot or a page."""
    sql = text(
        "SELECT t.department AS department, p.target_id AS target_id, p.started_at AS started_at, "
        "p.outcome AS outcome, p.detail AS detail, p.page_sha256 AS page_sha256, "
        "p.screenshot_sha256 AS screenshot_sha256 FROM probes p JOIN targets t "
        "ON t.id = p.target_id WHERE p.id IN (SELECT MAX(q.id) FROM probes q "
        "GROUP BY q.target_id) ORDER BY p.started_at DESC"
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
        "JOIN targets t ON t.id = p.target_id GROUP BY t.platform, m.label "
        "ORDER BY m.label DESC, t.platform"
    ).bindparams(*params)
    with engine.connect() as conn:
        data = conn.execute(sql).mappings().all()
    return pd.DataFrame(data, columns=["platform", "month", "probes", "requests", "most"])


def build_site(engine: Engine, out: Path, ctx: SiteContext) -> Path:
    """Render every page into a fresh folder, then swap it in place of `out`."""
    data = StatsInput.load(engine)
    levels = {
        lvl: monthly_stats(engine, lvl, data)
        for lvl in ("department", "department_procedure", "procedure", "national", "target")
    }
    deps = levels["department"]
    months = sorted(set(deps["month"])) if len(deps) else []
    complete = last_complete_month(ctx.built_at)
    headline_month = max([m for m in months if m <= complete], default=None) or (
        months[-1] if months else None
    )
    names = {code: d.name for code, d in reference_departments().items()}
    env = environment()
    latest = _latest_probes(engine)
    with engine.connect() as conn:
        last_probe = conn.execute(select(func.max(Probe.started_at))).scalar()
        total = conn.execute(text("SELECT COUNT(*) FROM probes")).scalar() or 0
    targets = data.targets
    episodes = data.episodes.copy()
    if len(episodes):
        episodes = episodes.join(
            targets.set_index("target_id")[["department", "department_name", "procedure_name"]],
            on="target_id",
        )

    common = dict(
        simulated=ctx.simulated,
        built_at=ctx.built_at,
        version=__version__,
        map_credit=CREDIT,
        last_probe=last_probe,
        total_probes=total,
    )
    pages: dict[str, str] = {}

    def page(path: str, template: str, **values: object) -> None:
        root = "../" * path.count("/")
        pages[path] = env.get_template(template).render(root=root, **common, **values)

    # Home: map and ranking for the headline month.
    month_rows = deps[deps["month"] == headline_month] if headline_month else deps
    map_values = {
        r["department"]: MapValue(
            None if r["valid"] == 0 else float(r["share_no_way"]),
            percent(r["share_no_way"]) if r["valid"] else "aucune mesure valide",
            f"departements/{r['department']}.html",
        )
        for r in _rows(month_rows)
    }
    national = levels["national"]
    nat_row = national[national["month"] == headline_month] if headline_month else national
    page(
        "index.html",
        "site/index.html",
        headline_month=headline_month,
        national=_rows(nat_row)[0] if len(nat_row) else None,
        map_svg=render_map(
            map_values,
            names,
            "Carte : part des consultations sans "
            f"possibilité de rendez-vous, {month_fr(headline_month)}",
        ),
        legend=legend(),
        ranking=_rows(month_rows.sort_values("share_no_way", ascending=False, na_position="last")),
        episodes_open=_rows(
            episodes[episodes["ongoing"]].sort_values("duration_days", ascending=False).head(10)
        )
        if len(episodes)
        else [],
    )

    # Departments.
    all_deps = []
    for code, dep in reference_departments().items():
        rows = deps[deps["department"] == code]
        last = _rows(rows.sort_values("month").tail(1))
        all_deps.append(
            {
                "code": code,
                "name": dep.name,
                "last": last[0] if last else None,
                "has_page": len(rows) > 0,
            }
        )
    page("departements/index.html", "site/departements.html", departments=all_deps)
    evidence_files: dict[str, str] = {}
    for code in sorted(set(deps["department"])):
        rows = deps[deps["department"] == code].sort_values("month")
        trend = rows.tail(TREND_MONTHS)
        procs = levels["department_procedure"]
        procs = procs[procs["department"] == code]
        shots = []
        for r in _rows(latest[latest["department"] == code]):
            sha = r["screenshot_sha256"] if isinstance(r["screenshot_sha256"], str) else None
            r["page_sha256"] = r["page_sha256"] if isinstance(r["page_sha256"], str) else None
            if sha and ctx.evidence is not None and ctx.evidence.path_for(sha, "png").exists():
                evidence_files[f"preuves/{sha}.png"] = sha
            shots.append(
                {
                    **r,
                    "image": f"preuves/{sha}.png"
                    if sha and ctx.evidence and ctx.evidence.path_for(sha, "png").exists()
                    else None,
                }
            )
        page(
            f"departements/{code}.html",
            "site/departement.html",
            code=code,
            name=names.get(code, code),
            months=_rows(rows.iloc[::-1]),
            chart=share_trend(
                [
                    (r["month"], r["share_no_way"], r["share_low"], r["share_high"])
                    for r in _rows(trend)
                ],
                f"Part des consultations sans possibilité de rendez-vous, "
                f"{names.get(code, code)}, par mois",
            ),
            trend=_rows(trend.iloc[::-1]),
            procedures=_rows(procs.sort_values(["month", "procedure"], ascending=[False, True])),
            episodes=_rows(
                episodes[episodes["department"] == code]
                .sort_values("start", ascending=False)
                .head(20)
            )
            if len(episodes)
            else [],
            latest=shots,
        )

    # Procedures nationally.
    procs = levels["procedure"]
    for slug in sorted(set(procs["procedure"])):
        rows = procs[procs["procedure"] == slug].sort_values("month")
        page(
            f"procedures/{slug}.html",
            "site/procedure.html",
            slug=slug,
            name=rows["procedure_name"].iloc[0],
            months=_rows(rows.iloc[::-1]),
            chart=share_trend(
                [
                    (r["month"], r["share_no_way"], r["share_low"], r["share_high"])
                    for r in _rows(rows.tail(TREND_MONTHS))
                ],
                f"Part sans possibilité de rendez-vous, {rows['procedure_name'].iloc[0]}, par mois",
            ),
        )
    proc_list = sorted({(r["procedure"], r["procedure_name"]) for r in _rows(procs)})

    # Monthly archives.
    for month in months:
        page(
            f"archives/{month}.html",
            "site/archive.html",
            month=month,
            rows=_rows(deps[deps["month"] == month].sort_values("department")),
            national=_rows(national[national["month"] == month]),
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
        procedures=proc_list,
    )

    feed = env.get_template("site/flux.xml").render(
        built_at=ctx.built_at,
        national=_rows(national.sort_values("month", ascending=False)),
        episodes=_rows(episodes.sort_values("start", ascending=False).head(50))
        if len(episodes)
        else [],
        simulated=ctx.simulated,
    )

    def write(folder: Path) -> None:
        for rel, content in pages.items():
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
        (folder / "flux.xml").write_text(feed, encoding="utf-8")
        shutil.copy(TEMPLATES / "site" / "style.css", folder / "style.css")
        for rel, sha in evidence_files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            assert ctx.evidence is not None
            shutil.copy(ctx.evidence.path_for(sha, "png"), folder / rel)
        files = export_all(engine, folder / "donnees", data=data, levels=levels)
        (folder / "donnees" / "index.html").write_text(
            env.get_template("site/donnees.html").render(root="../", files=files, **common),
            encoding="utf-8",
        )

    publish_dir(out, write)
    return Path(out) / "index.html"


def _adapter_versions(engine: Engine) -> list[dict[str, object]]:
    sql = text(
        "SELECT adapter, adapter_version, COUNT(*) AS probes, MIN(started_at) AS first, "
        "MAX(started_at) AS last FROM probes GROUP BY adapter, adapter_version "
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
