"""Releases of slots as data, and how long released slots survive (issue 17).

Why this exists: RDV-Préfecture publishes slots at fixed instants and some agendas are
emptied within minutes. An hourly probe mostly measures the hours *between* releases:
it cannot tell "nothing is ever released" from "slots are released every Tuesday at
12:00 and gone by 12:03". This module keeps every release as a row and measures the
second number honestly.

Releases come from two sources:

- the platform's own banners on the slot page ("Dernière mise en ligne de rendez-vous :
  le DD/MM/YYYY à HH:mm pour des créneaux de la semaine du …", and "Prochaine mise en
  ligne …", an *announced* release), stored with each probe;
- on platforms without banners (legacy, eAppointment), the first probe that finds slots
  after a run of `no_slot`: an *inferred* release, somewhere between the last look
  without slots and that probe (the interval is kept as its uncertainty).

Survival of one release = the time from its publication to the first look that finds no
slot. We never see that instant, only looks around it, so each survival is an
*interval*: after the last look with slots, at or before the first look without
(interval-censored); with no later look without slots, it is only known to be longer
than the last look with slots (right-censored). Summaries use a simple bound method:
every figure is given as the range that contains it whatever the true survivals are
within their intervals (lower bounds taken together, upper bounds taken together). It
assumes nothing about the shape of the distribution (a Turnbull estimate would pick one
value inside those bounds; we publish the bounds themselves).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from observatoire.clock import PARIS, paris_month
from observatoire.db.models import Probe, ReleaseRow, TargetRow
from observatoire.outcomes import Outcome, ProbeResult
from observatoire.record.rollups import counted_sql

#: Banners give the minute ("à HH:mm"): the true instant is within the next 60 s.
BANNER_PRECISION = timedelta(seconds=60)
#: The thresholds of the published shares ("gone within 5, 15 and 60 minutes").
THRESHOLDS_MINUTES = (5, 15, 60)
#: Looks that say whether slots exist (the others say nothing about survival).
LOOK_OUTCOMES = (Outcome.AVAILABLE.value, Outcome.NO_SLOT.value)


# -- feeding the table (called by store.save_probe, in the probe's transaction) ---------
def record_releases(
    session: Session, probe: Probe, result: ProbeResult, *, infer: bool = True
) -> None:
    """Add or refresh the releases this probe tells about. Runs inside the transaction
    that stores the probe, so a probe and the releases it saw commit together.

    `infer=False` records the banners only: a capture accepted by a reviewer may lie
    before probes already stored, so "slots after a no_slot look" would compare it with
    the wrong neighbours (and a later look may already have inferred that batch)."""
    seen: list[tuple[datetime, date | None, str]] = []
    if result.release_last_at is not None:
        seen.append((result.release_last_at, result.release_last_week, "banner"))
    if result.release_next_at is not None:
        seen.append((result.release_next_at, result.release_next_week, "announced"))
    for at, week, source in seen:
        _upsert(session, probe, at.astimezone(UTC), week, source)
    if not infer or seen or result.outcome is not Outcome.AVAILABLE:
        return
    # No banner: infer a release when slots appear after a look that found none. Only a
    # counted look (not a private capture, nor one held back by its review) says so.
    previous = session.execute(
        select(Probe.outcome, Probe.started_at, Probe.release_last_at)
        .where(
            Probe.target_id == probe.target_id,
            Probe.started_at < probe.started_at,
            Probe.outcome.in_(LOOK_OUTCOMES),
            Probe.id != probe.id,
            text(counted_sql("probes")),
        )
        .order_by(Probe.started_at.desc())
        .limit(1)
    ).first()
    if previous is None or previous.outcome != Outcome.NO_SLOT.value:
        return
    if previous.release_last_at is not None:
        return  # a target with banners: its releases are read, never guessed
    uncertainty = int((probe.started_at - previous.started_at).total_seconds())
    session.add(
        ReleaseRow(
            target_id=probe.target_id,
            published_at=probe.started_at,
            week_start=None,
            source="inferred",
            inferred=True,
            uncertainty_seconds=max(0, uncertainty),
            first_seen_at=probe.started_at,
            last_seen_at=probe.started_at,
            probe_id=probe.id,
        )
    )


def admit_releases(session: Session, probe: Probe) -> None:
    """Record the releases announced on a probe stored earlier that counts only now (a
    capture a reviewer accepted, `captures.review.accept_capture`): its banners, read
    from the probe row's release columns, never an inference. Runs in the caller's
    transaction, with the rest of the decision."""
    banners = ProbeResult(
        Outcome(probe.outcome),
        release_last_at=probe.release_last_at,
        release_last_week=probe.release_last_week,
        release_next_at=probe.release_next_at,
        release_next_week=probe.release_next_week,
    )
    record_releases(session, probe, banners, infer=False)


def withdraw_releases(session: Session, probe_ids: Sequence[int]) -> None:
    """Take these probes' part out of the releases, now that they no longer count (a
    contributor's data deleted: call it before the probes go, as no release may point
    at a missing probe; or a counted capture sent back to review). A release they told
    about is read again from the counted probes that stay, or removed when none does;
    a release inferred from them is removed, or measured again from the look without
    slots that now precedes it. The caller has already flushed the change that takes
    the probes out of `counted_sql` (or deletes them after this call)."""
    ids = list(probe_ids)
    if not ids:
        return
    gone = session.execute(
        select(
            Probe.target_id, Probe.started_at, Probe.release_last_at, Probe.release_next_at
        ).where(Probe.id.in_(ids))
    ).all()
    touched = {
        r.id: r for r in session.scalars(select(ReleaseRow).where(ReleaseRow.probe_id.in_(ids)))
    }
    for target_id, _, last_at, next_at in gone:
        for at in (last_at, next_at):
            if at is not None:
                row = session.scalars(
                    select(ReleaseRow).where(
                        ReleaseRow.target_id == target_id, ReleaseRow.published_at == at
                    )
                ).first()
                if row is not None:
                    touched[row.id] = row
    # Inferred releases one of these looks preceded (the uncertainty is whole seconds).
    looks: dict[str, list[datetime]] = defaultdict(list)
    for target_id, started_at, _, _ in gone:
        looks[target_id].append(started_at)
    for target_id, starts in looks.items():
        for row in session.scalars(
            select(ReleaseRow).where(ReleaseRow.target_id == target_id, ReleaseRow.inferred)
        ):
            before = row.published_at - timedelta(seconds=row.uncertainty_seconds or 0)
            if any(abs(before - at) < timedelta(seconds=1) for at in starts):
                touched[row.id] = row
    staying = (Probe.id.not_in(ids), text(counted_sql("probes")))
    for row in touched.values():
        if row.inferred:
            previous = session.execute(
                select(Probe.outcome, Probe.started_at, Probe.release_last_at)
                .where(
                    Probe.target_id == row.target_id,
                    Probe.started_at < row.published_at,
                    Probe.outcome.in_(LOOK_OUTCOMES),
                    *staying,
                )
                .order_by(Probe.started_at.desc())
                .limit(1)
            ).first()
            if (
                row.probe_id in ids
                or previous is None
                or previous.outcome != Outcome.NO_SLOT.value
                or previous.release_last_at is not None
            ):
                session.delete(row)
            else:
                row.uncertainty_seconds = int(
                    (row.published_at - previous.started_at).total_seconds()
                )
            continue
        seen = session.execute(
            select(Probe.id, Probe.started_at, Probe.release_last_at)
            .where(
                Probe.target_id == row.target_id,
                (Probe.release_last_at == row.published_at)
                | (Probe.release_next_at == row.published_at),
                *staying,
            )
            .order_by(Probe.started_at, Probe.id)
        ).all()
        if not seen:
            session.delete(row)
            continue
        row.probe_id = seen[0].id
        row.first_seen_at, row.last_seen_at = seen[0].started_at, seen[-1].started_at
        happened = any(s.release_last_at == row.published_at for s in seen)
        row.source = "banner" if happened else "announced"
    session.flush()


def _upsert(session: Session, probe: Probe, at: datetime, week: date | None, source: str) -> None:
    row = session.scalars(
        select(ReleaseRow).where(
            ReleaseRow.target_id == probe.target_id, ReleaseRow.published_at == at
        )
    ).first()
    if row is None:
        session.add(
            ReleaseRow(
                target_id=probe.target_id,
                published_at=at,
                week_start=week,
                source=source,
                inferred=False,
                uncertainty_seconds=None,
                first_seen_at=probe.started_at,
                last_seen_at=probe.started_at,
                probe_id=probe.id,
            )
        )
        return
    row.first_seen_at = min(row.first_seen_at, probe.started_at)
    row.last_seen_at = max(row.last_seen_at, probe.started_at)
    row.week_start = row.week_start or week
    if source == "banner" and row.source != "banner":
        row.source = "banner"  # announced, and now seen as having happened


# -- survival ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Look:
    at: datetime
    slots: bool
    followup: bool = False
    mode: str = "auto"


@dataclass(frozen=True)
class Survival:
    """One release and what the looks around it say of its survival (seconds)."""

    target_id: str
    published_at: datetime
    week_start: date | None
    source: str
    uncertainty_seconds: int | None
    #: Lower bound (exclusive), upper bound (inclusive; None when right-censored); None
    #: both when the release was missed (no look before the next release).
    low: float | None
    high: float | None
    looks: int

    @property
    def missed(self) -> bool:
        return self.low is None

    @property
    def censoring(self) -> str:
        """ "missed", "interval" or "right" (the French words are the site's job)."""
        if self.low is None:
            return "missed"
        return "right" if self.high is None else "interval"

    def contains(self, seconds: float) -> bool:
        """Whether a true survival is compatible with what was measured."""
        if self.low is None:
            return True
        return self.low < seconds + 1e-6 and (self.high is None or seconds <= self.high + 1e-6)


class PublishedRelease(Protocol):
    """What `survival_of` reads of a release: a ReleaseRow, a Survival, or a stand-in."""

    @property
    def published_at(self) -> datetime: ...

    @property
    def uncertainty_seconds(self) -> int | None: ...


def survival_of(
    release: PublishedRelease,
    looks: Sequence[Look],
    until: datetime | None,
) -> tuple[float | None, float | None, int]:
    """The survival interval of one release from the looks of its target (sorted by
    time), counting only looks before `until` (the next release: a look after it may
    see the next batch's slots)."""
    published = release.published_at
    uncertainty = release.uncertainty_seconds
    inferred = uncertainty is not None
    window = [lk for lk in looks if lk.at >= published and (until is None or lk.at < until)]
    if not window:
        return None, None, 0
    last_with: datetime | None = None
    first_without: datetime | None = None
    for look in window:
        if look.slots:
            last_with = look.at
        else:
            first_without = look.at
            break
    # The earliest the publication can have been, and the latest.
    earliest = published - timedelta(seconds=uncertainty) if uncertainty is not None else published
    latest = published if inferred else published + BANNER_PRECISION
    low = 0.0 if last_with is None else max(0.0, (last_with - latest).total_seconds())
    high = None if first_without is None else (first_without - earliest).total_seconds()
    return low, high, len(window)


def looks_by_target(
    engine: Engine, target_ids: Iterable[str] | None = None
) -> dict[str, list[Look]]:
    """Every look that says whether slots existed, per target, oldest first."""
    stmt = select(Probe.target_id, Probe.started_at, Probe.outcome, Probe.followup, Probe.mode)
    # A private applicant's captures serve only their own dossier (never a public figure).
    stmt = stmt.where(Probe.outcome.in_(LOOK_OUTCOMES), text(counted_sql("probes")))
    if target_ids is not None:
        stmt = stmt.where(Probe.target_id.in_(list(target_ids)))
    out: dict[str, list[Look]] = defaultdict(list)
    with engine.connect() as conn:
        for tid, at, outcome, followup, mode in conn.execute(stmt.order_by(Probe.started_at)):
            out[tid].append(Look(at, outcome == Outcome.AVAILABLE.value, bool(followup), mode))
    return out


def survivals(
    engine: Engine, now: datetime, target_ids: Iterable[str] | None = None
) -> list[Survival]:
    """Every past release with its survival interval (or marked missed), oldest first.
    Announced releases still in the future are left out."""
    ids = list(target_ids) if target_ids is not None else None
    stmt = select(ReleaseRow).where(ReleaseRow.published_at <= now)
    if ids is not None:
        stmt = stmt.where(ReleaseRow.target_id.in_(ids))
    with Session(engine) as session:
        rows = list(session.scalars(stmt.order_by(ReleaseRow.target_id, ReleaseRow.published_at)))
        session.expunge_all()
    looks = looks_by_target(engine, ids)
    by_target: dict[str, list[ReleaseRow]] = defaultdict(list)
    for row in rows:
        by_target[row.target_id].append(row)
    out: list[Survival] = []
    for tid, releases in by_target.items():
        for index, row in enumerate(releases):
            following = releases[index + 1] if index + 1 < len(releases) else None
            until = None
            if following is not None:
                until = following.published_at - timedelta(
                    seconds=following.uncertainty_seconds or 0
                )
            low, high, count = survival_of(row, looks.get(tid, []), until)
            out.append(
                Survival(
                    tid,
                    row.published_at,
                    row.week_start,
                    row.source,
                    row.uncertainty_seconds,
                    low,
                    high,
                    count,
                )
            )
    return sorted(out, key=lambda s: (s.target_id, s.published_at))


@dataclass(frozen=True)
class SurvivalSummary:
    """Per target and Paris month: the figures the site and the export publish."""

    target_id: str
    month: str
    releases: int
    observed: int
    missed: int
    right_censored: int
    inferred: int
    #: Bounds of the median survival, seconds (high None = unbounded).
    median_low: float | None
    median_high: float | None
    #: For 5, 15, 60 min: (lowest, highest) possible share of observed releases gone.
    gone: dict[int, tuple[float, float]]


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def summarize(items: Sequence[Survival]) -> list[SurvivalSummary]:
    """Bound-method summaries per target and month (see the module docstring)."""
    groups: dict[tuple[str, str], list[Survival]] = defaultdict(list)
    for s in items:
        groups[(s.target_id, paris_month(s.published_at))].append(s)
    out = []
    for (tid, month), group in sorted(groups.items()):
        seen = [s for s in group if not s.missed]
        lows = [float(s.low or 0.0) for s in seen]
        highs = [math.inf if s.high is None else float(s.high) for s in seen]
        gone: dict[int, tuple[float, float]] = {}
        for minutes in THRESHOLDS_MINUTES:
            t = minutes * 60.0
            if seen:
                sure = sum(1 for h in highs if h <= t) / len(seen)
                possible = sum(1 for lo in lows if lo < t) / len(seen)
                gone[minutes] = (sure, possible)
        median_high = _median(highs) if seen else None
        out.append(
            SurvivalSummary(
                target_id=tid,
                month=month,
                releases=len(group),
                observed=len(seen),
                missed=len(group) - len(seen),
                right_censored=sum(1 for s in seen if s.high is None),
                inferred=sum(1 for s in group if s.source == "inferred"),
                median_low=_median(lows) if seen else None,
                median_high=None if median_high is None or math.isinf(median_high) else median_high,
                gone=gone,
            )
        )
    return out


def duration_fr(seconds: float | None) -> str:
    """ "4 min", "1 h 05", "2 j" — for the site and the volunteer page."""
    if seconds is None:
        return "plus longtemps (non borné)"
    minutes = int(round(seconds / 60))
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60:02d}"
    return f"{minutes // (24 * 60)} j"


