"""Operator commands for captures (registered on the main Typer app by `register`):

- `contributor add PSEUDO --role volunteer|applicant [--opt-in]` prints the personal
  token once; `contributor list`; `contributor opt-in PSEUDO [--no]`;
  `contributor delete PSEUDO --yes` removes their captures and evidence;
- `captures review` lists what waits for a person (unrecognised pages, unknown targets,
  OCR doubts, contradictions with the robot), re-running the cross-checks first;
- `captures accept ID [--note]` lets a waiting capture into the figures, `captures reject
  ID [--reason]` keeps it out for good (nothing is deleted). The logic is in `review`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import Engine

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
    """Captures waiting for a person, oldest first.

    None of them counts in any figure until accepted: decide with `captures accept ID`
    or `captures reject ID`."""
    from observatoire.captures.review import review_queue

    queue = review_queue(_engine(), datetime.now(UTC) - timedelta(days=days))
    table = Table("id", "received (UTC)", "contributor", "kind", "target", "outcome", "why")
    for item in queue:
        table.add_row(
            str(item.id),
            f"{item.received_at:%Y-%m-%d %H:%M}",
            item.pseudonym,
            item.kind,
            item.target_id or "—",
            f"{item.outcome}/{item.detail}",
            item.reason,
        )
    out.print(table)
    out.print(f"{len(queue)} capture(s) waiting for review", highlight=False)


@captures_app.command("accept")
def captures_accept(
    capture_id: Annotated[int, typer.Argument(metavar="ID", help="The id `review` lists.")],
    note: Annotated[
        str | None, typer.Option(help="Why it can be trusted (kept with the decision).")
    ] = None,
) -> None:
    """Accept a capture waiting for review: its reading enters the figures.

    The rollups are updated at once (an applicant who has not opted in stays out all the
    same). Exit 2 for an unknown id, a capture not waiting for review, or one that
    matched no target."""
    from observatoire.captures.review import ReviewError, accept_capture

    try:
        done = accept_capture(_engine(), capture_id, datetime.now(UTC), note)
    except ReviewError as exc:
        raise _fail(str(exc)) from None
    counted = (
        "its probe now counts in the figures"
        if done.counted
        else "its probe stays out of the figures (the contributor's captures are private)"
    )
    out.print(f"capture {done.id} accepted: {counted}", highlight=False)


@captures_app.command("reject")
def captures_reject(
    capture_id: Annotated[int, typer.Argument(metavar="ID", help="The id `review` lists.")],
    reason: Annotated[
        str | None, typer.Option(help="Why it is rejected (kept with the decision).")
    ] = None,
) -> None:
    """Reject a capture waiting for review: it stays out of every figure for good.

    Nothing is deleted: the capture, its probe and its evidence stay, with the reason.
    Exit 2 for an unknown id or a capture not waiting for review."""
    from observatoire.captures.review import ReviewError, reject_capture

    try:
        done = reject_capture(_engine(), capture_id, datetime.now(UTC), reason)
    except ReviewError as exc:
        raise _fail(str(exc)) from None
    out.print(
        f"capture {done.id} rejected: kept with its evidence, out of every figure",
        highlight=False,
    )
