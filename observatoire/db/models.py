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
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from observatoire.db.types import UTCDateTime
from observatoire.outcomes import OUTCOME_CHECK

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
    #: A follow-up probe (issue 17): an extra look scheduled because slots were seen or a
    #: release was announced. Kept out of the rollups, so the outcome shares and the
    #: coverage of the regular schedule are not biased towards the moments slots exist.
    followup: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: Manual probes (mode `manual`, issue 21): the contributor whose own browser saw the
    #: page. `volunteer` then holds their pseudonym.
    contributor_id: Mapped[int | None] = mapped_column(ForeignKey("contributors.id"))

    __table_args__ = (
        CheckConstraint(OUTCOME_CHECK, name="outcome_known"),
        CheckConstraint("mode IN ('auto', 'assisted', 'manual')", name="mode_known"),
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
    #: Manual captures (issue 21) that count in the figures: apart in coverage.
    manual: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


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
    #: A follow-up probe: interrupted, it is stored as a follow-up (out of the rollups,
    #: charged to its host's follow-up budget when a restarted daemon resumes).
    followup: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


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


class ReleaseRow(Base):
    """One publication of slots on one target (issue 17): read from the platform's
    banners ("Dernière / Prochaine mise en ligne …"), or, on platforms without banners,
    inferred from the first probe that found slots after a run of `no_slot`. Slot
    survival is computed from these rows and the looks around them (record/releases.py)."""

    __tablename__ = "releases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target_id: Mapped[str] = mapped_column(ForeignKey("targets.id"))
    #: The publication instant (UTC). Inferred: the probe that first found the slots
    #: (the latest instant the publication can have happened).
    published_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: The week whose slots it opens ("pour des créneaux de la semaine du …").
    week_start: Mapped[date | None] = mapped_column(Date)
    #: "banner" (seen as "Dernière mise en ligne"), "announced" (seen only as "Prochaine
    #: mise en ligne" so far) or "inferred".
    source: Mapped[str] = mapped_column(String(12))
    inferred: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Inferred only: seconds between the last look without slots and `published_at`
    #: (the publication happened somewhere in that interval).
    uncertainty_seconds: Mapped[int | None] = mapped_column(Integer)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: The probe that first saw it.
    probe_id: Mapped[int | None] = mapped_column(ForeignKey("probes.id"))

    __table_args__ = (
        UniqueConstraint("target_id", "published_at"),
        CheckConstraint("source IN ('banner', 'announced', 'inferred')", name="source_known"),
        Index("ix_releases_published_at", "published_at"),
    )


class Contributor(Base):
    """A person who sends captures from their own browser (issue 21). Only a pseudonym
    and a hash of their personal token are kept: never a name, never the token itself.

    A `volunteer`'s captures feed the statistics; an `applicant`'s serve their own
    dossier and stay out of every figure unless they opt in (`opted_in`)."""

    __tablename__ = "contributors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pseudonym: Mapped[str] = mapped_column(String(40), unique=True)
    role: Mapped[str] = mapped_column(String(12))
    opted_in: Mapped[bool] = mapped_column(Boolean, default=False)
    #: sha256 of the token (hex): a stolen database does not give the tokens away.
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (CheckConstraint("role IN ('volunteer', 'applicant')", name="role_known"),)


class CaptureRow(Base):
    """One capture as received: the server's own reception stamp, what the browser
    declared (URL, its clock), the evidence hashes, and the review state. A capture
    whose page matched a target also became a probe (`probe_id`); one that matched
    nothing, or that the classifier or a cross-check doubts, waits for an operator."""

    __tablename__ = "captures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    contributor_id: Mapped[int] = mapped_column(ForeignKey("contributors.id"), index=True)
    #: "page" (the extension: HTML + screenshot) or "screenshot" (a phone upload, OCR).
    kind: Mapped[str] = mapped_column(String(12))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: The contributor's browser clock: declared, never trusted over `received_at`.
    client_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    url: Mapped[str | None] = mapped_column(Text)
    target_id: Mapped[str | None] = mapped_column(ForeignKey("targets.id"))
    probe_id: Mapped[int | None] = mapped_column(ForeignKey("probes.id"))
    outcome: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str] = mapped_column(String(200), default="")
    page_sha256: Mapped[str | None] = mapped_column(String(64))
    screenshot_sha256: Mapped[str | None] = mapped_column(String(64))
    #: Phone uploads: what tesseract read, so a reviewer sees what the outcome rests on.
    ocr_text: Mapped[str | None] = mapped_column(Text)
    #: "none" (nothing to look at), "pending" (a person must look: its probe stays out
    #: of every figure meanwhile), "accepted" (a person looked: it counts) or "rejected"
    #: (out of the figures for good; the capture and its evidence stay).
    review: Mapped[str] = mapped_column(String(10), default="none")
    #: Why it waited for review (kept after the decision).
    review_reason: Mapped[str] = mapped_column(String(200), default="")
    #: When a person accepted or rejected it, and their note (a rejection's reason).
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    review_note: Mapped[str | None] = mapped_column(String(200))
    user_agent: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        CheckConstraint("kind IN ('page', 'screenshot')", name="kind_known"),
        CheckConstraint(
            "review IN ('none', 'pending', 'accepted', 'rejected')", name="review_known"
        ),
        Index("ix_captures_received_at", "received_at"),
    )
