"""The simulator itself: faithful pages, determinism, conduct counters, scenarios."""

from __future__ import annotations

import contextlib
import re
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import ValidationError

from observatoire.clock import VirtualClock
from observatoire.simulator import RunningSimulator, start_simulator
from observatoire.simulator.availability import slot_state
from observatoire.simulator.scenario import Profile, Scenario, load_scenario

from .conftest import T0

LEGACY = "/www.hauts-de-seine.gouv.fr/booking/create/12083"


def client(sim: RunningSimulator) -> httpx.Client:
    return httpx.Client(base_url=sim.base_url, headers={"User-Agent": "observatoire/test"})


def test_legacy_flow_is_faithful(simulator: RunningSimulator) -> None:
    c = client(simulator)
    page = c.get(f"{LEGACY}/0")
    assert page.status_code == 200
    assert 'id="FormBookingCreate"' in page.text and 'id="condition"' in page.text
    assert "Cordonnées personnelles" in page.text  # the original's typo
    assert "eZSESSID=" in page.headers["set-cookie"]
    step = c.post(f"{LEGACY}/0", data={"condition": "on", "nextButton": "x"})
    assert (step.status_code, step.headers["location"]) == (302, f"{LEGACY}/1")
    counters = c.get(f"{LEGACY}/1").text
    assert "Choix de la nature du rendez-vous" in counters
    assert re.findall(r'name="planning" id="planning(\d+)"', counters) == [
        "14673",
        "14806",
        "14932",
    ]
    # A single-counter form skips the counter choice.
    single = "/pprdv.interieur.gouv.fr/booking/create/948"
    c.get(f"{single}/0")
    assert c.post(f"{single}/0", data={"condition": "on"}).headers["location"] == f"{single}/2"
    result = c.get(f"{single}/2").text
    assert "Vérification de disponibilité" in result
    assert simulator.state.conduct.report()["violations"] == []


def test_reaching_forbidden_steps_is_a_violation(simulator: RunningSimulator) -> None:
    c = client(simulator)
    c.get(f"{LEGACY}/0")
    c.post(f"{LEGACY}/0", data={"condition": "on"})
    c.post(f"{LEGACY}/1", data={"planning": "14932"})
    c.get(f"{LEGACY}/3")
    c.post("/www.hauts-de-seine.gouv.fr/ezjscore/call/bookingserver::captcha")
    c.post(f"{LEGACY}/5", data={"eZBookingAdditionalField_value_1": "x", "email": "a@b.c"})
    violations = simulator.state.conduct.report()["violations"]
    assert any("past the availability result" in v for v in violations)
    assert any("captcha endpoint" in v for v in violations)
    assert any("personal data" in v for v in violations)