# -- announced releases: countdown and calendar feeds ------------------------------------
@dataclass(frozen=True)
class Announced:
    target_id: str
    department: str
    label: str
    url: str
    published_at: datetime
    week_start: date | None


def announced(
    engine: Engine,
    now: datetime,
    *,
    department: str | None = None,
    horizon: timedelta = timedelta(days=14),
    past: timedelta = timedelta(days=0),
) -> list[Announced]:
    """Releases the platforms announced, from `now - past` to `now + horizon`, soonest
    first (enabled targets only)."""
    stmt = (
        select(ReleaseRow, TargetRow)
        .join(TargetRow, TargetRow.id == ReleaseRow.target_id)
        .where(
            ReleaseRow.inferred.is_(False),
            ReleaseRow.published_at >= now - past,
            ReleaseRow.published_at <= now + horizon,
            TargetRow.enabled.is_(True),
        )
        .order_by(ReleaseRow.published_at, ReleaseRow.target_id)
    )
    if department is not None:
        stmt = stmt.where(TargetRow.department == department)
    with Session(engine) as session:
        return [
            Announced(t.id, t.department, t.label, t.url, r.published_at, r.week_start)
            for r, t in session.execute(stmt)
        ]


def _ics_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def _fold(line: str) -> str:
    """RFC 5545 lines are at most 75 octets; longer ones continue after CRLF + space."""
    data = line.encode("utf-8")
    if len(data) <= 75:
        return line
    parts: list[str] = []
    current = b""
    for char in line:
        encoded = char.encode("utf-8")
        if len(current) + len(encoded) > (75 if not parts else 74):
            parts.append(current.decode("utf-8"))
            current = b""
        current += encoded
    parts.append(current.decode("utf-8"))
    return "\r\n ".join(parts)


