"""The public site: static French pages rendered from `templates/`, published atomically.

No request to any other host, no JavaScript needed, every scraped string escaped
(Jinja2 autoescape).
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from observatoire import __version__
from observatoire.clock import PARIS
from observatoire.db.models import Probe
from observatoire.publish import publish_dir
from observatoire.stats import monthly_stats

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


def percent(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    text = f"{100 * value:.{digits}f}".replace(".", ",")
    return f"{text}\u202f%"


MONTHS_FR = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)


def month_fr(label: str | None) -> str:
    """'2026-03' -> 'mars 2026'."""
    if not label:
        return "—"
    year, month = label.split("-")
    return f"{MONTHS_FR[int(month) - 1]} {year}"


def paris_time(value: datetime | None) -> str:
    if value is None:
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
    env.filters["percent"] = percent
    env.filters["paris_time"] = paris_time
    env.filters["month_fr"] = month_fr
    return env


@dataclass(frozen=True)
class SiteContext:
    simulated: bool
    built_at: datetime


def _rows(frame: pd.DataFrame) -> list[dict[str, object]]:
    return frame.to_dict(orient="records")


def build_site(engine: Engine, out: Path, ctx: SiteContext) -> Path:
    """Render every page into a fresh folder, then swap it in place of `out`."""
    by_department = monthly_stats(engine, "department")
    national = monthly_stats(engine, "national")
    with Session(engine) as session:
        last_probe = session.scalar(select(func.max(Probe.started_at)))
        total = session.scalar(select(func.count(Probe.id))) or 0
    months = sorted(by_department["month"].unique(), reverse=True) if len(by_department) else []
    latest = months[0] if months else None
    latest_rows = by_department[by_department["month"] == latest] if latest else by_department
    latest_rows = latest_rows.sort_values("share_no_way", ascending=False, na_position="last")
    env = environment()
    page = env.get_template("site/index.html").render(
        simulated=ctx.simulated,
        built_at=ctx.built_at,
        last_probe=last_probe,
        total_probes=total,
        latest_month=latest,
        latest_rows=_rows(latest_rows),
        national=_rows(national.sort_values("month", ascending=False)),
        history=_rows(by_department.sort_values(["department", "month"], ascending=[True, False])),
        version=__version__,
    )

    def write(folder: Path) -> None:
        (folder / "index.html").write_text(page, encoding="utf-8")
        shutil.copy(TEMPLATES / "site" / "style.css", folder / "style.css")

    publish_dir(out, write)
    return Path(out) / "index.html"
