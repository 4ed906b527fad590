"""The `observatoire` command line. Every command's help says what it is for."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from observatoire import __version__
from observatoire.config import Config, ConfigError, load_config
from observatoire.db import DatabaseNotReady, make_engine, require_migrated
from observatoire.publish.swap import PublishRefused
from observatoire.record.store import StorageError
from observatoire.settings import Settings, SettingsError
from observatoire.terminal import console

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from observatoire.config import Target
    from observatoire.outcomes import ProbeResult
    from observatoire.robot.runtime import Runtime

app = typer.Typer(
    help=(
        "observatoire: an observatory of access to French prefectures' appointment "
        "booking. It probes booking pages politely, records every outcome with evidence, "
        "and publishes statistics, CSV and a static site.\n\n"
        "Start with `observatoire demo` (everything on the bundled simulator)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
targets_app = typer.Typer(help="Check and list the configured targets.", no_args_is_help=True)
site_app = typer.Typer(help="The public static site.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(targets_app, name="targets")
app.add_typer(site_app, name="site")
# Captures from people's own browsers (issue 21): `contributor …`, `captures review`.
from observatoire.captures.cli import register as _register_captures  # noqa: E402

_register_captures(app)

out = console()
err = console(stderr=True, highlight=False)
P = ParamSpec("P")
R = TypeVar("R")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Targets file (default: $OBSERVATOIRE_CONFIG or config/prefectures.yaml).",
        show_default=False,
    ),
]


def fail(message: str, code: int = 2, *, french: bool = False) -> typer.Exit:
    """Print `error: message` as plain text (no markup, no emoji: messages hold file
    names, brackets and `file:line:`) and return the exit to raise. `french` for the
    dossier command, which a lawyer or a clerk reads: `erreur : message`."""
    label = "erreur :" if french else "error:"
    err.print(f"{label} {message}", highlight=False, markup=False, emoji=False)
    return typer.Exit(code)


def friendly_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Known problems become a clear message and exit code 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            for issue in exc.issues:
                err.print(str(issue), highlight=False, markup=False)
            n = len(exc.issues)
            raise fail(f"{n} problem{'s' if n > 1 else ''} in the configuration") from None
        except DatabaseNotReady as exc:
            raise fail(str(exc)) from None
        except SettingsError as exc:
            raise fail(f"bad setting: {exc}") from None
        except (StorageError, PublishRefused) as exc:
            raise fail(str(exc)) from None

    return wrapper


def settings() -> Settings:
    return Settings.from_env()


def _config(path: Path | None, simulator_url: str | None = None) -> Config:
    s = settings()
    return load_config(
        path or s.targets_file, simulator_url=simulator_url or s.simulator_url or None
    )


#: Stands for the simulator's address in commands that read a targets file without
#: sending any request (check, list, status): a `{simulator}` file needs no running
#: simulator for those. Port 0 on loopback: nothing can ever answer there.
OFFLINE_SIMULATOR = "http://127.0.0.1:0"


def _config_offline(path: Path | None, simulator_url: str | None = None) -> Config:
    """The targets file for commands that send no request: `{simulator}` URLs are
    accepted without a running simulator (shown as `{simulator}`)."""
    return _config(path, simulator_url or settings().simulator_url or OFFLINE_SIMULATOR)


def _shown_url(url: str) -> str:
    return url.replace(OFFLINE_SIMULATOR, "{simulator}", 1)


def _engine(migrated: bool = True) -> Engine:
    engine = make_engine(settings().database_url)
    if migrated:
        require_migrated(engine)
    return engine


def _runtime(hosts: Iterable[str]) -> Runtime:
    """The robot's runtime for a command that sends requests to `hosts`: the
    identification rule checked first (contact, >= 1 s for real hosts), then built,
    with its database required."""
    from observatoire.robot.runtime import Runtime

    return Runtime.for_hosts(settings(), hosts, database="required")


def _database(runtime: Runtime) -> Engine:
    """The engine of a runtime built by `_runtime` (database required): such a runtime
    always has one, this says so to the types."""
    if runtime.engine is None:
        raise DatabaseNotReady("this command needs the database: run `observatoire db upgrade`")
    return runtime.engine


@app.command()
def version() -> None:
    """Print the robot's version and User-Agent."""
    out.print(f"observatoire {__version__}")
    out.print(f"User-Agent: {settings().user_agent}", highlight=False)