def ics_feed(items: Sequence[Announced], name: str, generated: datetime) -> str:
    """An iCalendar feed of announced releases: a volunteer subscribes once and their
    phone reminds them (an alarm 10 minutes before). Stable UIDs, so a re-read feed
    updates events instead of duplicating them."""
    stamp = f"{generated.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//observatoire//mises en ligne//FR",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"X-WR-CALNAME:{_ics_text(name)}",
        "X-WR-TIMEZONE:Europe/Paris",
    ]
    for item in items:
        start = item.published_at.astimezone(UTC)
        week = (
            f" pour des créneaux de la semaine du {item.week_start:%d/%m/%Y}"
            if item.week_start
            else ""
        )
        local = item.published_at.astimezone(PARIS)
        lines += [
            "BEGIN:VEVENT",
            f"UID:mise-en-ligne-{item.target_id}-{start:%Y%m%dT%H%M}@observatoire",
            f"DTSTAMP:{stamp}",
            f"DTSTART:{start:%Y%m%dT%H%M%SZ}",
            "DURATION:PT15M",
            f"SUMMARY:{_ics_text('Mise en ligne de rendez-vous : ' + item.label)}",
            "DESCRIPTION:"
            + _ics_text(
                f"Le site annonce une mise en ligne le {local:%d/%m/%Y} à {local:%H:%M}{week}. "
                f"Département {item.department}. Démarche : {item.url}"
            ),
            f"URL:{_ics_text(item.url)}",
            "BEGIN:VALARM",
            "ACTION:DISPLAY",
            "TRIGGER:-PT10M",
            f"DESCRIPTION:{_ics_text('Mise en ligne dans 10 minutes : ' + item.label)}",
            "END:VALARM",
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return "\r\n".join(_fold(line) for line in lines) + "\r\n"


def weekday_hour_grid(items: Sequence[Survival]) -> list[list[int]]:
    """Releases per Paris weekday (Monday first) and hour: when releases happen."""
    grid = [[0] * 24 for _ in range(7)]
    for s in items:
        local = s.published_at.astimezone(PARIS)
        grid[local.weekday()][local.hour] += 1
    return grid


# -- the public site's "Mises en ligne" section -------------------------------------------
WEEKDAYS_FR = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
CENSORING_FR = {
    "interval": "entre deux consultations",
    "right": "encore visible à la dernière consultation",
    "missed": "manquée (aucune consultation avant la suivante)",
}
SOURCE_FR = {
    "banner": "annoncée par le site",
    "announced": "annoncée par le site",
    "inferred": "déduite (premiers créneaux vus après « aucun créneau »)",
}


def survival_svg(items: Sequence[Survival], title: str) -> str:
    """Each observed release as a bar from the shortest to the longest survival its
    looks allow (to the edge when only a lower bound is known). Plain SVG, no script.

    Drawn like `charts.share_trend`: a 400-unit viewBox with 13-unit text, so a 390 px
    phone never shows it under 11 px; tick labels alternate between two lines and one
    that would touch its neighbour is left out (its grid line stays); an inferred
    release is marked "*" and explained under the bars."""
    seen = [s for s in items if not s.missed][-30:]
    if not seen:
        return ""
    finite = [s.high for s in seen if s.high is not None] + [s.low or 0 for s in seen]
    scale_max = max(60 * 60.0, max(finite) * 1.1)
    width, left, row, font = 400, 104, 20, 13
    top = 8 + 2 * (font + 4)
    inferred = any(s.source == "inferred" for s in seen)
    plot_end = top + row * len(seen)
    height = plot_end + (8 + font + 4 if inferred else 4)
    plot = width - left - 8

    def x(seconds: float) -> float:
        return left + plot * min(seconds, scale_max) / scale_max

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'role="img" aria-labelledby="survie-titre" class="chart survie">'
        f'<title id="survie-titre">{_xml(title)}</title>'
    ]
    last_label = [-1e9, -1e9]  # the right end of the last label on each line
    for minutes in (0, 5, 15, 60, 120, 240, 480, 1440):
        if minutes * 60 > scale_max:
            continue
        gx = x(minutes * 60)
        parts.append(
            f'<line x1="{gx:.1f}" y1="{top - 4}" x2="{gx:.1f}" y2="{plot_end}" class="grille"/>'
        )
        label = duration_fr(minutes * 60.0)
        half = 0.3 * font * len(label) + 2
        anchor, lo, hi = "middle", gx - half, gx + half
        if hi > width:
            anchor, lo, hi = "end", gx - 2 * half, gx
        line = next((i for i in (0, 1) if lo > last_label[i] + 6), None)
        if line is None:
            continue
        last_label[line] = hi
        parts.append(
            f'<text x="{gx:.1f}" y="{8 + font + line * (font + 4)}" font-size="{font}" '
            f'text-anchor="{anchor}">{label}</text>'
        )
    for index, s in enumerate(seen):
        y = top + row * index
        local = s.published_at.astimezone(PARIS)
        label = f"{local:%d/%m %H:%M}" + (" *" if s.source == "inferred" else "")
        x1 = x(s.low or 0.0)
        x2 = x(s.high) if s.high is not None else left + plot
        parts.append(
            f'<text x="0" y="{y + 15}" font-size="{font}">{_xml(label)}</text>'
            f'<rect x="{x1:.1f}" y="{y + 4}" width="{max(2.0, x2 - x1):.1f}" height="12" '
            f'class="{"ouvert" if s.high is None else "borne"}"/>'
        )
    if inferred:
        parts.append(
            f'<text x="0" y="{plot_end + 8 + font}" font-size="{font}">'
            "* déduite : créneaux vus après « aucun créneau »</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _share_fr(bounds: tuple[float, float] | None) -> str:
    if bounds is None:
        return "—"
    low, high = (round(v * 100) for v in bounds)
    return f"{low} %" if low == high else f"entre {low} et {high} %"


def _median_fr(summary: SurvivalSummary) -> str:
    if summary.median_low is None:
        return "—"
    low = duration_fr(summary.median_low)
    if summary.median_high is None:
        return f"plus de {low}"
    high = duration_fr(summary.median_high)
    return low if low == high else f"entre {low} et {high}"


def site_sections(engine: Engine, now: datetime) -> dict[str, dict[str, object]]:
    """Per department: what the "Mises en ligne" section shows (empty departments are
    left out, and the section is not drawn for them)."""
    with Session(engine) as session:
        targets = {
            t.id: (t.department, t.label, t.enabled) for t in session.scalars(select(TargetRow))
        }
    items = survivals(engine, now)
    by_dept: dict[str, list[Survival]] = defaultdict(list)
    for s in items:
        if s.target_id in targets:
            by_dept[targets[s.target_id][0]].append(s)
    coming = announced(engine, now)
    out: dict[str, dict[str, object]] = {}
    for dept, group in by_dept.items():
        grid = weekday_hour_grid(group)
        hours = [h for h in range(24) if any(grid[d][h] for d in range(7))]
        summaries = summarize(group)
        out[dept] = {
            "hours": hours,
            "grid": [(WEEKDAYS_FR[d], [grid[d][h] for h in hours]) for d in range(7)],
            "summaries": [
                {
                    "label": targets[s.target_id][1],
                    "month": s.month,
                    "releases": s.releases,
                    "observed": s.observed,
                    "missed": s.missed,
                    "right_censored": s.right_censored,
                    "inferred": s.inferred,
                    "median": _median_fr(s),
                    "gone5": _share_fr(s.gone.get(5)),
                    "gone15": _share_fr(s.gone.get(15)),
                    "gone60": _share_fr(s.gone.get(60)),
                }
                for s in sorted(summaries, key=lambda s: (s.month, s.target_id), reverse=True)
            ],
            "recent": [
                {
                    "label": targets[s.target_id][1],
                    "at": s.published_at,
                    "source": SOURCE_FR[s.source],
                    "censoring": CENSORING_FR[s.censoring],
                    "low": duration_fr(s.low) if s.low is not None else "—",
                    "high": duration_fr(s.high) if s.low is not None else "—",
                }
                for s in sorted(group, key=lambda s: s.published_at, reverse=True)[:20]
            ],
            "chart": survival_svg(
                group, f"Durée de disponibilité des créneaux mis en ligne, département {dept}"
            ),
            "announced": [a for a in coming if a.department == dept],
        }
    return out


def site_feeds(engine: Engine, now: datetime) -> dict[str, str]:
    """The public site's iCalendar files: `mises-en-ligne.ics` (all) and
    `mises-en-ligne-<department>.ics`, announced releases of the next 14 days."""
    items = announced(engine, now)
    feeds = {"mises-en-ligne.ics": ics_feed(items, "Mises en ligne annoncées", now)}
    with Session(engine) as session:
        departments = sorted(set(session.scalars(select(TargetRow.department))))
    for dept in departments:
        mine = [a for a in items if a.department == dept]
        feeds[f"mises-en-ligne-{dept}.ics"] = ics_feed(
            mine, f"Mises en ligne annoncées — département {dept}", now
        )
    return feeds
