"""Contributors and their personal tokens.

A token is shown once, at creation; only its sha256 is kept, so a copy of the database
does not let anyone send captures in a contributor's name. The pseudonym follows the
assist page's rule (never a name, an e-mail or a phone number)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from observatoire.assist.pseudonym import check_pseudonym
from observatoire.db.models import Contributor, Probe

ROLES = ("volunteer", "applicant")


class ContributorError(ValueError):
    """A refused contributor operation, with a message for the operator."""


@dataclass(frozen=True)
class ContributorInfo:
    """What a request handler needs, detached from any session."""

    id: int
    pseudonym: str
    role: str
    opted_in: bool

    @property
    def counted(self) -> bool:
        """Whether this person's captures enter the public figures."""
        return self.role == "volunteer" or self.opted_in


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def add_contributor(
    engine: Engine, pseudonym: str, role: str, now: datetime, *, opted_in: bool = False
) -> tuple[ContributorInfo, str]:
    """Create a contributor; returns it and its token (shown once, never stored)."""
    pseudonym = check_pseudonym(pseudonym)
    if role not in ROLES:
        raise ContributorError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    token = secrets.token_urlsafe(24)
    with Session(engine) as session, session.begin():
        if session.scalar(select(Contributor).where(Contributor.pseudonym == pseudonym)):
            raise ContributorError(f"the pseudonym {pseudonym!r} is already taken")
        row = Contributor(
            pseudonym=pseudonym,
            role=role,
            opted_in=opted_in,
            token_sha256=token_hash(token),
            created_at=now,
        )
        session.add(row)
        session.flush()
        info = _info(row)
    return info, token


def _info(row: Contributor) -> ContributorInfo:
    return ContributorInfo(row.id, row.pseudonym, row.role, bool(row.opted_in))


def authenticate(engine: Engine, token: str) -> ContributorInfo | None:
    """The contributor holding `token`, unless unknown or revoked."""
    if not token or len(token) > 200:
        return None
    with Session(engine) as session:
        row = session.scalar(
            select(Contributor).where(
                Contributor.token_sha256 == token_hash(token), Contributor.revoked_at.is_(None)
            )
        )
        return _info(row) if row is not None else None


def find_contributor(engine: Engine, key: str) -> ContributorInfo | None:
    """By pseudonym, or by numeric id."""
    with Session(engine) as session:
        row = session.scalar(select(Contributor).where(Contributor.pseudonym == key))
        if row is None and key.isdigit():
            row = session.get(Contributor, int(key))
        return _info(row) if row is not None else None


def list_contributors(engine: Engine) -> list[tuple[ContributorInfo, datetime, datetime | None]]:
    with Session(engine) as session:
        rows = session.scalars(select(Contributor).order_by(Contributor.id)).all()
        return [(_info(r), r.created_at, r.revoked_at) for r in rows]


def set_opt_in(engine: Engine, key: str, opted_in: bool) -> ContributorInfo:
    """An applicant's choice to let their captures enter the figures (or not any more).
    Past captures move with the choice: the releases their banners announced enter or
    leave in this transaction; the caller rebuilds the rollups."""
    from observatoire.record.releases import admit_releases, withdraw_releases
    from observatoire.record.rollups import counted_sql

    with Session(engine) as session, session.begin():
        row = session.scalar(select(Contributor).where(Contributor.pseudonym == key))
        if row is None:
            raise ContributorError(f"no contributor {key!r}")
        changed = row.role == "applicant" and bool(row.opted_in) != opted_in
        row.opted_in = opted_in
        if changed:
            session.flush()  # in `counted_sql` before the releases are read again
            mine = select(Probe).where(Probe.contributor_id == row.id)
            if opted_in:
                counted = mine.where(text(counted_sql("probes"))).order_by(Probe.started_at)
                for probe in session.scalars(counted):
                    admit_releases(session, probe)
            else:
                withdraw_releases(session, list(session.scalars(mine.with_only_columns(Probe.id))))
        return _info(row)
