"""Drift, for `observatoire unrecognized`: what the operator reads when a platform changed.

`record.fingerprint.drift_report` groups the `unrecognized` and `blocked` probes by the
shape of their saved page; this module asks it for a period and an adapter and turns the
groups into what the command prints: one JSON document, or a table with one example
page per shape for `observatoire classify`. The command line only parses the options
and prints, so a test or a monitor can build the same report without a shell.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date

from rich.table import Table
from sqlalchemy import Engine

from observatoire.clock import paris_midnight
from observatoire.record.evidence import EvidenceStore
from observatoire.record.fingerprint import ShapeGroup, drift_report, paris_short

#: Outcome/detail pairs shown per shape in the table; the rest are counted.
MIX_SHOWN = 4
EXAMPLES_HEADING = "examples (latest page of each shape; `observatoire classify` reads them):"


@dataclass
class DriftReport:
    """The shapes of the anomalous pages of a period (newest shapes first)."""

    groups: list[ShapeGroup]
    #: First day of the period (Europe/Paris), None for every probe.
    since: date | None = None

    def as_json(self) -> str:
        """`unrecognized --json`: one object per shape (see ShapeGroup.as_dict)."""
        return json.dumps([g.as_dict() for g in self.groups], ensure_ascii=False, indent=2)

    def empty_message(self) -> str:
        """What the command says when nothing is anomalous in the period."""
        period = f" since {self.since.isoformat()}" if self.since else ""
        return f"no unrecognized or blocked probe{period}"

    def table(self) -> Table:
        """One row per shape: probes, targets, first and last seen (Paris), the mix."""
        table = Table(title="unrecognized and blocked probes, by page shape")
        table.add_column("page shape", no_wrap=True)
        table.add_column("probes", justify="right")
        table.add_column("targets", justify="right")
        table.add_column("first/last seen, Paris", no_wrap=True)
        table.add_column("outcome/detail mix", overflow="fold")
        for g in self.groups:
            mix = "\n".join(f"{k} {v}" for k, v in g.mix.most_common(MIX_SHOWN))
            if len(g.mix) > MIX_SHOWN:
                mix += f"\n… {len(g.mix) - MIX_SHOWN} more"
            shape = g.shape if g.kind == "page" else f"no page:\n{g.shape}"
            table.add_row(
                shape,
                str(g.probes),
                str(len(g.targets)),
                f"{paris_short(g.first_seen)}\n{paris_short(g.last_seen)}",
                mix,
            )
        return table

    def examples(self) -> list[str]:
        """One line per shape with a saved page: its latest target and page file."""
        return [
            f"  {g.shape}: {g.example_target} {g.example_path}"
            for g in self.groups
            if g.example_path is not None
        ]


def unrecognized_report(
    engine: Engine, evidence: EvidenceStore, since: date | None, adapter: str | None
) -> DriftReport:
    """The drift report from the first Paris day `since` (all probes when None), for one
    adapter or all of them."""
    start = paris_midnight(since) if since else None
    return DriftReport(drift_report(engine, evidence, start, adapter), since)
