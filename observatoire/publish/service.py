"""The `publish` job as a library: rebuild the open data, then the site that publishes a
copy of it, once or on a cadence, with the evidence retention once a day when it runs
for long. The command line only parses options, installs the signal handlers and prints
what this module reports, so a scheduler or a test can run the same job without a shell.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from observatoire.db.models import TargetRow
from observatoire.publish.export import check_export_target, export_all
from observatoire.publish.site import build_site, context_from_settings
from observatoire.publish.swap import PublishRefused, check_target
from observatoire.record.evidence import EvidenceStore
from observatoire.record.retention import prune_evidence
from observatoire.robot.politeness import is_loopback
from observatoire.settings import Settings


def simulated_targets(engine: Engine) -> bool:
    """True when the database's targets live on loopback (the simulator): the site then
    carries the "données simulées" banner, so simulated figures are never quoted as real."""
    with Session(engine) as session:
        urls = session.scalars(select(TargetRow.url)).all()
    return any(is_loopback(urlsplit(u).netloc) for u in urls)


def check_folders(settings: Settings) -> None:
    """Refuse (PublishRefused) a site or export folder observatoire did not create, before
    anything is written, so a refused publication leaves no file behind."""
    check_target(settings.site_dir)
    check_export_target(settings.export_dir)


@dataclass
class Publication:
    """One publication: the open-data files written and the published site's index."""

    files: list[Path]
    index: Path


def publish_once(engine: Engine, settings: Settings) -> Publication:
    """The open data first, then the site that publishes a copy of it. The folders are
    checked again first: they may have changed since the last run of a long job."""
    check_folders(settings)
    simulated = simulated_targets(engine)
    files = [f.path for f in export_all(engine, settings.export_dir, simulated=simulated)]
    index = build_site(
        engine, settings.site_dir, context_from_settings(simulated), open_data=settings.export_dir
    )
    return Publication(files, index)


def publish_loop(
    engine: Engine,
    settings: Settings,
    every: float,
    stop: threading.Event,
    *,
    say: Callable[[str], None],
    warn: Callable[[str], None],
) -> None:
    """Publish once (`every` = 0) or every `every` minutes until `stop` is set. A failed
    build of a long-running job is reported through `warn` and retried at the next turn,
    keeping the previous site online; a folder that is not ours (PublishRefused) always
    stops the job, since retrying cannot help. With a cadence, the evidence retention
    runs once a day too."""
    pruned_on: date | None = None
    while True:
        started = time.monotonic()
        try:
            if every and pruned_on != date.today():
                report = prune_evidence(
                    engine,
                    EvidenceStore(settings.evidence_dir),
                    datetime.now(UTC),
                    settings.evidence_retention_days,
                )
                pruned_on = date.today()
                say(f"evidence retention: {report.files_deleted} files deleted")
            done = publish_once(engine, settings)
        except PublishRefused:
            raise
        except Exception as exc:  # noqa: BLE001 - a long-running job reports and retries
            if not every:
                raise
            warn(f"publication failed (previous site kept): {exc!r}")
        else:
            say(
                f"published in {time.monotonic() - started:.1f} s: {len(done.files)} open-data "
                f"files in {settings.export_dir}, site {done.index}"
            )
        if not every or stop.wait(every * 60):
            return
