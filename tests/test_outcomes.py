"""`Outcome` is the one home of outcome knowledge: French labels, SQL lists, the CHECK
constraint, La Cimade's classes (the Python rule and the SQL one, from one table), the
`ProbeResult` constructors and the Paris calendar the figures are cut by."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from observatoire.clock import (
    paris_date,
    paris_day_bounds,
    paris_midnight,
    paris_month,
    paris_month_bounds,
)
from observatoire.db.models import Probe
from observatoire.outcomes import (
    CIMADE,
    CIMADE_LABELS,
    NO_WAY_TO_BOOK,
    OUTCOMES_FR,
    VALID_OUTCOMES,
    Outcome,
    ProbeResult,
    cimade_class,
    sql_in,
    sql_list,
)
from observatoire.record.rollups import rebuild

from .factories import add_probe, add_target

REPO = Path(__file__).resolve().parents[1]
T = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


def test_every_outcome_has_a_french_label_and_sql_lists_follow_the_enum() -> None:
    assert set(OUTCOMES_FR) == set(Outcome)
    assert OUTCOMES_FR["no_slot"] == Outcome.NO_SLOT.label_fr == "aucun créneau"
    assert sql_list(VALID_OUTCOMES) == "'available', 'no_slot', 'procedure_missing', 'form_open'"
    assert sql_in("p.outcome", NO_WAY_TO_BOOK) == "p.outcome IN ('no_slot', 'procedure_missing')"
    check = next(
        c
        for c in Probe.__table__.constraints
        if getattr(c, "name", "") and "outcome_known" in str(c.name)
    )
    assert str(check.sqltext) == sql_in("outcome", Outcome)


#: Modules whose SQL or comparisons once spelled outcome names by hand.
DERIVED = [
    "stats.py",
    "record/rollups.py",
    "record/retention.py",
    "health.py",
    "publish/export.py",
    "record/fingerprint.py",
    "publish/site.py",
    "publish/site_queries.py",
    "publish/formatting.py",
]
NAMES = "|".join(o.value for o in Outcome)


@pytest.mark.parametrize("module", DERIVED)
def test_no_module_spells_an_outcome_in_sql(module: str) -> None:
    source = (REPO / "observatoire" / module).read_text("utf-8")
    assert re.findall(rf"'({NAMES})'", source) == []  # SQL literals: from the enum
    assert re.findall(rf"== \"({NAMES})\"|\[\"({NAMES})\"", source) == []


def test_site_templates_receive_outcome_words_from_python() -> None:
    for template in sorted((REPO / "templates" / "site").glob("*.html")):
        found = re.findall(rf"[\"']({NAMES})[\"']", template.read_text("utf-8"))
        assert found == [], template.name


# -- La Cimade's classes: one table, two rules that agree --------------------------------
CASES = [
    # (outcome, days to the first slot, days to the second slot)
    (Outcome.NO_SLOT, None, None),
    (Outcome.PROCEDURE_MISSING, None, None),
    (Outcome.AVAILABLE, 3, 30),  # two dates within a month, at the bound
    (Outcome.AVAILABLE, 3, 30.0001),  # the second just beyond: one date
    (Outcome.AVAILABLE, 30, None),
    (Outcome.AVAILABLE, 30.0001, 31),
    (Outcome.AVAILABLE, 60, None),
    (Outcome.AVAILABLE, 60.0001, None),
    (Outcome.AVAILABLE, 200, 201),
    (Outcome.AVAILABLE, None, None),  # no date observable: outside the classes
    (Outcome.FORM_OPEN, None, None),
    (Outcome.ERROR, None, None),
]


def test_cimade_table_is_in_la_cimades_order() -> None:
    assert list(CIMADE_LABELS) == [
        "two_dates_within_month",
        "one_date_within_month",
        "first_date_1_to_2_months",
        "first_date_beyond_2_months",
        "no_date",
    ]
    assert CIMADE[-1].slot is None and CIMADE[-2].within_days is None


def test_python_and_sql_classes_agree_at_every_bound(engine: Engine) -> None:
    expected = []
    with Session(engine) as s, s.begin():
        add_target(s, "92-a", "92", "Hauts-de-Seine")
        for i, (outcome, first, second) in enumerate(CASES):
            started = T + timedelta(hours=i)
            at = [started + timedelta(days=d) if d is not None else None for d in (first, second)]
            expected.append(cimade_class(outcome, started, at[0], at[1]))
            add_probe(
                s,
                "92-a",
                started,
                outcome.value,
                first_slot_at=at[0],
                second_slot_at=at[1],
            )
    assert [e[0] if e else None for e in expected] == [
        "no_date",
        "no_date",
        "two_dates_within_month",
        "one_date_within_month",
        "one_date_within_month",
        "first_date_1_to_2_months",
        "first_date_1_to_2_months",
        "first_date_beyond_2_months",
        "first_date_beyond_2_months",
        None,
        None,
        None,
    ]
    rebuild(engine)  # the SQL rule
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT cimade, lead_days, probes FROM probe_leads ORDER BY cimade, lead_days")
        ).all()
    python: dict[tuple[str, int], int] = {}
    for found in expected:
        if found is not None:
            python[found] = python.get(found, 0) + 1
    assert {(c, d): n for c, d, n in rows} == python


# -- ProbeResult constructors -------------------------------------------------------------
def test_with_slots_sorts_and_counts() -> None:
    late, early, middle = T + timedelta(days=9), T + timedelta(days=1), T + timedelta(days=4)
    result = ProbeResult.with_slots({late, early, middle})
    assert result.outcome is Outcome.AVAILABLE
    assert (result.first_slot_at, result.second_slot_at, result.slots_count) == (early, middle, 3)
    windowed = ProbeResult.with_slots([late, early], count=1, page=b"x")
    assert windowed.slots_count == 1 and windowed.page == b"x"
    undated = ProbeResult.with_slots([], "undated")
    assert (undated.first_slot_at, undated.slots_count, undated.detail) == (None, None, "undated")


def test_from_response_keeps_status_address_and_body() -> None:
    response = httpx.Response(
        200, content=b"<p>ok</p>", request=httpx.Request("GET", "http://127.0.0.1/a")
    )
    result = ProbeResult.from_response(Outcome.NO_SLOT, "empty_week", response)
    assert (result.http_status, result.final_url, result.page) == (
        200,
        "http://127.0.0.1/a",
        b"<p>ok</p>",
    )
    with_slots = ProbeResult.with_slots([T], response=response)
    assert with_slots.http_status == 200 and with_slots.first_slot_at == T


# -- the Paris calendar -----------------------------------------------------------------
def test_paris_days_and_months_follow_dst() -> None:
    start, end = paris_day_bounds(date(2026, 3, 29))  # clocks go forward: 23 hours
    assert start == datetime(2026, 3, 28, 23, 0, tzinfo=UTC) and end - start == timedelta(hours=23)
    start, end = paris_day_bounds(date(2026, 10, 25))  # and back: 25 hours
    assert end - start == timedelta(hours=25)
    assert paris_midnight(date(2026, 7, 1)) == datetime(2026, 6, 30, 22, 0, tzinfo=UTC)
    late = datetime(2026, 3, 31, 22, 30, tzinfo=UTC)  # 1 April 00:30 in Paris
    assert paris_date(late) == date(2026, 4, 1) and paris_month(late) == "2026-04"
    first, after = paris_month_bounds(2026, 12)
    assert (first, after) == (
        datetime(2026, 11, 30, 23, 0, tzinfo=UTC),
        datetime(2026, 12, 31, 23, 0, tzinfo=UTC),
    )
