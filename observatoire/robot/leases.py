"""Leases in the database, which expire on their own if their holder dies.

- On targets: a probe first takes its target's lease, so two overlapping cron runs, or
  daemons on several hosts sharing one PostgreSQL, never probe the same target at once.
- On hosts (`host_gates`): every request takes its host's gate, so all robot processes
  on one database keep one request in flight per host and the minimum delay between
  them (politeness.PolitePolicy.hold).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    String,
    bindparam,
    case,
    delete,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.types import TypeEngine

from observatoire.db.models import HostGateRow, Lease
from observatoire.db.types import UTCDateTime


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
    with engine.begin() as conn:
        return acquire_in(conn, target_id, holder, now, ttl)


def acquire_in(
    conn: Connection,
    target_id: str,
    holder: str,
    now: datetime,
    ttl: timedelta = timedelta(minutes=15),
) -> bool:
    """`acquire` inside the caller's transaction (the sweep takes the lease and writes
    the probe's attempt row in one)."""
    make = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = make(Lease).values(target_id=target_id, holder=holder, expires_at=now + ttl)
    stmt = stmt.on_conflict_do_update(
        index_elements=["target_id"],
        set_={"holder": stmt.excluded.holder, "expires_at": stmt.excluded.expires_at},
        where=(Lease.expires_at < now) | (Lease.holder == holder),
    )
    return conn.execute(stmt.returning(Lease.target_id)).first() is not None


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


def _dead_here(holder: str) -> bool:
    """True if `holder` ("host:pid", or "host:pid/nonce" for a host gate) names a
    process of this machine that no longer exists."""
    name, _, pid = holder.split("/", 1)[0].rpartition(":")
    if name != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return False


def release_stale(engine: Engine, host_pause: float = 1.0) -> int:
    """Drop leases held by dead processes of this machine (a daemon killed with -9), so
    a restart does not wait for them to expire. A host gate so freed stays closed for
    `host_pause` seconds: the dead process's last request ended when the kernel closed
    its connection, and the minimum delay counts from there."""
    dead = []
    with engine.connect() as conn:
        for target_id, holder in conn.execute(select(Lease.target_id, Lease.holder)):
            if _dead_here(holder):
                dead.append((target_id, holder))
        gates = conn.execute(
            select(HostGateRow.host, HostGateRow.holder).where(HostGateRow.holder.is_not(None))
        ).all()
    for target_id, holder in dead:
        release(engine, target_id, holder)
    freed = 0
    for host, gate_holder in gates:
        # Never None (selected with IS NOT NULL); the column itself is nullable.
        if gate_holder is None or not _dead_here(gate_holder):
            continue
        pause_until = datetime.now(UTC) + timedelta(seconds=host_pause)
        with engine.begin() as conn:
            freed += conn.execute(
                update(HostGateRow)
                .where(HostGateRow.host == host, HostGateRow.holder == gate_holder)
                .values(
                    holder=None,
                    held_until=None,
                    next_allowed_at=_later(HostGateRow.next_allowed_at, pause_until),
                )
            ).rowcount
    return len(dead) + freed


# -- host gates ------------------------------------------------------------------------
# The per-host gate shared by every robot process on one database (see
# politeness.PolitePolicy.hold). Each call is one short transaction: SQLite serialises
# writers, and a long transaction would make every other robot wait (or fail with
# "database is locked").


@dataclass(frozen=True)
class GateState:
    """What `take_host` saw: taken, or who holds the host and until when it is paused."""

    taken: bool
    holder: str | None = None
    held_until: datetime | None = None
    next_allowed_at: datetime | None = None


def _later(column: Any, when: datetime) -> Any:
    """SQL for max(column, when), NULL counting as "long ago" (portable: no GREATEST)."""
    value = literal(when, UTCDateTime())
    return case((column > value, column), else_=value)


# Hand-written SQL, compiled once: these run twice per request, and building the same
# statement with SQLAlchemy's expression language cost ~3 ms of CPU each time (more than
# the request to a loopback simulator). The SQL is the same on SQLite (>= 3.35) and
# PostgreSQL. `_later(x, t)` is max(x, t) with NULL as "long ago" (no GREATEST on SQLite).
_T = UTCDateTime()
_GATE_COLUMNS: dict[str, TypeEngine[Any]] = {
    "holder": String(),
    "held_until": _T,
    "next_allowed_at": _T,
}
_TAKE = (
    text(
        "INSERT INTO host_gates (host, holder, held_until, next_allowed_at, requests) "
        "VALUES (:host, :holder, :until, NULL, 1) "
        "ON CONFLICT (host) DO UPDATE SET holder = excluded.holder, "
        "held_until = excluded.held_until, requests = host_gates.requests + 1 "
        "WHERE (host_gates.holder IS NULL OR host_gates.held_until < :now) "
        "AND (host_gates.next_allowed_at IS NULL OR host_gates.next_allowed_at <= :now) "
        "RETURNING host"
    )
    .bindparams(bindparam("until", type_=_T), bindparam("now", type_=_T))
    .columns(host=String())
)
_READ = text(
    "SELECT holder, held_until, next_allowed_at FROM host_gates WHERE host = :host"
).columns(**_GATE_COLUMNS)
_RELEASE = text(
    "UPDATE host_gates SET "
    "next_allowed_at = CASE WHEN next_allowed_at > :at THEN next_allowed_at ELSE :at END, "
    "held_until = CASE WHEN holder = :holder THEN NULL ELSE held_until END, "
    "holder = CASE WHEN holder = :holder THEN NULL ELSE holder END "
    "WHERE host = :host"
).bindparams(bindparam("at", type_=_T))
_PUSH = text(
    "INSERT INTO host_gates (host, holder, held_until, next_allowed_at, requests) "
    "VALUES (:host, NULL, NULL, :at, 0) "
    "ON CONFLICT (host) DO UPDATE SET next_allowed_at = CASE "
    "WHEN host_gates.next_allowed_at > :at THEN host_gates.next_allowed_at ELSE :at END"
).bindparams(bindparam("at", type_=_T))
_EXTEND = text(
    "UPDATE host_gates SET held_until = :until WHERE host = :host AND holder = :holder"
).bindparams(bindparam("until", type_=_T))


