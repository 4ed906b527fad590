"""Open-data exports: CSV in UTF-8, comma-separated, department codes as strings."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from observatoire.db.models import TargetRow
from observatoire.stats import monthly_stats


@dataclass(frozen=True)
class ExportedFile:
    path: Path
    rows: int
    sha256: str


def _write_csv(frame: pd.DataFrame, path: Path) -> ExportedFile:
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_csv(
        tmp, index=False, encoding="utf-8", float_format="%.4f", date_format="%Y-%m-%dT%H:%M:%S%z"
    )
    tmp.replace(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return ExportedFile(path, len(frame), digest)


def export_all(engine: Engine, out: Path) -> list[ExportedFile]:
    out.mkdir(parents=True, exist_ok=True)
    files = [
        _write_csv(monthly_stats(engine, "department"), out / "stats_mensuelles_departements.csv"),
        _write_csv(
            monthly_stats(engine, "department_procedure"),
            out / "stats_mensuelles_departements_procedures.csv",
        ),
        _write_csv(targets_frame(engine), out / "cibles.csv"),
    ]
    lines = [f"{f.sha256}  {f.path.name}" for f in files]
    (out / "SHA256SUMS").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return files


def targets_frame(engine: Engine) -> pd.DataFrame:
    with Session(engine) as session:
        rows = session.scalars(select(TargetRow).order_by(TargetRow.id)).all()
        return pd.DataFrame(
            [
                {
                    "target": r.id,
                    "department": r.department,
                    "department_name": r.department_name,
                    "procedure": r.procedure,
                    "procedure_name": r.procedure_name,
                    "label": r.label,
                    "platform": r.platform,
                    "url": r.url,
                    "enabled": r.enabled,
                    "interval_minutes": r.interval_minutes,
                }
                for r in rows
            ],
            columns=[
                "target",
                "department",
                "department_name",
                "procedure",
                "procedure_name",
                "label",
                "platform",
                "url",
                "enabled",
                "interval_minutes",
            ],
        )
