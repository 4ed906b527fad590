"""The tables. Every schema change goes through an Alembic migration in `migrations/`."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from observatoire.db.types import UTCDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class TargetRow(Base):
    """A target as last configured. Kept when removed from the config (enabled=False)
    so that its history stays in the figures."""

    __tablename__ = "targets"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    department: Mapped[str] = mapped_column(String(3), index=True)
    department_name: Mapped[str] = mapped_column(String(80))
    prefecture: Mapped[str] = mapped_column(String(120))
    procedure: Mapped[str] = mapped_column(String(60), index=True)
    procedure_name: Mapped[str] = mapped_column(String(200))
    label: Mapped[str] = mapped_column(Text)
    platform: Mapped[str] = mapped_column(String(40))
    url: Mapped[str] = mapped_column(Text)
    site: Mapped[str | None] = mapped_column(Text)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    interval_minutes: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean)
    config_hash: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Probe(Base):
    """One observation of one target: the raw material of every figure."""

    __tablename__ = "probes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target_id: Mapped[str] = mapped_column(ForeignKey("targets.id"))
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str] = mapped_column(String(200), default="")
    first_slot_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    second_slot_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    slots_count: Mapped[int | None] = mapped_column(Integer)
    http_status: Mapped[int | None] = mapped_column(Integer)
    requests_made: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    adapter: Mapped[str] = mapped_column(String(40))
    adapter_version: Mapped[str] = mapped_column(String(20))
    robot_version: Mapped[str] = mapped_column(String(20))
    mode: Mapped[str] = mapped_column(String(10), default="auto")
    #: Assisted probes: the pseudonym of the volunteer who answered the captcha.
    volunteer: Mapped[str | None] = mapped_column(String(40))
    final_url: Mapped[str | None] = mapped_column(Text)
    page_sha256: Mapped[str | None] = mapped_column(String(64))
    screenshot_sha256: Mapped[str | None] = mapped_column(String(64))
    #: The platform's own message, verbatim (an eAppointment alert text, say).
    platform_message: Mapped[str | None] = mapped_column(Text)
    #: Release banners shown on the slot page (RDV-Préfecture): the last and next
    #: publication instants, and the week whose slots each one opens.
    release_last_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    release_last_week: Mapped[date | None] = mapped_column(Date)
    release_next_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    release_next_week: Mapped[date | None] = mapped_column(Date)

    __table_args__ = (
        CheckConstraint(
            "outcome IN ('available', 'no_slot', 'procedure_missing', 'form_open', 'blocked', "
            "'error', 'unrecognized')",
            name="outcome_known",
        ),
        CheckConstraint("mode IN ('auto', 'assisted')", name="mode_known"),
        Index("ix_probes_target_id_started_at", "target_id", "started_at"),
        Index("ix_probes_started_at", "started_at"),
    )


class ProbeDay(Base):
    """Outcome counts per target and Europe/Paris day, kept up to date with every probe
    (and rebuildable from `probes`): statistics read this, never the raw rows."""

    __tablename__ = "probe_days"

    target_id: Mapped[str] = mapped_column(ForeignKey("targets.id"), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD, Paris
    available: Mapped[int] = mapped_column(Integer, default=0)
    no_slot: Mapped[int] = mapped_column(Integer, default=0)
    procedure_missing: Mapped[int] = mapped_column(Integer, default=0)
    form_open: Mapped[int] = mapped_column(Integer, default=0)
    blocked: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[int] = mapped_column(Integer, default=0)
    unrecognized: Mapped[int] = mapped_column(Integer, default=0)
    assisted: Mapped[int] = mapped_column(Integer, default=0)


class ProbeLead(Base):
    """Per target and Paris month: valid probes by La Cimade class and whole days to the
    first offered slot (-1 when no date)."""

    __tablename__ = "probe_leads"

    target_id: Mapped[str] = mapped_column(ForeignKey("targets.id"), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    cimade: Mapped[str] = mapped_column(String(40), primary_key=True)
    lead_days: Mapped[int] = mapped_column(Integer, primary_key=True)
    probes: Mapped[int] = mapped_column(Integer, default=0)


class Episode(Base):
    """A run of valid probes of one target that found no way to book: from its first
    probe to the next probe that found one (`end_at`), or ongoing."""

    __tablename__ = "episodes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target_id: Mapped[str] = mapped_column(ForeignKey("targets.id"), index=True)
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    probes: Mapped[int] = mapped_column(Integer, default=1)


class Lease(Base):
    """Who is probing a target right now: overlapping cron runs and daemons on several
    hosts never probe the same target at once."""

    __tablename__ = "leases"

    target_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    holder: Mapped[str] = mapped_column(String(120))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ProbeAttempt(Base):
    """A probe that has started and not yet been stored. Written before the probe's first
    request and deleted in the same transaction that stores its result, so a crash or a
    kill leaves a row here: the next start turns it into an `error/interrupted` probe,
    counted in coverage, instead of a silent loss."""

    __tablename__ = "probe_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target_id: Mapped[str] = mapped_column(ForeignKey("targets.id"), index=True)
    holder: Mapped[str] = mapped_column(String(120))
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    adapter: Mapped[str] = mapped_column(String(40))
    adapter_version: Mapped[str] = mapped_column(String(20))
    mode: Mapped[str] = mapped_column(String(10), default="auto")


class HostGateRow(Base):
    """The per-host gate shared by every robot process on one database: who holds the
    host for a request right now (until `held_until`, so a dead holder frees it on its
    own) and when the next request may start (minimum delay, Retry-After, post-timeout
    wait). Keys are canonical host names (see politeness.canonical_host)."""

    __tablename__ = "host_gates"

    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(120))
    held_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_allowed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    requests: Mapped[int] = mapped_column(Integer, default=0)
