"""Releases as data and slot survival (issue 17): the simulator's release batches and
their ground truth, the releases table fed by probes, the survival intervals and their
bound-method summaries, the follow-up planner's bounds, the calendar feed, and the
done-when test: a simulated month with releases and follow-ups where every measured
survival interval contains the true survival, without a conduct violation."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from observatoire.clock import PARIS
from observatoire.config import FollowupConfig, Target, load_config
from observatoire.db import make_engine
from observatoire.db.migrate import upgrade
from observatoire.db.models import Probe, ReleaseRow
from observatoire.outcomes import Outcome, ProbeResult
from observatoire.publish.export import export_all
from observatoire.publish.formatting import environment
from observatoire.publish.site import SiteContext, build_site
from observatoire.record.evidence import EvidenceStore
from observatoire.record.releases import (
    Look,
    Survival,
    announced,
    ics_feed,
    site_sections,
    summarize,
    survival_of,
    survivals,
)
from observatoire.record.store import ProbeRecord, save_probe, sync_targets
from observatoire.release_month import MONTH_START, WEEKLY, run_month, targets_file
from observatoire.robot.followup import FollowupPlanner
from observatoire.simulator.availability import batches_between, slot_state
from observatoire.simulator.scenario import Profile

from .factories import probe_record

UA = "observatoire-test/1.0 (+https://example.org/contact)"


# -- the simulator's batches -----------------------------------------------------------
def test_batches_are_published_at_fixed_instants_and_taken_by_demand() -> None:
    profile = Profile.model_validate(WEEKLY)
    end = MONTH_START + timedelta(days=28)
    batches = batches_between(17, "k", profile, MONTH_START, end)
    assert len(batches) == 8  # 4 Tuesdays + 4 Fridays
    for batch in batches:
        local = batch.published_at.astimezone(PARIS)
        assert (local.weekday(), local.strftime("%H:%M")) in {(1, "12:00"), (4, "09:30")}
        assert batch.week_start.weekday() == 0
        assert all(
            batch.week_start <= s.date() <= batch.week_start + timedelta(days=4)
            for s, _ in batch.slots
        )
        assert 20 * 60 <= batch.survival_seconds <= 150 * 60
        # The page shows the batch until its last slot is taken, and nothing after.
        just_before = batch.gone_at - timedelta(seconds=1)
        assert slot_state(17, "k", just_before.astimezone(UTC), profile).open
        assert not slot_state(17, "k", batch.gone_at.astimezone(UTC), profile).open
    # More bots take the slots sooner.
    crowded = Profile.model_validate(
        {
            **WEEKLY,
            "releases": [
                {**r, "demand": {"bots": 50, "reaction_minutes": [20, 150]}}
                for r in WEEKLY["releases"]
            ],
        }
    )
    fast = batches_between(17, "k", crowded, MONTH_START, end)
    assert sum(b.survival_seconds for b in fast) < sum(b.survival_seconds for b in batches)


# -- survival intervals and summaries --------------------------------------------------
def _survival(low: float | None, high: float | None) -> Survival:
    return Survival("t", MONTH_START, None, "banner", None, low, high, 1)


def test_survival_interval_from_looks() -> None:
    published = datetime(2026, 3, 3, 11, 0, tzinfo=UTC)

    class R:
        published_at = published
        uncertainty_seconds = None

    looks = [
        Look(published - timedelta(minutes=30), False),
        Look(published + timedelta(minutes=4), True),
        Look(published + timedelta(minutes=14), True),
        Look(published + timedelta(minutes=24), False),
        Look(published + timedelta(minutes=34), True),  # another batch, or a return
    ]
    low, high, count = survival_of(R, looks, None)
    # After the last look with slots (less the banner's minute), at the first without.
    assert (low, high) == (14 * 60 - 60, 24 * 60)
    assert count == 4  # the look before the publication does not count
    # Right-censored: no look without slots before the next release.
    low, high, _ = survival_of(R, looks, published + timedelta(minutes=20))
    assert low == 13 * 60 and high is None
    # Missed: no look at all before the next release.
    assert survival_of(R, looks[:1], published + timedelta(minutes=3)) == (None, None, 0)

    class Inferred:  # slots first seen at 11:00, after a no-slot look at 10:30
        published_at = published
        uncertainty_seconds = 1800

    low, high, _ = survival_of(Inferred, looks, None)
    assert (low, high) == (14 * 60, 24 * 60 + 1800)


def test_summary_bounds_contain_every_compatible_median() -> None:
    items = [
        _survival(0, 240),
        _survival(120, 600),
        _survival(500, 900),
        _survival(3000, None),
        _survival(None, None),
    ]
    (summary,) = summarize(items)
    assert (summary.releases, summary.observed, summary.missed) == (5, 4, 1)
    assert summary.right_censored == 1
    assert summary.median_low == (120 + 500) / 2
    assert summary.median_high == (600 + 900) / 2
    # Gone within 5 min: surely 1 of 4 (high <= 300), possibly 2 of 4 (low < 300).
    assert summary.gone[5] == (0.25, 0.5)
    assert summary.gone[60] == (0.75, 1.0)
    # Any true survivals inside the intervals give a median inside the bounds.
    for truth in ([1, 121, 501, 3001], [240, 600, 900, 10**6]):
        import statistics

        assert summary.median_low <= statistics.median(truth) <= summary.median_high


# -- the table fed by probes -----------------------------------------------------------
def _record(tid: str, at: datetime, result: ProbeResult, followup: bool = False) -> ProbeRecord:
    return probe_record(
        tid, at, result, requests_made=3, duration_ms=5, adapter_version="t", followup=followup
    )


def test_releases_table_from_banners_and_inference(db_url: str, tmp_path: Path) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    config = load_config(targets_file(tmp_path, "http://127.0.0.1:9", 120, None))
    (target,) = config.targets
    banner = Target(**{**target.__dict__, "id": "95-banner", "platform": "rdv_prefecture"})
    sync_targets(engine, [target, banner], MONTH_START)
    evidence = EvidenceStore(tmp_path / "evidence")
    t0 = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
    last, nxt = datetime(2026, 3, 3, 8, 0, tzinfo=UTC), datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
    seen = ProbeResult(
        Outcome.NO_SLOT,
        release_last_at=last,
        release_last_week=date(2026, 3, 16),
        release_next_at=nxt,
        release_next_week=date(2026, 3, 23),
    )
    save_probe(engine, evidence, _record("95-banner", t0, seen))
    save_probe(engine, evidence, _record("95-banner", t0 + timedelta(hours=1), seen))
    # A week later the announced release has happened: it becomes a banner release.
    later = ProbeResult(Outcome.AVAILABLE, release_last_at=nxt, release_last_week=date(2026, 3, 23))
    save_probe(engine, evidence, _record("95-banner", nxt + timedelta(minutes=3), later))
    # Without banners: slots after a no_slot look make an inferred release.
    no, yes = ProbeResult(Outcome.NO_SLOT), ProbeResult(Outcome.AVAILABLE)
    save_probe(engine, evidence, _record(target.id, t0, no))
    save_probe(engine, evidence, _record(target.id, t0 + timedelta(minutes=50), yes))
    save_probe(engine, evidence, _record(target.id, t0 + timedelta(minutes=60), yes, True))
    save_probe(engine, evidence, _record(target.id, t0 + timedelta(minutes=70), no, True))
    with Session(engine) as session:
        rows = list(session.scalars(select(ReleaseRow).order_by(ReleaseRow.published_at)))
        followups = session.scalars(select(Probe.id).where(Probe.followup.is_(True))).all()
    by = {(r.target_id, r.published_at): r for r in rows}
    first = by[("95-banner", last)]
    assert (first.source, first.week_start, first.inferred) == ("banner", date(2026, 3, 16), False)
    assert first.first_seen_at == t0 and first.last_seen_at == t0 + timedelta(hours=1)
    assert by[("95-banner", nxt)].source == "banner"
    inferred = by[(target.id, t0 + timedelta(minutes=50))]
    assert inferred.inferred and inferred.source == "inferred"
    assert inferred.uncertainty_seconds == 50 * 60
    assert len(rows) == 3 and len(followups) == 2
    # The announced release is in the feed until it happens.
    (item,) = announced(engine, t0)
    assert item.published_at == nxt and item.target_id == "95-banner"
    feed = ics_feed([item], "Mises en ligne annoncées", t0)
    assert feed.startswith("BEGIN:VCALENDAR\r\n") and "DTSTART:20260310T080000Z" in feed
    assert all(len(line.encode()) <= 75 for line in feed.split("\r\n"))
    assert announced(engine, nxt + timedelta(minutes=1)) == []
    measured = {s.published_at: s for s in survivals(engine, nxt + timedelta(hours=2))}
    assert measured[t0 + timedelta(minutes=50)].high == 20 * 60 + 50 * 60
    engine.dispose()


# -- follow-up bounds ------------------------------------------------------------------
def test_followup_planner_is_bounded(tmp_path: Path) -> None:
    config = load_config(targets_file(tmp_path, "http://127.0.0.1:9", 120, True))
    (target,) = config.targets
    assert target.followup == FollowupConfig()
    twin = Target(**{**target.__dict__, "id": "95-twin"})  # same host
    planner = FollowupPlanner()
    now = MONTH_START
    planner.observe(target, ProbeResult(Outcome.AVAILABLE), now)
    planner.observe(twin, ProbeResult(Outcome.AVAILABLE), now)
    ran = []
    for minute in range(0, 120):
        at = now + timedelta(minutes=minute)
        for t, scheduled in planner.due(at):
            ran.append((t.id, scheduled))
            planner.observe(t, ProbeResult(Outcome.AVAILABLE), at, followup=True)
    # At most 6 per host per hour, whatever the number of targets on it.
    assert len(ran) == 6 and planner.skipped == 6
    assert all(s.minute % 10 == 0 for _, s in ran)
    # A follow-up finding no slot ends the window; a follow-up never arms one.
    planner = FollowupPlanner()
    planner.observe(target, ProbeResult(Outcome.AVAILABLE), now)
    (first,) = planner.due(now + timedelta(minutes=10))
    planner.observe(target, ProbeResult(Outcome.NO_SLOT), now, followup=True)
    assert planner.next_at() is None
    planner.observe(target, ProbeResult(Outcome.AVAILABLE), now, followup=True)
    assert planner.next_at() is None
    # An announced release arms a window from its instant.
    soon = now + timedelta(hours=2)
    planner.observe(target, ProbeResult(Outcome.NO_SLOT, release_next_at=soon), now)
    assert planner.next_at() == soon + timedelta(minutes=2)


def test_followup_refused_on_captcha_first_targets(tmp_path: Path) -> None:
    path = targets_file(tmp_path, "http://127.0.0.1:9", 120, True)
    doc = yaml.safe_load(path.read_text("utf-8"))
    target = doc["departments"][0]["targets"][0]
    target["platform"] = "rdv_prefecture"
    target["url"] = "https://www.rdv-prefecture.interieur.gouv.fr/rdvpref/reservation/demarche/1/"
    del target["options"]
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    with pytest.raises(Exception, match="followup"):
        load_config(path)


# -- done when: a simulated month --------------------------------------------------------
def test_simulated_month_survival_contains_truth(sqlite_url: str, tmp_path: Path) -> None:
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    run = run_month(
        tmp_path,
        engine,
        interval_minutes=120,
        followup={"every_minutes": 10, "for_minutes": 60},
        user_agent=UA,
    )
    measured, truth, conduct = run.measured, run.truth, run.conduct
    assert conduct["violations"] == []
    assert max(conduct["max_in_flight"].values()) == 1
    assert len(truth) == 8
    observed = [s for s in measured if not s.missed]
    assert len(observed) >= 3, measured  # hourly looks catch some batches
    for s in observed:
        # The batch this release stands for: published within its uncertainty.
        (batch,) = run.batch_of(s)
        assert s.contains(batch.survival_seconds), (s, batch.truth())
    assert run.contained()
    # Follow-ups made the intervals shorter than the regular interval (2 h), most of
    # them to the follow-up step (10 min), plus the inference's own uncertainty.
    bounded = [s for s in observed if s.high is not None]
    widths = [s.high - s.low - (s.uncertainty_seconds or 0) for s in bounded]
    assert bounded and all(w < 7200 for w in widths), widths
    assert sum(1 for w in widths if w <= 600) * 2 >= len(widths), widths
    with Session(engine) as session:
        marked = session.scalars(select(Probe).where(Probe.followup.is_(True))).all()
        regular = session.scalars(select(Probe).where(Probe.followup.is_(False))).all()
    assert marked and all(p.scheduled_at is not None for p in marked)
    assert len(regular) == 28 * 12  # the regular schedule, untouched by follow-ups
    # No more than 6 follow-ups per host in any hour.
    stamps = sorted(p.started_at for p in marked)
    assert all(sum(1 for t in stamps if a <= t < a + timedelta(hours=1)) <= 6 for a in stamps)
    (summary,) = [x for x in summarize(measured) if x.month == "2026-03"]
    assert summary.observed == len([s for s in observed if s.published_at.month == 3])

    # Open data: releases.csv and survival.csv, in a package frictionless validates.
    from frictionless import validate

    export_all(engine, tmp_path / "export")
    report = validate(str(tmp_path / "export" / "datapackage.json"))
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])
    with (tmp_path / "export" / "releases.csv").open(encoding="utf-8") as fh:
        exported = list(csv.DictReader(fh))
    assert len(exported) == len(measured)
    assert {r["source"] for r in exported} == {"inferred"}
    with (tmp_path / "export" / "probes.csv").open(encoding="utf-8") as fh:
        assert sum(r["followup"] == "True" for r in csv.DictReader(fh)) == len(marked)
    # The department page's section: grid, chart with its table, method in French.
    sections = site_sections(engine, MONTH_START + timedelta(days=28))
    html = (
        environment()
        .get_template("site/_mises_en_ligne.html")
        .render(releases=sections["95"], code="95")
    )
    assert "Mises en ligne de créneaux" in html and "<svg" in html
    assert "mardi" in html and "Comment c'est mesuré" in html
    # The built site: the department page carries the section, the feeds are published.
    index = build_site(
        engine,
        tmp_path / "site",
        SiteContext(simulated=True, built_at=MONTH_START + timedelta(days=28)),
    )
    page = (index.parent / "departements" / "95.html").read_text("utf-8")
    assert 'id="mises-en-ligne"' in page
    assert "Mises en ligne de créneaux" in page and "mises-en-ligne-95.ics" in page
    assert (index.parent / "mises-en-ligne.ics").read_text("utf-8").startswith("BEGIN:VCALENDAR")
    assert "censurée par intervalle" in (index.parent / "methodologie.html").read_text("utf-8")
    engine.dispose()


# -- a restart inside a follow-up window -----------------------------------------------
def _life(
    planner: FollowupPlanner,
    engine: Engine,
    evidence: EvidenceStore,
    outcome_of: dict[str, Outcome],
    start: datetime,
    end: datetime,
) -> list[tuple[str, datetime]]:
    """What the daemon's follow-up loop does from `start` to `end` (a look each minute):
    the due follow-ups stored as the sweep stores them, and observed."""
    ran = []
    at = start
    while at < end:
        for target, scheduled in planner.due(at):
            result = ProbeResult(outcome_of[target.id])
            record = probe_record(
                target.id, at, result, scheduled_at=scheduled, adapter_version="t", followup=True
            )
            save_probe(engine, evidence, record)
            planner.observe(target, result, at, followup=True)
            ran.append((target.id, scheduled))
        at += timedelta(minutes=1)
    return ran


@pytest.mark.parametrize(
    ("killed", "restarted", "resumed"),
    [
        (25, 25, [30, 40]),  # restarted between two instants: the next ones, in time
        (29, 32, [30, 40]),  # 10:30 missed by 2 minutes: taken at once, then 10:40
        (29, 37, [40, 50]),  # 10:30 missed by 7 minutes (over half a step): not made up
    ],
)
def test_restart_inside_a_window_resumes_its_follow_ups_within_the_budget(
    engine: Engine, tmp_path: Path, killed: int, restarted: int, resumed: list[int]
) -> None:
    """Two targets on one host (8 follow-ups an hour between them) and one elsewhere see
    slots at 10:00; the third's first follow-up finds none. The daemon is killed, then
    restarted: the planner rebuilt from the probes alone runs the remaining follow-ups of
    both windows at their instants, and stops where the host's budget, partly spent
    before the kill, is used up. Before: a restart forgot every window (nothing ran), and
    a planner that kept the windows but not the budget would have run 8 more."""
    config = load_config(targets_file(tmp_path, "http://127.0.0.1:9", 120, {"per_host_hour": 8}))
    (target,) = config.targets
    twin = Target(**{**target.__dict__, "id": "95-twin"})  # same host, same budget
    other = Target(
        **{**target.__dict__, "id": "95-other", "url": "http://127.0.0.1:10/booking/create/1"}
    )
    assert twin.gate_key == target.gate_key != other.gate_key
    sync_targets(engine, [target, twin, other], MONTH_START)
    evidence = EvidenceStore(tmp_path / "evidence")
    outcome_of = {
        target.id: Outcome.AVAILABLE,
        twin.id: Outcome.AVAILABLE,
        other.id: Outcome.NO_SLOT,
    }
    t0 = MONTH_START + timedelta(hours=10)

    def at(minute: int) -> datetime:
        return t0 + timedelta(minutes=minute)

    first = FollowupPlanner()
    for t in (target, twin, other):
        save_probe(engine, evidence, _record(t.id, t0, ProbeResult(Outcome.AVAILABLE)))
        first.observe(t, ProbeResult(Outcome.AVAILABLE), t0)
    before = _life(first, engine, evidence, outcome_of, t0, at(killed))
    assert sorted(before) == sorted(
        [(tid, at(m)) for tid in (target.id, twin.id) for m in (10, 20)] + [(other.id, at(10))]
    )

    second = FollowupPlanner()
    second.resume(engine, [target, twin, other], at(restarted))
    assert set(second.windows) == {target.id, twin.id}  # the third's window had ended
    after = _life(second, engine, evidence, outcome_of, at(restarted), at(120))
    assert sorted(after) == sorted((tid, at(m)) for tid in (target.id, twin.id) for m in resumed)
    assert second.skipped > 0  # the rest of the windows fell beyond the budget
    with Session(engine) as session:
        stamps = sorted(
            session.scalars(
                select(Probe.started_at).where(
                    Probe.followup.is_(True), Probe.target_id != other.id
                )
            )
        )
    assert len(stamps) == 8
    assert all(sum(1 for s in stamps if a <= s < a + timedelta(hours=1)) <= 8 for a in stamps)


def test_an_interrupted_follow_up_stays_a_follow_up(engine: Engine, tmp_path: Path) -> None:
    """A follow-up cut short (kill -9, the stop grace run out) is stored as an
    `error/interrupted` follow-up: out of the rollups like the follow-up it was, and
    charged to its host's budget when a daemon resumes. Before: a regular error probe,
    counted in coverage and forgotten by the budget."""
    from observatoire.db.models import ProbeDay
    from observatoire.record.store import recover_interrupted, start_attempt

    config = load_config(targets_file(tmp_path, "http://127.0.0.1:9", 120, {"per_host_hour": 1}))
    (target,) = config.targets
    sync_targets(engine, [target], MONTH_START)
    t0 = MONTH_START + timedelta(hours=10)
    start_attempt(engine, target.id, "test:1", t0, "legacy_booking", "t", t0, followup=True)
    assert recover_interrupted(engine, t0 + timedelta(minutes=1), holder="test:1") == [target.id]
    with Session(engine) as session:
        (probe,) = session.scalars(select(Probe))
        assert (probe.outcome, probe.detail, probe.followup) == ("error", "interrupted", True)
        assert session.scalars(select(ProbeDay)).all() == []
    planner = FollowupPlanner()
    planner.resume(engine, [target], t0 + timedelta(minutes=5))
    planner.observe(target, ProbeResult(Outcome.AVAILABLE), t0 + timedelta(minutes=5))
    assert planner.due(t0 + timedelta(minutes=15)) == [] and planner.skipped == 1
