"""Operator commands for captures (registered on the main Typer app by `register`):

- `contributor add PSEUDO --role volunteer|applicant [--opt-in]` prints the personal
  token once; `contributor list`; `contributor opt-in PSEUDO [--no]`;
  `contributor delete PSEUDO --yes` removes their captures and evidence;
- `captures review` lists what waits for a person (unrecognised pages, unknown targets,
  OCR doubts, contradictions with the robot), re-running the cross-checks first.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from observatoire.assist.pseudonym import BadPseudonym
from observatoire.terminal import console

contributor_app = typer.Typer(
    help="People who send captures from their own browser (issue 21).", no_args_is_help=True
)
captures_app = typer.Typer(help="Captures from people's own browsers.", no_args_is_help=True)
out = console()


def register(app: typer.Typer) -> None:
    app.add_typer(contributor_app, name="contributor")
    app.add_typer(captures_app, name="captures")


def _engine() -> Engine:
    from observatoire.cli import _engine as engine

    return engine()


def _fail(message: str) -> typer.Exit:
    from observatoire.cli import fail

    return fail(message)


@contributor_app.command("add")
def contributor_add(
    pseudonym: Annotated[str, typer.Argument(help="A pseudonym, never a name.")],
    role: Annotated[str, typer.Option(help="volunteer or applicant.")] = "applicant",
    opt_in: Annotated[
        bool, typer.Option("--opt-in", help="An applicant lets their captures enter the figures.")
    ] = False,
) -> None:
    """Create a contributor and print their personal token (shown once only)."""
    from observatoire.captures.contributors import ContributorError, add_contributor

    try:
        info, token = add_contributor(
            _engine(), pseudonym, role, datetime.now(UTC), opted_in=opt_in
        )
    except (ContributorError, BadPseudonym) as exc:
        raise _fail(str(exc)) from None
    out.print(f"contributor {info.id} {info.pseudonym} ({info.role})", highlight=False)
    out.print(f"token (shown once, give it to the person): {token}", highlight=False)


@contributor_app.command("list")
def contributor_list() -> None:
    """Contributors, their role, opt-in and token state (never the token)."""
    from observatoire.captures.contributors import list_contributors

    table = Table("id", "pseudonym", "role", "in the figures", "created", "token")
    for info, created, revoked in list_contributors(_engine()):
        table.add_row(
            str(info.id),
            info.pseudonym,
            info.role,
            "yes" if info.counted else "no",
            f"{created:%Y-%m-%d}",
            "revoked" if revoked else "active",
        )
    out.print(table)


@contributor_app.command("opt-in")
def contributor_opt_in(
    pseudonym: str,
    no: Annotated[bool, typer.Option("--no", help="Withdraw the opt-in.")] = False,
) -> None:
    """An applicant's choice to let their captures enter the figures (or withdraw it)."""
    from observatoire.captures.contributors import ContributorError, set_opt_in
    from observatoire.record.rollups import rebuild

    engine = _engine()
    try:
        info = set_opt_in(engine, pseudonym, not no)
    except ContributorError as exc:
        raise _fail(str(exc)) from None
    rebuild(engine)
    out.print(f"{info.pseudonym}: in the figures: {'yes' if info.counted else 'no'}")


@contributor_app.command("delete")
def contributor_delete(
    pseudonym: str,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: this cannot be undone.")] = False,
) -> None:
    """Delete a contributor, their captures and every evidence file no other probe uses."""
    from observatoire.captures.contributors import ContributorError
    from observatoire.captures.delete import delete_contributor
    from observatoire.cli import settings
    from observatoire.record.evidence import EvidenceStore

    if not yes:
        raise _fail("this deletes every capture of the contributor: add --yes to confirm")
    try:
        done = delete_contributor(_engine(), EvidenceStore(settings().evidence_dir), pseudonym)
    except ContributorError as exc:
        raise _fail(str(exc)) from None
    out.print(
        f"deleted {done.pseudonym}: {done.captures} capture(s), {done.probes} probe(s), "
        f"{done.files} evidence file(s)",
        highlight=False,
    )


@captures_app.command("review")
def captures_review(
    days: Annotated[int, typer.Option(help="Re-run cross-checks over this many days.")] = 7,
) -> None:
    """Captures waiting for a person, oldest first."""
    from observatoire.captures.crosscheck import recheck
    from observatoire.db.models import CaptureRow, Contributor

    engine = _engine()
    with Session(engine) as session, session.begin():
        recheck(session, datetime.now(UTC) - timedelta(days=days))
    with Session(engine) as session:
        rows = session.execute(
            select(CaptureRow, Contributor.pseudonym)
            .join(Contributor, Contributor.id == CaptureRow.contributor_id)
            .where(CaptureRow.review == "pending")
            .order_by(CaptureRow.received_at)
        ).all()
        table = Table("id", "received (UTC)", "contributor", "kind", "target", "outcome", "why")
        for row, pseudonym in rows:
            table.add_row(
                str(row.id),
                f"{row.received_at:%Y-%m-%d %H:%M}",
                pseudonym,
                row.kind,
                row.target_id or "—",
                f"{row.outcome}/{row.detail}",
                row.review_reason,
            )
    out.print(table)
    out.print(f"{len(rows)} capture(s) waiting for review", highlight=False)