# -- db -------------------------------------------------------------------------------
@db_app.command("upgrade")
@friendly_errors
def db_upgrade(
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Create or migrate the database ($OBSERVATOIRE_DATABASE_URL) to the latest schema."""
    from observatoire.db.migrate import MigrationBusy, upgrade

    url = settings().database_url
    try:
        upgrade(url, revision)
    except MigrationBusy as exc:
        raise fail(str(exc)) from None
    except Exception as exc:
        # The driver's message, without the SQL statement SQLAlchemy appends.
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise fail(f"migration failed on {url}: {reason}") from None
    out.print(f"database at revision {revision}: {make_engine(url).url!r}", highlight=False)


# -- targets --------------------------------------------------------------------------
@targets_app.command("check")
@friendly_errors
def targets_check(
    config: ConfigOption = None,
    live: Annotated[
        str | None,
        typer.Option(
            "--live",
            metavar="ID",
            help="Also fetch this target's first page ONCE (politely, with the robot's "
            "User-Agent and contact) and say which platform answers and whether the link "
            "is retired. Stores nothing, posts nothing.",
        ),
    ] = None,
    simulator_url: Annotated[
        str | None,
        typer.Option(help="Base URL of a running simulator, for --live on a {simulator} file."),
    ] = None,
) -> None:
    """Validate a targets file. Every problem is listed with file:line: field; exit 2.
    With --live ID, one look at that target's page; exit 1 when it needs attention."""
    cfg = _config_offline(config, simulator_url)
    enabled = len(cfg.enabled_targets)
    out.print(
        f"{cfg.path}: OK — {len(cfg.departments)} departments, {len(cfg.targets)} targets "
        f"({enabled} enabled)",
        highlight=False,
    )
    missing = cfg.missing_departments()
    if missing:
        shown = ", ".join(missing) if len(missing) <= 10 else f"{len(missing)} of 101"
        out.print(f"note: departments not listed: {shown}", highlight=False)
    offline = [t for t in cfg.targets if t.url.startswith(OFFLINE_SIMULATOR)]
    if offline:
        out.print(
            f"note: {len(offline)} target(s) use {{simulator}}: they are probed only against "
            "the simulator (`observatoire demo`, or --simulator-url)",
            highlight=False,
        )
    if live is not None:
        _check_live(cfg, live)


def _check_live(cfg: Config, target_id: str) -> None:
    """`targets check --live ID`: one polite GET of the target's URL, then the verdict."""
    from observatoire.robot.livecheck import check_live

    target = next((t for t in cfg.targets if t.id == target_id), None)
    if target is None:
        raise fail(f"unknown target id {target_id!r} (see `targets list`)")
    if target.url.startswith(OFFLINE_SIMULATOR):
        raise fail(f"{target_id} uses {{simulator}}: pass --simulator-url of a running simulator")
    check = check_live(settings(), cfg.targets, target)
    for line in check.lines():
        out.print(line, highlight=False, markup=False)
    if not check.fine:
        raise typer.Exit(1)


@targets_app.command("list")
@friendly_errors
def targets_list(
    config: ConfigOption = None,
    enabled_only: Annotated[bool, typer.Option("--enabled", help="Only enabled targets.")] = False,
) -> None:
    """List targets: id, department, platform, enabled, URL."""
    cfg = _config_offline(config)
    table = Table("id", "dept", "platform", "enabled", "url")
    for t in cfg.targets:
        if enabled_only and not t.enabled:
            continue
        table.add_row(
            t.id, t.department, t.platform, "yes" if t.enabled else "no", _shown_url(t.url)
        )
    out.print(table)


# -- probe ----------------------------------------------------------------------------
@app.command()
@friendly_errors
def probe(
    target_ids: Annotated[list[str] | None, typer.Argument(help="Target ids to probe.")] = None,
    all_targets: Annotated[bool, typer.Option("--all", help="Probe every enabled target.")] = False,
    config: ConfigOption = None,
    simulator_url: Annotated[
        str | None,
        typer.Option(help="Base URL of a running simulator, for files using {simulator}."),
    ] = None,
) -> None:
    """Probe targets once (cron mode) and store every outcome with its evidence.

    Requests go one at a time per host, with $OBSERVATOIRE_MIN_DELAY_SECONDS between
    them. Probing a real (non-loopback) host needs $OBSERVATOIRE_CONTACT_URL: the robot
    always says who runs it.
    """
    from observatoire.robot.cron import probe_once

    if not all_targets and not target_ids:
        raise fail("name target ids, or pass --all for every enabled target")
    cfg = _config(config, simulator_url)
    if all_targets:
        chosen = cfg.targets
    else:
        known = {t.id: t for t in cfg.targets}
        unknown = [i for i in target_ids or [] if i not in known]
        if unknown:
            raise fail(f"unknown target id(s): {', '.join(unknown)} (see `targets list`)")
        chosen = [known[i] for i in target_ids or []]
    run = probe_once(
        settings(),
        cfg.targets,
        chosen,
        progress=_progress_bar,
        warn=lambda line: err.print(line, highlight=False),
        each_skipped=not all_targets,
    )
    out.print(run.summary(), highlight=False)
    busy = run.busy()
    if busy:
        out.print(busy, highlight=False)


@contextlib.contextmanager
def _progress_bar(total: int) -> Iterator[Callable[[Target, ProbeResult], None]]:
    """A progress bar on stderr for `total` probes; yields what advances it."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task("probes", total=total)

        def advance(target: Target, result: ProbeResult) -> None:
            progress.update(task, advance=1, description=f"{target.id}: {result.outcome}")

        yield advance


def _require_adapter(name: str) -> None:
    """An `--adapter` option must name a registered adapter (exit 2 with the known ones)."""
    from observatoire.adapters import registry

    if name not in registry():
        raise fail(f"unknown adapter {name!r}; known: {', '.join(sorted(registry()))}")


@app.command()
def classify(
    file: Annotated[
        Path,
        typer.Argument(help="A saved page (HTML, optionally .gz).", exists=True, dir_okay=False),
    ],
    adapter: Annotated[str, typer.Option("--adapter", "-a", help="Adapter name.")],
    url: Annotated[str | None, typer.Option(help="The URL the page came from.")] = None,
) -> None:
    """Print, as JSON, the outcome an adapter gives a saved page (debugging, contracts)."""
    import gzip
    import zlib

    from observatoire.adapters import get_adapter

    _require_adapter(adapter)
    data = file.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as exc:
            raise fail(f"{file}: not a readable gzip file ({exc})") from None
    result = get_adapter(adapter).classify(data, url)
    typer.echo(json.dumps(result.summary(), ensure_ascii=False, indent=2))


@app.command()
@friendly_errors
def unrecognized(
    since: Annotated[
        str | None, typer.Option("--since", help="First day (Europe/Paris), YYYY-MM-DD.")
    ] = None,
    adapter: Annotated[str | None, typer.Option("--adapter", "-a", help="Adapter name.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Drift: `unrecognized` and `blocked` probes grouped by the shape of their saved page
    (tag/id/class skeleton, not the text), newest shapes first, with first and last seen
    (Paris), targets, the outcome/detail mix and one example page for `classify`. Probes
    without a saved page are grouped by their detail."""
    from observatoire.drift import EXAMPLES_HEADING, unrecognized_report
    from observatoire.record.evidence import EvidenceStore

    day = _parse_day(since, "--since")
    if adapter is not None:
        _require_adapter(adapter)
    report = unrecognized_report(_engine(), EvidenceStore(settings().evidence_dir), day, adapter)
    if as_json:
        typer.echo(report.as_json())
    elif not report.groups:
        out.print(report.empty_message())
    else:
        out.print(report.table())
        examples = report.examples()
        if examples:
            out.print(EXAMPLES_HEADING)
            for line in examples:
                out.print(line, highlight=False, markup=False)


@app.command("evidence-png")
@friendly_errors
def evidence_png(
    probe_id: Annotated[int, typer.Argument(help="The probe's id in the database.")],
    out_file: Annotated[Path, typer.Option("--out", help="PNG file to write.")],
) -> None:
    """Render a probe's saved HTML to a stamped PNG (JavaScript and network off)."""
    from sqlalchemy.orm import Session

    from observatoire.db.models import Probe
    from observatoire.record.evidence_render import render_png
    from observatoire.robot.browser import BrowserUnavailable

    runtime = _runtime([])  # renders a saved page offline: no host is contacted
    with Session(_database(runtime)) as session:
        probe = session.get(Probe, probe_id)
        if probe is None or probe.page_sha256 is None:
            raise fail(f"probe {probe_id} has no saved page")
        url, when, sha = probe.final_url or "", probe.started_at, probe.page_sha256
    page = runtime.evidence.get(sha, "html")

    async def go() -> bytes:
        pool = runtime.browser()
        try:
            return await render_png(pool, page, url, when)
        finally:
            await pool.close()

    try:
        out_file.write_bytes(asyncio.run(go()))
    except BrowserUnavailable as exc:
        raise fail(str(exc)) from None
    out.print(f"{out_file} (page sha256 {sha})", highlight=False)


@app.command("prune-evidence")
@friendly_errors
def prune_evidence_command(
    days: Annotated[
        int | None,
        typer.Option(
            min=1, help="Full-retention window (default: $OBSERVATOIRE_EVIDENCE_RETENTION_DAYS)."
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count, delete nothing.")] = False,
) -> None:
    """Apply the evidence retention: every probe's evidence is kept for the window;
    beyond it only state changes, anomalies (unrecognized, blocked) and each target's
    first probe of each day keep theirs. Probe rows are never deleted."""
    from observatoire.record.evidence import EvidenceStore
    from observatoire.record.retention import prune_evidence

    s = settings()
    window = days or s.evidence_retention_days
    report = prune_evidence(
        _engine(), EvidenceStore(s.evidence_dir), datetime.now(UTC), window, dry_run=dry_run
    )
    verb = "would free" if dry_run else "freed"
    out.print(
        f"{report.examined} probes examined; beyond {window} days {report.kept_old} keep their "
        f"evidence, {report.pruned_probes} lose it; {report.files_deleted} files {verb} "
        f"({report.bytes_freed / 1e6:.1f} MB)",
        highlight=False,
    )


# -- stats, export, site --------------------------------------------------------------
@app.command()
@friendly_errors
def stats(
    level: Annotated[
        str,
        typer.Option(
            help="target, department_procedure, department, procedure or national.",
        ),
    ] = "department",
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild",
            help="First recompute the pre-aggregated tables (per target and day, lead "
            "times, episodes) from the raw probes: after a restore or a bulk import.",
        ),
    ] = False,
) -> None:
    """Print monthly statistics (share of valid probes with no way to book)."""
    from observatoire.publish.formatting import percent
    from observatoire.stats import LEVELS, monthly_stats

    if level not in LEVELS:
        raise fail(f"unknown level {level!r}; choose from {', '.join(LEVELS)}")
    engine = _engine()
    if rebuild:
        from observatoire.record.rollups import rebuild as rebuild_rollups

        counts = rebuild_rollups(engine)
        out.print(
            "rollups rebuilt from the probes: "
            + ", ".join(f"{name} {rows} rows" for name, rows in counts.items()),
            highlight=False,
        )
    frame = monthly_stats(engine, level)
    keys = [k for k in LEVELS[level] if not k.endswith("_name")]
    table = Table(*keys, "month", "probes", "valid", "no way", "share", "95 % CI")
    for row in frame.to_dict(orient="records"):
        table.add_row(
            *(str(row[k]) for k in keys),
            row["month"],
            str(row["probes"]),
            str(row["valid"]),
            str(row["no_way"]),
            percent(row["share_no_way"]),
            f"{percent(row['share_low'])}–{percent(row['share_high'])}",
        )
    out.print(table)


def _parse_day(value: str | None, option: str, *, french: bool = False) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        if french:
            message = f"{option} {value!r}: date illisible ; exemple : 2026-03-01"
        else:
            message = f"{option} expects a date like 2026-03-01, not {value!r}"
        raise fail(message, french=french) from None


@app.command()
@friendly_errors
def export(
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Output folder (default: $OBSERVATOIRE_DATA_DIR/export)."),
    ] = None,
    since: Annotated[
        str | None, typer.Option("--from", help="First day (Europe/Paris), YYYY-MM-DD.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--to", help="Last day included, YYYY-MM-DD.")
    ] = None,
    department: Annotated[
        str | None, typer.Option(help="Only this department code, e.g. 93 or 2A.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
) -> None:
    """Write the open data: raw probes, monthly statistics (per target, department ×
    procedure, department, nation), episodes without any slot and targets, with a
    Frictionless datapackage.json (types, descriptions, licence, sha256, row counts)."""
    from observatoire.publish.export import ExportFilter, export_all

    if fmt not in ("csv", "parquet"):
        raise fail("--format must be csv or parquet")
    if department is not None:
        from observatoire.config import reference_departments

        known = reference_departments()
        if department not in known:
            raise fail(
                f"--department: unknown department code {department!r}; known codes: "
                + ", ".join(known)
            )
    flt = ExportFilter(_parse_day(since, "--from"), _parse_day(until, "--to"), department)
    if flt.since and flt.until and flt.until < flt.since:
        raise fail("--to is before --from")
    target = out_dir or settings().export_dir
    for f in export_all(_engine(), target, fmt, flt):
        out.print(f"{f.path}  ({f.rows} rows)", highlight=False)
    out.print(f"{target / 'datapackage.json'}", highlight=False)


@site_app.command("build")
@friendly_errors
def site_build(
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Site folder (default: $OBSERVATOIRE_DATA_DIR/site)."),
    ] = None,
    simulated: Annotated[
        bool | None,
        typer.Option(
            "--simulated/--real",
            help="Force the 'données simulées' banner on or off (default: detected).",
        ),
    ] = None,
) -> None:
    """Render the static French site and publish it atomically into the folder. The
    folder must be new, empty or a site published here before (it holds a
    `.observatoire-site` file): any other folder is refused, never replaced."""
    from observatoire.publish.service import simulated_targets
    from observatoire.publish.site import build_site, context_from_settings
    from observatoire.publish.swap import check_target

    target = out_dir or settings().site_dir
    check_target(target)  # before any work: a folder that is not ours is refused
    engine = _engine()
    if simulated is None:
        simulated = simulated_targets(engine)
    # The open data is not recomputed here: the last `export` (if any) is published.
    export_dir = settings().export_dir
    index = build_site(
        engine,
        target,
        context_from_settings(simulated),
        open_data=export_dir if (export_dir / "datapackage.json").exists() else None,
    )
    out.print(f"site published: {index}", highlight=False)


@app.command()
@friendly_errors
def publish(
    every: Annotated[
        float,
        typer.Option(
            min=0,
            help="Minutes between two publications, running until SIGTERM/SIGINT "
            "(docker compose); 0 = publish once and exit (cron, systemd timer).",
        ),
    ] = 0,
) -> None:
    """Rebuild what the public sees, from the database: the monthly statistics, the open
    data ($OBSERVATOIRE_DATA_DIR/export: CSV + datapackage.json) and the site
    ($OBSERVATOIRE_DATA_DIR/site, published atomically). A failed build keeps the
    previous site online. With --every, the evidence retention (`prune-evidence`) also
    runs once a day."""
    import threading

    from observatoire.publish.service import check_folders, publish_loop

    s = settings()
    # Both folders are checked before anything is written: a refused publication (a
    # folder observatoire did not create, exit 2) leaves no file behind.
    check_folders(s)
    engine = _engine()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def say(line: str) -> None:
        out.print(line, highlight=False)
        out.file.flush()

    def warn(line: str) -> None:
        err.print(line, highlight=False)

    publish_loop(engine, s, every, stop, say=say, warn=warn)


@app.command()
@friendly_errors
def dossier(
    target: Annotated[str | None, typer.Option("--target", help="Target id.")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Folder to write.")] = None,
    since: Annotated[str | None, typer.Option("--from", help="First day, YYYY-MM-DD.")] = None,
    until: Annotated[str | None, typer.Option("--to", help="Last day, YYYY-MM-DD.")] = None,
    verify_dir: Annotated[
        Path | None,
        typer.Option("--verify", help="Re-check the hashes of an existing dossier instead."),
    ] = None,
    contributor: Annotated[
        str | None,
        typer.Option(
            "--contributor",
            help="Applicant's dossier: their own captures (id or pseudonym) as the main part.",
        ),
    ] = None,
    annex: Annotated[
        Path | None,
        typer.Option("--annex", help="Folder of the applicant's own captures/PDFs to join."),
    ] = None,
    piece: Annotated[str, typer.Option("--piece", help="Pièce number printed on every page.")] = "",
    opening_hours: Annotated[
        str | None,
        typer.Option(
            "--opening-hours",
            help='Prefecture opening hours, "lun-ven 09:00-12:00, 13:30-16:00" '
            "(default: the target's opening_hours in the targets file).",
        ),
    ] = None,
) -> None:
    """Evidence dossier for a référé "mesures utiles": every attempt with its evidence and
    hashes, HTML and PDF, and a manifest; or, with --verify DIR, re-check one."""
    from observatoire.publish.dossier import DossierError
    from observatoire.publish.dossier_service import check_dossier, establish_dossier

    if verify_dir is not None:
        try:
            verification = check_dossier(verify_dir)
        except DossierError as exc:
            raise fail(str(exc), french=True) from None
        for problem in verification.problems:
            err.print(problem, highlight=False, markup=False)
        if not verification.intact:
            raise fail(verification.verdict(), code=1, french=True)
        out.print(verification.verdict(), highlight=False, markup=False)
        return
    if not target or not out_dir:
        raise fail("--target et --out sont requis (ou --verify RÉPERTOIRE)", french=True)
    # The dossier sends no request (its browser renders saved pages offline): the
    # runtime gives it the database, the evidence and the robot's own User-Agent.
    runtime = _runtime([])
    try:
        established = establish_dossier(
            _database(runtime),
            runtime.evidence,
            runtime.settings,
            target,
            out_dir,
            _parse_day(since, "--from", french=True),
            _parse_day(until, "--to", french=True),
            contributor=contributor,
            annex=annex,
            piece=piece,
            opening_hours=opening_hours,
        )
    except DossierError as exc:
        raise fail(str(exc), french=True) from None
    out.print(established.summary(), highlight=False, markup=False)


@app.command()
@friendly_errors
def run(
    config: ConfigOption = None,
    shard: Annotated[
        str,
        typer.Option(
            help="This host's share of the targets, i/n "
            "(several hosts sharing one PostgreSQL database)."
        ),
    ] = "0/1",
    simulator_url: Annotated[
        str | None,
        typer.Option(help="Base URL of a running simulator, for files using {simulator}."),
    ] = None,
    log_json: Annotated[bool, typer.Option("--log-json", help="Structured logs.")] = False,
    every: Annotated[
        float | None, typer.Option(hidden=True, help="Testing: every target's cadence in seconds.")
    ] = None,
) -> None:
    """The probe daemon: every enabled target at its own cadence (default hourly, with
    jitter), until SIGTERM/SIGINT (probes in flight finish first); SIGHUP reloads the
    targets file. For cron, use `probe --all` instead."""
    from observatoire.logs import setup_logging
    from observatoire.robot.daemon import Daemon, parse_shard

    setup_logging(log_json)
    s = settings()
    try:
        shard_t = parse_shard(shard)
    except ValueError as exc:
        raise fail(str(exc)) from None
    path = str(config or s.targets_file)
    cfg = _config(config, simulator_url)  # validate now: a bad file is exit 2
    runtime = _runtime(t.host for t in cfg.enabled_targets)
    simulator = simulator_url or s.simulator_url or None
    code = asyncio.run(Daemon(runtime, path, shard_t, simulator, every).run())
    raise typer.Exit(code)


@app.command()
@friendly_errors
def status(
    config: ConfigOption = None,
    simulator_url: Annotated[str | None, typer.Option(help="For files using {simulator}.")] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            "--log-json",
            help="One JSON document (schema_version 1, see docs/operator.md) for monitors "
            "and alert scripts.",
        ),
    ] = False,
    last: Annotated[
        int,
        typer.Option(
            "--last", min=1, help="Flag an enabled target whose last N probes are all alike."
        ),
    ] = 5,
) -> None:
    """Health: per target, the last probe and the outcome mix of the last 24 h; flags a
    target not probed for 3 cadences, an enabled target whose last N probes are all
    unrecognized, all blocked or all a retired link (a finding to report), and an adapter
    whose error/unrecognized share jumped (the site probably changed). Exit 1 when
    something needs a human. Also prints how many people's captures wait for review
    (out of the figures until accepted; no exit code)."""
    from observatoire.health import check_health

    cfg = _config_offline(config, simulator_url)  # sends no request
    report = check_health(_engine(), cfg.targets, datetime.now(UTC), last_n=last)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), ensure_ascii=False, default=str))
    else:
        out.print(report.table())
        for note in report.notes:
            out.print(note, highlight=False, markup=False)
        for flag in report.flags:
            err.print(f"needs a human: {flag}", highlight=False, markup=False)
    if report.flags:
        raise typer.Exit(1)