def test_rdv_prefecture_captcha_paths(simulator: RunningSimulator) -> None:
    c = client(simulator)
    base = "/www.rdv-prefecture.interieur.gouv.fr/rdvpref/reservation/demarche/4418"
    assert "Prendre un rendez-vous" in c.get(f"{base}/").text
    cgu = c.get(f"{base}/cgu/").text
    # The 2025 widget (more in tests/test_rdv_prefecture.py): the page's script asks the
    # captcha service (its own host) for the image and its id, with the page's token.
    assert 'class="captcha' in cgu and 'id="captchaFormulaireExtInput"' in cgu

    def new_captcha(page: str) -> str:
        endpoint, token = re.search(r'endpoint-url="([^"]+)" [^>]*token="([^"]+)"', page).groups()
        got = c.get(
            endpoint,
            params={"get": "image", "c": "captchaFR"},
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        assert got["imageb64"].startswith("data:image/png;base64,")
        return str(got["uuid"])

    captcha_id = new_captcha(cgu)
    answer = simulator.state.rdvpref.answer(captcha_id)
    assert answer not in cgu  # never readable from the page
    wrong = c.post(
        f"{base}/_validerCaptcha",
        data={"captchaId": captcha_id, "captchaUsercode": "NOPE"},
        follow_redirects=True,
    )
    assert "error=invalidCaptcha" in str(wrong.url) and "est incorrect" in wrong.text
    captcha_id = new_captcha(wrong.text)
    hook = c.get(f"/_sim/captcha/{captcha_id}").json()["answer"]
    slots = c.post(
        f"{base}/_validerCaptcha",
        data={"captchaId": captcha_id, "captchaUsercode": hook.lower()},
        follow_redirects=True,
    )
    assert str(slots.url).endswith("/creneau/")
    assert "Aucun créneau disponible" in slots.text or 'id="trhId_' in slots.text
    assert simulator.state.conduct.report()["violations"] == []
    c.get(f"{base}/informations/")
    assert any("personal data page" in v for v in simulator.state.conduct.report()["violations"])


def test_release_banners_only_where_the_platform_script_shows_them(
    simulator: RunningSimulator, clock: VirtualClock
) -> None:
    """The front-end script (`rdv-choix-tranche`) writes the "mise en ligne" lines only
    when the calendar is not displayed or on the last reachable week: not beside slots,
    "Prochaine disponibilité" or an ordinary empty week."""
    (site,) = simulator.state.scenario.rdv_prefecture_sites
    assert site.banners
    c = client(simulator)
    base = "/www.rdv-prefecture.interieur.gouv.fr/rdvpref/reservation/demarche/1380"
    clock.set(T0 - timedelta(minutes=55))  # Monday 09:05 in Paris: the batch is on offer
    cgu = c.get(f"{base}/cgu/").text
    endpoint, token = re.search(r'endpoint-url="([^"]+)" [^>]*token="([^"]+)"', cgu).groups()
    captcha_id = c.get(
        endpoint,
        params={"get": "image", "c": "captchaFR"},
        headers={"Authorization": f"Bearer {token}"},
    ).json()["uuid"]
    answer = simulator.state.rdvpref.answer(captcha_id)
    offered = c.post(
        f"{base}/_validerCaptcha",
        data={"captchaId": captcha_id, "captchaUsercode": answer},
        follow_redirects=True,
    ).text
    assert "Prochaine disponibilité le" in offered and "mise en ligne" not in offered
    clock.set(T0 - timedelta(minutes=30))  # 09:30: the batch is gone
    seen = {}
    for view in ("empty_week", "last_week", "not_displayed"):
        site.empty_view = view
        seen[view] = c.get(f"{base}/creneau/").text
        assert simulator.state.truth_records()[-1].view == view
    assert "mise en ligne" not in seen["empty_week"]
    for view in ("last_week", "not_displayed"):
        assert "Dernière mise en ligne de rendez-vous : le 02/03/2026 à 09:00" in seen[view]
        assert "Prochaine mise en ligne de nouveaux rendez-vous : le 09/03/2026" in seen[view]


def test_same_seed_same_ground_truth() -> None:
    def run() -> list[tuple[str, str | None, int | None]]:
        clock = VirtualClock(T0)
        scenario = load_scenario().model_copy(update={"anchor": T0})
        with start_simulator(scenario, clock) as sim:
            c = client(sim)
            for hours in range(0, 72, 5):
                clock.set(T0 + timedelta(hours=hours))
                c.cookies.clear()
                c.get(f"{LEGACY}/0")
                c.post(f"{LEGACY}/0", data={"condition": "on"})
                c.post(f"{LEGACY}/1", data={"planning": "14806"})
                c.get(f"{LEGACY}/2")
            return [(r.state, r.first_slot, r.slots) for r in sim.state.truth_records()]

    first, second = run(), run()
    assert first == second
    assert {s for s, _, _ in first} >= {"open", "no_slot"}


def test_release_events_and_hour_factors() -> None:
    profile = Profile.model_validate(
        {
            "open_probability": 0.0,
            "releases": [{"weekday": 0, "time": "09:00", "minutes": 20}],
        }
    )
    monday_9h05 = datetime(2026, 3, 2, 8, 5, tzinfo=UTC)  # 09:05 in Paris
    assert slot_state(1, "k", monday_9h05, profile).open
    assert not slot_state(1, "k", monday_9h05 + timedelta(minutes=20), profile).open
    assert not slot_state(1, "k", monday_9h05 + timedelta(days=1), profile).open
    night_off = Profile.model_validate(
        {"open_probability": 1.0, "hour_factor": [0.0] * 8 + [1.0] * 16}
    )
    assert not slot_state(1, "k", datetime(2026, 3, 2, 2, tzinfo=UTC), night_off).open
    assert slot_state(1, "k", datetime(2026, 3, 2, 10, tzinfo=UTC), night_off).open


def test_conduct_counts_rate_and_concurrency(simulator: RunningSimulator) -> None:
    c = client(simulator)
    for _ in range(5):
        c.get(f"{LEGACY}/0")
    report = simulator.state.conduct.report()
    host = next(iter(report["requests"]))
    assert report["max_requests_per_second"][host] >= 5
    assert report["max_in_flight"][host] == 1


def test_scenario_validation() -> None:
    with pytest.raises(ValidationError, match="unknown profile"):
        Scenario.model_validate(
            {
                "profiles": {},
                "legacy_sites": [
                    {
                        "host": "h",
                        "prefecture": "p",
                        "forms": [
                            {
                                "id": 1,
                                "title": "t",
                                "plannings": [{"id": 2, "label": "l", "profile": "nope"}],
                            }
                        ],
                    }
                ],
            }
        )
    with pytest.raises(ValidationError, match="unknown fault"):
        Scenario.model_validate({"profiles": {}, "faults": [{"kind": "gremlins"}]})


def test_simulator_listens_on_loopback_only() -> None:
    with pytest.raises(ValueError):
        start_simulator(host="0.0.0.0")


def test_overloaded_page_is_blocked_for_the_robot(
    simulator: RunningSimulator, clock: VirtualClock
) -> None:
    import asyncio

    from observatoire.adapters import ProbeContext, get_adapter
    from observatoire.config import load_config
    from observatoire.robot.politeness import PolitePolicy

    from .conftest import DEMO_CONFIG

    target = load_config(DEMO_CONFIG, simulator_url=simulator.base_url).target(
        "75-admission-exceptionnelle-948"
    )
    clock.set(T0 - timedelta(days=7.8))

    async def go():
        policy = PolitePolicy("observatoire/test", 0.0, 5.0)
        try:
            return await get_adapter("legacy_booking").probe(
                target, ProbeContext(policy.session(), clock)
            )
        finally:
            await policy.aclose()

    result = asyncio.run(go())
    assert (result.outcome.value, result.detail) == ("blocked", "overloaded")


# -- the real pages (platforms.md §1, §3, §4, §2 "Blocking") ---------------------------
def test_legacy_no_slot_page_latin1_and_index_php(
    simulator: RunningSimulator, clock: VirtualClock
) -> None:
    c = client(simulator)
    ssd = "/www.seine-saint-denis.gouv.fr/index.php/booking/create/9845"
    first = c.get(f"{ssd}/0")
    # ISO-8859-1 declared only in the page's <meta>, not in the Content-Type.
    assert first.headers["content-type"] == "text/html"
    assert b'<meta charset="iso-8859-1">' in first.content
    assert "Cordonnées" in first.content.decode("iso-8859-1")
    assert f'action="{ssd}/0"' in first.content.decode("iso-8859-1")
    # "pas calendrier" right after the conditions, in a ul.error list.
    clock.set(T0 - timedelta(days=3))
    assert c.post(f"{ssd}/0", data={"condition": "on"}).headers["location"] == f"{ssd}/1"
    page = c.get(f"{ssd}/1").content.decode("iso-8859-1")
    assert re.search(r'<ul class="error"><li>Il n&#039;y a pas calendrier disponible', page)
    # The no-slot result page has its "Terminer" button.
    clock.set(T0)
    hauts = "/pprdv.interieur.gouv.fr/booking/create/948"
    c.get(f"{hauts}/0")
    c.post(f"{hauts}/0", data={"condition": "on"})
    result = c.get(f"{hauts}/2").text
    assert "Il n&#039;existe plus de plage horaire libre" in result
    assert 'name="finishButton" class="Bbutton" value="Terminer"' in result


def test_legacy_jump_to_step4(simulator: RunningSimulator, clock: VirtualClock) -> None:
    c = client(simulator)
    evry = "/www.essonne.gouv.fr/booking/create/14056"
    for hours in range(0, 48, 3):
        clock.set(T0 + timedelta(hours=hours))
        c.cookies.clear()
        c.get(f"{evry}/0")
        location = c.post(f"{evry}/0", data={"condition": "on"}).headers["location"]
        if location.endswith("/4"):
            page = c.get(location).text
            assert 'value="Première plage horaire libre"' in page
            assert f'action="{evry}/4"' in page and "etape_4r.png" in page
            break
        assert location.endswith("/2")
    else:
        raise AssertionError("the form never jumped to step 4")
    assert simulator.state.conduct.report()["violations"] == []
    c.post(f"{evry}/4", data={"nextButton": "Première plage horaire libre"})
    assert simulator.state.conduct.report()["violations"]  # pressing it goes too far


def test_eappointment_pages(simulator: RunningSimulator) -> None:
    c = client(simulator)
    base = "/rdv-etrangers-94.interieur.gouv.fr/eAppointmentpref94"
    entry = c.get(f"{base}/element/jsp/specific/pref94.jsp").text
    assert 'id="CPId" name="CP"' in entry
    assert '<input type="button" value="Continuer" class="btn btn-primary"' in entry
    assert "Veuillez saisir un code postal valide." in entry  # the page's own alert
    assert "appointment.do?sitekey=" in entry and '"94000": "P941"' in entry
    moved = c.get(f"{base}/appointment.do", params={"sitekey": "P941"})
    assert moved.status_code == 302
    motives = c.get(f"{base}/element/jsp/appointment.jsp").text
    assert 'name="selectedMotiveKeyList"' in motives and 'id="nextButtonId"' in motives
    assert 'id="previousButtonId"' in motives and "alert(reply.message)" in motives
    replies = []
    for key in ("TITRE_SEJOUR", "ETUDIANT"):
        reply = c.post(
            f"{base}/dwr/call/plaincall/AjaxMotive.motiveMultiSiteSubmit.dwr",
            content=f"c0-param0={key}",
            headers={"Content-Type": "text/plain"},
        ).json()
        replies.append(reply)
        if not reply["foundAvailabilities"]:
            assert reply["message"] == (
                "Aucun rendez-vous n'est possible pour les motifs selectionnnés ou le "
                "créneau horaire séléctionné."
            )
    dates = c.get(f"{base}/element/jsp/appointmentDate.jsp").text
    assert 'id="dayValueId" name="dayValue"' in dates and 'id="hourValueSelect"' in dates
    assert 'class="ui-datepicker-group"' in dates and "ui-datepicker-month" in dates
    assert 'id="timeareaempty"' in dates


def test_demarches_redirects(simulator: RunningSimulator, clock: VirtualClock) -> None:
    c = client(simulator)
    site = "/www.demarches-simplifiees.fr"
    rhone = "premiere-demande-titre-sejour-prefecture-rhone"
    opened = c.get(f"{site}/commencer/{rhone}")
    assert opened.status_code == 200 and "Commencer la démarche" in opened.text
    assert "FranceConnect" in opened.text and "J’ai déjà un compte" in opened.text
    clock.set(T0 - timedelta(days=20))
    closed = c.get(f"{site}/commencer/{rhone}")
    assert (closed.status_code, closed.headers["location"]) == (302, f"{site}/fermeture/{rhone}")
    heading = c.get(f"{site}/fermeture/{rhone}").text
    assert re.search(r"<h1>La démarche .+ est close depuis le [ \d]\d \w+ 2026</h1>", heading)
    clock.set(T0 - timedelta(days=5))
    absent = c.get(f"{site}/commencer/renouvellement-apres-aes-meurthe-et-moselle")
    assert (absent.status_code, absent.headers["location"]) == (302, f"{site}/")
    home = c.get(f"{site}/").text
    assert '<div id="flash_messages" ' in home and 'role="alert">\nLa démarche n’existe pas' in home
    assert "n’existe pas" not in c.get(f"{site}/").text  # a flash is shown once
    replaced = c.get(f"{site}/commencer/titre-sejour-rhone-2024")
    assert replaced.headers["location"] == f"{site}/commencer/{rhone}"


@pytest.mark.parametrize("kind", ["cloudflare_block", "cloudflare_challenge"])
def test_cloudflare_faults(simulator: RunningSimulator, kind: str) -> None:
    simulator.set_faults([{"kind": kind}])
    page = client(simulator).get(f"{LEGACY}/0")
    assert page.status_code == 403
    if kind == "cloudflare_block":
        assert "<title>Attention Required! | Cloudflare</title>" in page.text
        assert "Sorry, you have been blocked" in page.text and "Cloudflare Ray ID" in page.text
        assert 'id="cf-wrapper"' in page.text and 'id="cf-error-details"' in page.text
    else:
        assert "<title>Just a moment...</title>" in page.text
        assert "Verify you are human" in page.text and "_cf_chl_opt" in page.text
        assert 'name="cf-turnstile-response"' in page.text and "Ray ID" in page.text


def test_a_request_sent_before_the_previous_answer_is_a_violation(
    simulator: RunningSimulator,
) -> None:
    """The conduct count still sees an overlap: a second request to a host whose first
    one has no answer yet (here: the server stays silent on it)."""
    simulator.state.hang_seconds = 1.0
    simulator.set_faults([{"kind": "read_timeout", "path_prefix": "/www.herault.gouv.fr/"}])
    url = f"{simulator.base_url}/www.herault.gouv.fr/booking/create/1"
    slow = threading.Thread(target=_quietly, args=(url,))
    slow.start()
    try:
        time.sleep(0.3)  # the first request is in flight, unanswered
        simulator.set_faults([])
        httpx.get(url, timeout=3.0)
    finally:
        slow.join()
    violations = simulator.state.conduct.report()["violations"]
    assert any("2 requests in flight" in v for v in violations), violations


def _quietly(url: str) -> None:
    with contextlib.suppress(httpx.HTTPError):
        httpx.get(url, timeout=3.0)
