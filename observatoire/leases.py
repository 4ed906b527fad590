"""Leases on targets, in the database: a probe first takes its target's lease, so two
overlapping cron runs, or daemons on several hosts sharing one PostgreSQL, never probe
the same target at once. A lease expires on its own if its holder dies."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from observatoire.db.models import Lease


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def acquire(
    engine: Engine,
    target_id: str,
    holder: str,
    now: datetime,
    ttl: timedelta = timedelta(minutes=15),
) -> bool:
    """Take the lease unless someone else holds an unexpired one. Atomic on SQLite and
    PostgreSQL (one INSERT … ON CONFLICT DO UPDATE … WHERE)."""
    make = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    table = Lease.__table__
    stmt = make(table).values(target_id=target_id, holder=holder, expires_at=now + ttl)
    stmt = stmt.on_conflict_do_update(
        index_elements=["target_id"],
        set_={"holder": stmt.excluded.holder, "expires_at": stmt.excluded.expires_at},
        where=(table.c.expires_at < now) | (table.c.holder == holder),
    )
    with engine.begin() as conn:
        taken = conn.execute(stmt.returning(table.c.target_id)).first()
    return taken is not None


def release(engine: Engine, target_id: str, holder: str) -> None:
    with engine.begin() as conn:
        conn.execute(delete(Lease).where(Lease.target_id == target_id, Lease.holder == holder))


def extend(engine: Engine, target_id: str, holder: str, until: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(Lease)
            .where(Lease.target_id == target_id, Lease.holder == holder)
            .values(expires_at=until)
        )


def release_stale(engine: Engine) -> int:
    """Drop leases held by dead processes of this host (a daemon killed with -9)."""
    from sqlalchemy import select

    host = socket.gethostname()
    dead = []
    with engine.connect() as conn:
        for target_id, holder in conn.execute(select(Lease.target_id, Lease.holder)):
            name, _, pid = holder.rpartition(":")
            if name != host or not pid.isdigit():
                continue
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                dead.append((target_id, holder))
            except PermissionError:
                pass
    for target_id, holder in dead:
        release(engine, target_id, holder)
    return len(dead)