@app.command()
@friendly_errors
def assist(
    config: ConfigOption = None,
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on. 127.0.0.1 (default) keeps the page on this machine; "
            "0.0.0.0 lets a phone on the same network in (plain HTTP: trusted networks only)."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 = any free port).")] = 8765,
    simulator_url: Annotated[str | None, typer.Option(help="For files using {simulator}.")] = None,
) -> None:
    """Human-assisted observation of captcha-gated targets (RDV-Préfecture).

    Serves a small French page for a volunteer: the targets due, most overdue first; the
    captcha as the robot's own browser shows it (and its audio); the volunteer types the
    answer, the robot reads the slot page, stores the probe (mode `assisted`, the
    volunteer's pseudonym) with its evidence, and stops there. The robot never solves a
    captcha itself. Open the address printed at start: it carries the access token.
    """
    from observatoire.assist.service import CannotServe, serve_volunteers

    cfg = _config(config, simulator_url)

    def say(line: str) -> None:
        out.print(line, highlight=False)
        out.file.flush()

    try:
        serve_volunteers(settings(), cfg.targets, host, port, say=say)
    except CannotServe as exc:
        raise fail(str(exc)) from None


# -- simulator and demo ---------------------------------------------------------------
@app.command()
def simulate(
    host: Annotated[str, typer.Option(help="Loopback address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 = any free port).")] = 8808,
    scenario: Annotated[
        Path | None,
        typer.Option(help="Scenario YAML (default: bundled).", exists=True, dir_okay=False),
    ] = None,
) -> None:
    """Serve the fake booking platforms on loopback, in real time, until Ctrl-C.

    Point `probe --config config/demo.yaml --simulator-url http://HOST:PORT` at it.
    """
    from observatoire.simulator import start_simulator
    from observatoire.simulator.scenario import load_scenario

    try:
        sim = start_simulator(load_scenario(scenario), host=host, port=port)
    except (OSError, ValueError) as exc:
        raise fail(f"cannot start the simulator: {exc}") from None
    out.print(f"simulator listening on {sim.base_url} (Ctrl-C to stop)", highlight=False)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sim.stop()


