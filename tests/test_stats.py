"""Monthly statistics on hand-computed cases: Europe/Paris month boundaries (DST
included), coverage outcomes kept apart, targets without any valid probe.

The hand-counted databases (`filled`, `week`, `mixed`) live in conftest.py: the export
and site tests read the same ones."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pandas as pd
import pytest
from sqlalchemy import Engine

from observatoire.stats import episodes, monthly_stats, paris_months, wilson


def row(frame: pd.DataFrame, **keys: object) -> pd.Series:
    mask = True
    for k, v in keys.items():
        mask = mask & (frame[k] == v)
    found = frame[mask]
    assert len(found) == 1, found
    return found.iloc[0]


def test_department_months(filled: Engine) -> None:
    frame = monthly_stats(filled, "department")
    march = row(frame, department="92", month="2026-03")
    assert march["probes"] == 8
    assert (march["no_slot"], march["available"], march["procedure_missing"]) == (4, 1, 1)
    assert (march["blocked"], march["error"], march["unrecognized"]) == (1, 1, 0)
    assert march["valid"] == 6 and march["no_way"] == 5
    assert march["share_no_way"] == pytest.approx(5 / 6)
    low, high = wilson(5, 6)
    assert march["share_low"] == pytest.approx(low) and march["share_high"] == pytest.approx(high)
    assert bool(march["small_sample"]) is True
    april = row(frame, department="92", month="2026-04")
    assert april["available"] == 1 and april["share_no_way"] == 0
    corsica = row(frame, department="2A", month="2026-03")
    assert corsica["valid"] == 0 and math.isnan(corsica["share_no_way"])
    assert corsica["probes"] == 2  # coverage failures stay visible
    assert set(frame["month"]) == {"2026-03", "2026-04"}


def test_department_procedure_and_national(filled: Engine) -> None:
    by_proc = monthly_stats(filled, "department_procedure")
    natu = row(by_proc, department="92", procedure="naturalisation", month="2026-03")
    assert (natu["valid"], natu["no_way"], natu["blocked"]) == (1, 1, 1)
    national = monthly_stats(filled, "national")
    march = row(national, month="2026-03")
    assert march["probes"] == 10  # 11 probes, one of them in April (Paris time)
    assert march["valid"] == 6 and march["no_way"] == 5


def test_empty_database_gives_empty_frame(engine: Engine) -> None:
    assert monthly_stats(engine, "department").empty


def test_wilson_known_value() -> None:
    low, high = wilson(4, 5)
    assert low == pytest.approx(0.3755, abs=1e-4)
    assert high == pytest.approx(0.9638, abs=1e-4)
    assert wilson(0, 10)[0] == 0.0
    assert all(math.isnan(x) for x in wilson(0, 0))


def test_paris_months_bounds_follow_dst() -> None:
    months = paris_months(datetime(2026, 2, 15, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC))
    labels = [m.label for m in months]
    assert labels[0] == "2026-02" and labels[-1] == "2026-11" and len(labels) == 10
    april = months[2]
    assert april.start == datetime(2026, 3, 31, 22, 0, tzinfo=UTC)  # CEST
    november = months[-1]
    assert november.start == datetime(2026, 10, 31, 23, 0, tzinfo=UTC)  # CET
    december_2025 = paris_months(
        datetime(2025, 12, 31, 23, 30, tzinfo=UTC), datetime(2025, 12, 31, 23, 30, tzinfo=UTC)
    )
    assert [m.label for m in december_2025] == ["2026-01"]


def test_days_leads_classes_episodes_and_coverage(week: Engine) -> None:
    frame = monthly_stats(week, "target")
    assert len(frame) == 1
    r = frame.iloc[0]
    assert (r["probes"], r["valid"], r["no_way"], r["error"]) == (8, 7, 3, 1)
    assert (r["days_observed"], r["days_without_slot"]) == (6, 2)
    assert (r["lead_days_median"], r["lead_days_p90"]) == (10, 90)
    assert (
        r["cimade_two_dates_within_month"],
        r["cimade_one_date_within_month"],
        r["cimade_first_date_1_to_2_months"],
        r["cimade_first_date_beyond_2_months"],
        r["cimade_no_date"],
    ) == (1, 1, 1, 1, 3)
    assert r["longest_episode_days"] == pytest.approx(1.0)
    # From 1 March 00:00 (Paris) to the last probe (7 March 10:00 Paris), hourly.
    assert r["probes_expected"] == 154
    assert r["coverage"] == pytest.approx(8 / 154)


def test_episode_table(week: Engine) -> None:
    eps = episodes(week, now=datetime(2026, 3, 8, 9, 0, tzinfo=UTC))
    assert list(eps["probes"]) == [1, 1, 1]
    assert list(eps["ongoing"]) == [False, False, True]
    assert eps.iloc[1]["start"] == datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
    assert eps.iloc[1]["end_at"] == datetime(2026, 3, 4, 9, 0, tzinfo=UTC)
    assert eps.iloc[1]["duration_days"] == pytest.approx(1.0)
    assert eps.iloc[2]["duration_days"] == pytest.approx(1.0)  # ongoing, to `now`


def test_unreliable_target_months_at_the_boundary(mixed: Engine) -> None:
    targets = monthly_stats(mixed, "target")
    eleven = row(targets, target_id="92-a", month="2026-03")
    assert eleven["unrecognized_share"] == pytest.approx(0.11)
    assert bool(eleven["unreliable"]) is True
    assert (eleven["target_months"], eleven["unreliable_target_months"]) == (1, 1)
    ten = row(targets, target_id="92-b", month="2026-03")
    assert ten["unrecognized_share"] == pytest.approx(0.10)
    assert bool(ten["unreliable"]) is False and ten["unreliable_target_months"] == 0
    # The share is of every probe, blocked ones included: 10 / 100, not 10 / 95.
    corsica = row(targets, target_id="2a-c", month="2026-03")
    assert bool(corsica["unreliable"]) is False
    assert bool(row(targets, target_id="2a-c", month="2026-04")["unreliable"]) is True

    deps = monthly_stats(mixed, "department")
    hauts = row(deps, department="92", month="2026-03")
    assert (hauts["target_months"], hauts["unreliable_target_months"]) == (2, 1)
    assert hauts["unrecognized_share"] == pytest.approx(21 / 200)
    assert bool(hauts["unreliable"]) is True
    national = monthly_stats(mixed, "national")
    march = row(national, month="2026-03")
    assert (march["target_months"], march["unreliable_target_months"]) == (3, 1)
    april = row(national, month="2026-04")
    assert (april["target_months"], april["unreliable_target_months"]) == (1, 1)


def test_reliable_months_are_not_flagged(filled: Engine) -> None:
    frame = monthly_stats(filled, "department")
    march = row(frame, department="92", month="2026-03")
    assert bool(march["unreliable"]) is False and march["unreliable_target_months"] == 0
    assert march["target_months"] == 2
    # 2A in March: 1 unrecognized out of 2 probes (50 %): unreliable.
    corsica = row(frame, department="2A", month="2026-03")
    assert bool(corsica["unreliable"]) is True and corsica["unreliable_target_months"] == 1
