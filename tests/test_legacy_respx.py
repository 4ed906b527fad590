"""The legacy adapter's flow and HTTP edge cases, on mocked HTTP (respx).

Integration against the live simulator is in test_legacy_simulator.py; these tests pin
the parsing and the mapping of every odd answer to the right outcome.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import respx

from observatoire.adapters import ProbeContext, get_adapter
from observatoire.clock import VirtualClock
from observatoire.config import Target
from observatoire.outcomes import Outcome
from observatoire.robot.politeness import PolitePolicy

PAGES = Path(__file__).parent / "fixtures" / "legacy_booking"
SITE = "https://www.hauts-de-seine.gouv.fr"
BASE = f"{SITE}/booking/create/12083"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def page(name: str) -> str:
    return (PAGES / name).read_text("utf-8")


def target(planning: int | None = 14673) -> Target:
    return Target(
        id="92-remise-titre-12083",
        department="92",
        department_name="Hauts-de-Seine",
        prefecture="Nanterre",
        procedure="remise-titre",
        procedure_name="Remise",
        label="Remise",
        platform="legacy_booking",
        url=BASE,
        enabled=True,
        interval_minutes=60,
        site=None,
        options={"planning": planning, "calendar_days": 60},
    )


async def run(tgt: Target | None = None):
    policy = PolitePolicy("observatoire/test (+https://example.org)", 0.0, 5.0)
    session = policy.session()
    try:
        result = await get_adapter("legacy_booking").probe(
            tgt or target(), ProbeContext(http=session, clock=VirtualClock(NOW))
        )
    finally:
        await session.aclose()
        await policy.aclose()
    return result, session.requests_made


def flow(mock: respx.MockRouter, *, after_counter: str = "no_slot.html") -> None:
    mock.get(f"{BASE}/0").respond(
        200, html=page("conditions.html"), headers={"Set-Cookie": "eZSESSID=abc; Path=/"}
    )
    mock.post(f"{BASE}/0").respond(302, headers={"Location": f"{BASE}/1"})
    mock.get(f"{BASE}/1").respond(200, html=page("counters.html"))
    mock.post(f"{BASE}/1").respond(302, headers={"Location": f"{BASE}/2"})
    mock.get(f"{BASE}/2").respond(200, html=page(after_counter))


@respx.mock
async def test_no_slot_message_gives_no_slot() -> None:
    flow(respx.mock)
    result, requests = await run()
    assert result.outcome is Outcome.NO_SLOT
    assert requests == 5
    posted = respx.mock.calls[3].request
    assert posted.content == b"planning=14673&nextButton=Etape+suivante"
    assert posted.headers["cookie"] == "eZSESSID=abc"
    assert posted.headers["user-agent"].startswith("observatoire/")
    assert result.page and b"plage horaire" in result.page


@respx.mock
async def test_available_reads_the_calendar() -> None:
    flow(respx.mock, after_counter="result_continue.html")
    free = page("week_free.html")
    empty = page("week_empty.html")
    route = respx.mock.get(url__regex=r".*bookingserver::planning::assign::12083::14673::(\d+)$")
    route.side_effect = lambda request: httpx.Response(
        200, html=free if request.url.path.endswith("::0") else empty
    )
    result, requests = await run()
    assert result.outcome is Outcome.AVAILABLE
    assert result.first_slot_at == datetime.fromisoformat("2026-03-04T09:00:00+01:00")
    assert result.second_slot_at == datetime.fromisoformat("2026-03-06T14:30:00+01:00")
    assert result.slots_count == 2
    assert route.call_count == 9  # 60 days, a week at a time
    assert requests == 5 + 9


@respx.mock
async def test_result_inviting_to_continue_but_empty_calendar_is_unrecognized() -> None:
    flow(respx.mock, after_counter="result_continue.html")
    respx.mock.get(url__regex=r".*planning::assign.*").respond(200, html=page("week_empty.html"))
    result, _ = await run()
    assert result.outcome is Outcome.UNRECOGNIZED
    assert result.detail == "calendar_empty"


@respx.mock
async def test_new_wording_is_never_no_slot() -> None:
    flow(respx.mock, after_counter="new_wording.html")
    result, _ = await run()
    assert result.outcome is Outcome.UNRECOGNIZED


@respx.mock
async def test_counter_not_offered_is_procedure_missing() -> None:
    flow(respx.mock)
    result, requests = await run(target(planning=99999))
    assert result.outcome is Outcome.PROCEDURE_MISSING
    assert result.detail == "counter_not_offered"
    assert requests == 3  # stopped before choosing anything


@respx.mock
async def test_single_counter_form_skips_step_one() -> None:
    respx.mock.get(f"{BASE}/0").respond(200, html=page("conditions.html"))
    respx.mock.post(f"{BASE}/0").respond(302, headers={"Location": f"{BASE}/2"})
    respx.mock.get(f"{BASE}/2").respond(200, html=page("no_slot.html"))
    result, requests = await run(target(planning=None))
    assert result.outcome is Outcome.NO_SLOT
    assert requests == 3


@pytest.mark.parametrize(
    ("first_page", "outcome", "detail"),
    [
        ("retired.html", Outcome.ERROR, "target_retired"),
        ("closed.html", Outcome.ERROR, "module_closed"),
        ("overloaded.html", Outcome.BLOCKED, "overloaded"),
        ("captcha.html", Outcome.BLOCKED, "captcha"),
        ("unknown.html", Outcome.UNRECOGNIZED, "conditions_page"),
    ],
)
@respx.mock
async def test_special_pages(first_page: str, outcome: Outcome, detail: str) -> None:
    respx.mock.get(f"{BASE}/0").respond(200, html=page(first_page))
    result, _ = await run()
    assert (result.outcome, result.detail) == (outcome, detail)


@pytest.mark.parametrize(
    ("response", "outcome", "detail"),
    [
        (httpx.Response(429, headers={"Retry-After": "1"}), Outcome.BLOCKED, "http:429"),
        (
            httpx.Response(403, text="Request forbidden by administrative rules."),
            Outcome.BLOCKED,
            "http:403",
        ),
        (httpx.Response(500), Outcome.ERROR, "http:500"),
        (httpx.Response(502, html="<h1>Bad Gateway</h1>"), Outcome.ERROR, "http:502"),
        (httpx.Response(503, html="<p>Maintenance</p>"), Outcome.ERROR, "http:503"),
        (httpx.Response(404), Outcome.ERROR, "http:404"),
        (httpx.Response(200, html=""), Outcome.UNRECOGNIZED, "empty_page"),
    ],
)
@respx.mock
async def test_http_statuses(response: httpx.Response, outcome: Outcome, detail: str) -> None:
    respx.mock.get(f"{BASE}/0").mock(return_value=response)
    result, _ = await run()
    assert (result.outcome, result.detail) == (outcome, detail)


@pytest.mark.parametrize(
    ("exc", "detail"),
    [
        (httpx.ConnectTimeout("slow"), "timeout:connect"),
        (httpx.ReadTimeout("slow"), "timeout:read"),
        (httpx.ConnectError("refused"), "connect"),
        (httpx.RemoteProtocolError("peer closed"), "protocol"),
        (httpx.ReadError("reset"), "connection_reset"),
    ],
)
@respx.mock
async def test_transport_errors_are_errors(exc: Exception, detail: str) -> None:
    respx.mock.get(f"{BASE}/0").mock(side_effect=exc)
    result, _ = await run()
    assert (result.outcome, result.detail) == (Outcome.ERROR, detail)


@respx.mock
async def test_redirect_loop_is_an_error() -> None:
    respx.mock.get(f"{BASE}/0").respond(302, headers={"Location": f"{BASE}/x"})
    respx.mock.get(f"{BASE}/x").respond(302, headers={"Location": f"{BASE}/0"})
    result, requests = await run()
    assert (result.outcome, result.detail) == (Outcome.ERROR, "redirect_loop")
    assert requests <= 10


@respx.mock
async def test_calendar_blocked_midway_is_blocked_not_available() -> None:
    flow(respx.mock, after_counter="result_continue.html")
    respx.mock.get(url__regex=r".*planning::assign.*").respond(403)
    result, _ = await run()
    assert result.outcome is Outcome.BLOCKED


@respx.mock
async def test_mislabelled_charset_does_not_become_no_slot() -> None:
    flow(respx.mock)
    latin1 = page("no_slot.html").encode("latin-1", errors="replace")
    respx.mock.get(f"{BASE}/2").respond(
        200, content=latin1, headers={"Content-Type": "text/html; charset=utf-8"}
    )
    result, _ = await run()
    assert result.outcome is Outcome.UNRECOGNIZED


@respx.mock
async def test_latin1_declared_only_in_meta_is_read() -> None:
    """Old eZ Publish sites: ISO-8859-1 declared only in <meta charset>, none in the
    Content-Type; the message must still be recognised."""
    flow(respx.mock)
    latin1 = page("no_slot.html").replace('charset="utf-8"', 'charset="iso-8859-1"')
    latin1 = latin1.replace("\u2019", "'")  # no curly apostrophe in ISO-8859-1
    respx.mock.get(f"{BASE}/2").respond(
        200,
        content=latin1.encode("iso-8859-1", errors="replace"),
        headers={"Content-Type": "text/html"},
    )
    result, _ = await run()
    assert (result.outcome, result.detail) == (Outcome.NO_SLOT, "")


@respx.mock
async def test_redirect_to_another_forms_result_is_not_no_slot() -> None:
    flow(respx.mock)
    other = f"{SITE}/booking/create/12249/2"
    respx.mock.post(f"{BASE}/1").respond(302, headers={"Location": other})
    respx.mock.get(other).respond(200, html=page("no_slot.html"))
    result, _ = await run()
    assert (result.outcome, result.detail) == (Outcome.UNRECOGNIZED, "other_form")
    assert result.final_url == other


@respx.mock
async def test_no_calendar_right_after_the_conditions() -> None:
    flow(respx.mock, after_counter="no_slot.html")
    respx.mock.get(f"{BASE}/1").respond(200, html=page("no_calendar.html"))
    result, requests = await run()
    assert (result.outcome, result.detail) == (Outcome.NO_SLOT, "no_calendar")
    assert requests == 3  # nothing chosen, nothing posted after the conditions


@respx.mock
async def test_step4_without_counter_is_available_without_a_date() -> None:
    respx.mock.get(f"{BASE}/0").respond(200, html=page("conditions.html"))
    respx.mock.post(f"{BASE}/0").respond(302, headers={"Location": f"{BASE}/4"})
    respx.mock.get(f"{BASE}/4").respond(200, html=page("step4.html"))
    result, requests = await run(target(planning=None))
    assert (result.outcome, result.detail) == (Outcome.AVAILABLE, "first_free_slot_offered")
    assert result.first_slot_at is None and requests == 3
    assert not any(
        c.request.method == "POST" and c.request.url.path.endswith("/4") for c in respx.mock.calls
    )


@respx.mock
async def test_cloudflare_403_is_blocked_with_its_own_detail() -> None:
    respx.mock.get(f"{BASE}/0").respond(403, html=page("cloudflare_challenge.html"))
    result, _ = await run()
    assert (result.outcome, result.detail) == (Outcome.BLOCKED, "cloudflare_challenge")


@pytest.mark.parametrize("adapter", ["legacy_booking", "demarches_simplifiees", "eappointment"])
def test_classify_command_with_url_on_every_fixture(adapter: str) -> None:
    """`observatoire classify --adapter NAME [--url URL] FILE`, as an operator runs it on
    saved pages: the outcome and detail of each contract fixture."""
    import json

    import yaml
    from typer.testing import CliRunner

    from observatoire.cli import app

    folder = PAGES.parent / adapter
    expected = yaml.safe_load((folder / "expected.yaml").read_text("utf-8"))
    for name, want in expected.items():
        args = ["classify", "--adapter", adapter, str(folder / name)]
        if "url" in want:
            args += ["--url", want["url"]]
        run_ = CliRunner().invoke(app, args)
        assert run_.exit_code == 0, (name, run_.output)
        got = json.loads(run_.stdout)
        assert got["outcome"] == want["outcome"], (name, got)
        if "detail" in want:
            assert got["detail"] == want["detail"], (name, got)