@app.command()
def demo(
    out_dir: Annotated[
        Path,
        typer.Option(
            "--out", help="Folder for the demo's database, evidence, CSV and site (recreated)."
        ),
    ] = Path("demo-output"),
    days: Annotated[int, typer.Option(min=1, max=3650, help="Simulated days.")] = 60,
    every_hours: Annotated[float, typer.Option(min=0.25, help="Hours between sweeps.")] = 6.0,
    end: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d"],
            help="End of the simulated period (UTC, rounded down to the hour; default: "
            "now). The same end gives the same probes, row for row.",
        ),
    ] = None,
) -> None:
    """Run the whole chain on the bundled simulator: probes over a simulated period, then
    statistics, CSV and the site. Nothing leaves this machine."""
    from observatoire.demo import run_demo

    report = run_demo(
        out_dir,
        days=days,
        every_hours=every_hours,
        end=end.replace(tzinfo=UTC) if end is not None else None,
        show_progress=sys.stderr.isatty() or True,
    )
    mix = ", ".join(f"{k}={v}" for k, v in sorted(report.outcomes.items()))
    out.print(
        f"\n{report.probes} probes, {report.assisted} of them with the simulated volunteer "
        f"({report.requests} requests) in {report.seconds:.1f} s: {mix}",
        highlight=False,
    )
    out.print(
        f"conduct: max {report.max_in_flight} request in flight per host, "
        f"{len(report.violations)} violation(s)",
        highlight=False,
    )
    out.print(f"database: {report.database_url}", highlight=False)
    out.print(f"CSV:      {report.export_dir}", highlight=False)
    out.print(f"site:     {report.site_index}", highlight=False)
    if report.violations:
        raise fail(
            "the simulator saw conduct violations: " + "; ".join(report.violations[:5]), code=1
        )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