@contextlib.contextmanager
def _gate_transaction(engine: Engine) -> Iterator[Connection]:
    """One short transaction. On PostgreSQL its commit does not wait for the disk
    (synchronous_commit off): a gate lost in a server crash only makes the next
    request wait less than planned once, and the commit no longer costs an fsync per
    request. The row lock taken by ON CONFLICT still serialises the decision."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(_NO_SYNC)
        yield conn


_NO_SYNC = text("SET LOCAL synchronous_commit TO OFF")


def take_host(engine: Engine, host: str, holder: str, now: datetime, lease: timedelta) -> GateState:
    """Take the host for one request if nobody holds it (or the holder's lease ran out:
    it died) and its next allowed time has come. One atomic INSERT … ON CONFLICT DO
    UPDATE … WHERE on SQLite and PostgreSQL; PostgreSQL locks the row for the decision,
    so two processes can never both take it."""
    until = now + lease
    with _gate_transaction(engine) as conn:
        taken = conn.execute(
            _TAKE, {"host": host, "holder": holder, "until": until, "now": now}
        ).first()
        if taken is not None:
            return GateState(True, holder, until)
        row = conn.execute(_READ, {"host": host}).first()
    if row is None:  # deleted in between: try again at once
        return GateState(False)
    return GateState(False, row.holder, row.held_until, row.next_allowed_at)


def release_host(engine: Engine, host: str, holder: str, next_allowed_at: datetime) -> None:
    """End a request: free the host (if still ours) and push its next allowed time to
    `next_allowed_at` unless a later one is already set (another process's Retry-After)."""
    with _gate_transaction(engine) as conn:
        conn.execute(_RELEASE, {"host": host, "holder": holder, "at": next_allowed_at})


def push_host(engine: Engine, host: str, next_allowed_at: datetime) -> None:
    """Pause a host for every process until `next_allowed_at` (a Retry-After noted
    outside a request); never shortens a pause already set."""
    with _gate_transaction(engine) as conn:
        conn.execute(_PUSH, {"host": host, "at": next_allowed_at})


def extend_host(engine: Engine, host: str, holder: str, until: datetime) -> None:
    """Renew a hold while its request is still running."""
    with _gate_transaction(engine) as conn:
        conn.execute(_EXTEND, {"host": host, "holder": holder, "until": until})


def clock_margin(engine: Engine, wall_clock: Callable[[], datetime]) -> float:
    """Seconds by which this process's wall clock may differ from the database's: the
    measured offset plus half the round trip.

    Host gates are written and compared in wall-clock time by every robot process on
    the database. Two machines whose clocks disagree by s seconds would shorten the
    minimum delay between them by s. Each process therefore measures its own offset
    against the one clock they share (the PostgreSQL server's; on SQLite, the machine's
    own, the only one its processes can have) and pads its gate times by it: every
    time it writes lies later, every "now" it compares with lies earlier, so the delay
    holds whatever the clocks, at the price of waiting a little longer."""
    if engine.dialect.name == "postgresql":
        query = text("SELECT clock_timestamp()")
    else:
        query = text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")
    with engine.connect() as conn:
        before = wall_clock()
        value = conn.execute(query).scalar_one()
        after = wall_clock()
    if isinstance(value, str):  # SQLite: naive UTC text
        value = datetime.fromisoformat(value).replace(tzinfo=UTC)
    middle = before + (after - before) / 2
    return abs((value - middle).total_seconds()) + (after - before).total_seconds() / 2


def host_gate(engine: Engine, host: str) -> GateState | None:
    """The stored gate of a host (for `status` and tests)."""
    c = HostGateRow.__table__.c
    with engine.connect() as conn:
        row = conn.execute(
            select(c.holder, c.held_until, c.next_allowed_at).where(c.host == host)
        ).first()
    if row is None:
        return None
    return GateState(False, row.holder, row.held_until, row.next_allowed_at)
