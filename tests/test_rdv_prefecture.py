"""RDV-Préfecture: the simulator serves every state of the real pages (platforms.md §2),
and the adapter reads each of them as the simulator meant it (outcome, first date, count,
release instants). The contract fixtures (tests/fixtures/rdv_prefecture) are the
hand-written side of the same check; here the served pages are compared with the
simulator's truth, over plain HTTP (no browser: fast)."""

from __future__ import annotations

import ast
import base64
import json
import re
import struct
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from observatoire.adapters.rdv_prefecture import RdvPrefectureAdapter, read_critere
from observatoire.clock import PARIS, VirtualClock
from observatoire.outcomes import Outcome
from observatoire.simulator import RunningSimulator, start_simulator
from observatoire.simulator.scenario import Scenario
from observatoire.simulator.server import TruthRecord
from tests.conftest import T0

FIXTURES = Path(__file__).parent / "fixtures" / "rdv_prefecture"
ROOT = Path(__file__).resolve().parents[1] / "observatoire"

#: One host per rendering option, one procedure per slot situation.
SITES = {
    "desktop.test": {},
    "phone.test": {"layout": "phone"},
    "rows.test": {"rows": 1},
    "lastweek.test": {"empty_view": "last_week"},
    "nocal.test": {"empty_view": "not_displayed"},
    "banners.test": {"banners": True, "empty_view": "last_week"},
    "v1.test": {"captcha": "v1", "session_minutes": 10},
}
PROFILES = {
    # Slots from tomorrow, several a day: the displayed week has some.
    "soon": {"open_probability": 1.0, "lead_days": [1, 1], "slots": [8, 12]},
    # Slots only three weeks ahead: "Prochaine disponibilité le …".
    "later": {"open_probability": 1.0, "lead_days": [21, 25], "slots": [2, 4]},
    "never": {"open_probability": 0.0},
    "weekly": {
        "open_probability": 0.0,
        "releases": [{"weekday": 0, "time": "09:00", "minutes": 600, "lead_days": [20, 20]}],
    },
}
DEMARCHES = {100: "soon", 200: "later", 300: "never", 400: "weekly"}


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(T0)  # Monday 2 March 2026, 10:00 in Paris


@pytest.fixture
def sim(clock: VirtualClock) -> Iterator[RunningSimulator]:
    scenario = Scenario.model_validate(
        {
            "seed": 7,
            "anchor": T0,
            "profiles": PROFILES,
            "rdv_prefecture_sites": [
                {
                    "host": host,
                    "demarches": [
                        {"id": i, "title": f"Démarche {i}", "profile": p}
                        for i, p in DEMARCHES.items()
                    ],
                    **options,
                }
                for host, options in SITES.items()
            ],
        }
    )
    simulator = start_simulator(scenario, clock)
    yield simulator
    simulator.stop()


def base(host: str, demarche: int) -> str:
    return f"/{host}/rdvpref/reservation/demarche/{demarche}"


def widget(page: str) -> tuple[str, str]:
    """The captcha widget's service endpoint and bearer token, as the page carries them."""
    match = re.search(r'<rdv-captchetat endpoint-url="([^"]+)" [^>]*token="([^"]+)"', page)
    assert match, page
    return match.group(1), match.group(2)


def new_captcha(client: httpx.Client, page: str) -> str:
    """What the page's script does as it loads: ask the captcha service (its own host)
    for a captcha, with the page's token; the id it answers goes in `captchaId`."""
    endpoint, token = widget(page)
    bearer = {"Authorization": f"Bearer {token}"}
    if "/captchetat/v2/" in endpoint:
        got = client.get(endpoint, params={"get": "image", "c": "captchaFR"}, headers=bearer)
        return str(got.json()["uuid"])
    markup = client.get(endpoint, params={"get": "html", "c": "captchaFR"}, headers=bearer).text
    match = re.search(r'id="BDC_VCID_captchaFR" value="([\w-]+)"', markup)
    assert match, markup
    return match.group(1)


def pass_captcha(sim: RunningSimulator, client: httpx.Client, host: str, demarche: int) -> str:
    cgu = client.get(f"{base(host, demarche)}/cgu/").text
    ident = new_captcha(client, cgu)
    answer = client.get(f"/_sim/captcha/{ident}").json()["answer"]
    response = client.post(
        f"{base(host, demarche)}/_validerCaptcha",
        data={"captchaId": ident, "captchaUsercode": answer},
        follow_redirects=True,
    )
    assert str(response.url).endswith("/creneau/"), response.url
    return response.text


def slot_truth(sim: RunningSimulator) -> TruthRecord:
    return [r for r in sim.state.truth_records() if r.path.endswith("/creneau/")][-1]


#: The simulator's empty views and the adapter's details, named independently.
NO_SLOT_DETAIL = {
    "empty_week": "empty_week",
    "last_week": "last_week",
    "not_displayed": "calendar_not_displayed",
}


def check(result_outcome: str, result, truth: TruthRecord) -> None:
    first = datetime.fromisoformat(truth.first_slot) if truth.first_slot else None
    if truth.state == "open":
        assert (result_outcome, result.detail) == ("available", ""), (result, truth)
        assert result.first_slot_at == first
        assert result.slots_count == truth.slots
    elif truth.state == "next_availability":
        assert (result_outcome, result.detail) == ("available", "next_availability")
        assert first is not None
        assert result.first_slot_at == datetime.combine(first.date(), datetime.min.time(), PARIS)
    else:
        assert (result_outcome, result.detail) == ("no_slot", NO_SLOT_DETAIL[truth.view or ""]), (
            result,
            truth,
        )


@pytest.mark.parametrize(
    ("host", "demarche", "state", "view"),
    [
        ("desktop.test", 100, "open", "desktop"),
        ("phone.test", 100, "open", "phone"),
        ("rows.test", 100, "open", "desktop"),
        ("desktop.test", 200, "next_availability", "next_availability"),
        ("phone.test", 200, "next_availability", "next_availability"),
        ("desktop.test", 300, "no_slot", "empty_week"),
        ("lastweek.test", 300, "no_slot", "last_week"),
        ("nocal.test", 300, "no_slot", "not_displayed"),
        ("banners.test", 400, "next_availability", "next_availability"),
    ],
)
def test_every_served_state_is_read_as_the_simulator_meant(
    sim: RunningSimulator, host: str, demarche: int, state: str, view: str
) -> None:
    with httpx.Client(base_url=sim.base_url) as client:
        page = pass_captcha(sim, client, host, demarche)
    truth = slot_truth(sim)
    assert (truth.state, truth.view) == (state, view)
    # Every state: the same title, the stepper and its "next step" wording.
    assert "<title>Choisissez votre créneau" in page and "Étape 3 sur 6" in page
    assert "Étape suivante :</span> Vos informations" in page
    critere = read_critere(page)
    assert critere is not None and set(critere) >= {"premierJour", "dateMin", "dateMax"}
    assert (critere["datePremiereDispo"] == "") == (state == "no_slot")
    url = f"https://{host}{base(host, demarche)}/creneau/"
    result = RdvPrefectureAdapter().classify(page.encode(), url)
    check(result.outcome.value, result, truth)


def test_state_markup_follows_the_reference(sim: RunningSimulator) -> None:
    with httpx.Client(base_url=sim.base_url) as client:
        desktop = pass_captcha(sim, client, "desktop.test", 100)
        client.cookies.clear()
        phone = pass_captcha(sim, client, "phone.test", 100)
        client.cookies.clear()
        rows = pass_captcha(sim, client, "rows.test", 100)
        client.cookies.clear()
        later = pass_captcha(sim, client, "desktop.test", 200)
        client.cookies.clear()
        last = pass_captcha(sim, client, "lastweek.test", 300)
        client.cookies.clear()
        nocal = pass_captcha(sim, client, "nocal.test", 300)
    assert re.search(
        r'<h3 class="celulleHeader text-bold text-center">mardi<br>03/03</h3>', desktop
    )
    assert re.search(
        r'<li class="row cellule justify-center radio-card"><input type="radio" '
        r'name="trhId" id="trhId_(\d+)" data-value="\1"><label class="fr-label" '
        r'for="trhId_\1">\d\dh\d\d</label></li>',
        desktop,
    )
    # Today (Monday) has no slot: its column is its header and an empty list.
    assert '<h3 class="celulleHeader text-bold text-center">lundi<br>02/03</h3><ul></ul>' in desktop
    # Phone: "lundi 02/03" (today, no slot from tomorrow on) says so while others offer.
    assert '<div class="q-item__label">lundi 02/03</div>' in phone
    assert "<div>Aucun créneau disponible</div>" in phone and 'id="trhId_' in phone
    assert "Voir plus de créneaux" in rows and "Voir plus de créneaux" not in desktop
    # `nombreDeLigne` = 1: one slot row per day column, the rest behind the button.
    assert max(c.count('name="trhId"') for c in rows.split("blocCreneauSelection")[1:]) == 1
    # A displayed week without slots still draws its six columns on a desktop.
    assert later.count('class="celulleHeader') == 6 and 'name="trhId"' not in later
    assert '<div class="text-center q-pa-md">Aucun créneau disponible sur cette semaine' in later
    assert re.search(r"Prochaine disponibilité le \d\d/\d\d/2026", later)
    # The last reachable week: both sentences in one element, a line break between.
    assert (
        '<div class="text-center q-pa-md">Aucun créneau disponible à partir de cette date.'
        "<br>Veuillez réessayer ultérieurement.</div>"
    ) in last
    assert last.count('class="celulleHeader') == 6
    assert "Aucun créneau" not in nocal and "Veuillez réessayer ultérieurement." in nocal
    assert 'class="celulleHeader' not in nocal  # the calendar is not displayed


def test_release_banners_are_served_and_read(sim: RunningSimulator, clock: VirtualClock) -> None:
    # As the front-end script: no banner beside "Prochaine disponibilité" (10:00, the
    # batch on offer), the banners on the last reachable week (20:00, the batch gone).
    with httpx.Client(base_url=sim.base_url) as client:
        offered = pass_captcha(sim, client, "banners.test", 400)
        assert slot_truth(sim).state == "next_availability"
        assert "mise en ligne" not in offered
        clock.advance(timedelta(hours=10))
        client.cookies.clear()
        page = pass_captcha(sim, client, "banners.test", 400)
    assert (slot_truth(sim).state, slot_truth(sim).view) == ("no_slot", "last_week")
    assert re.search(
        r'<span class="fr-text--italic fr-text--bold">Dernière mise en ligne de rendez-vous : '
        r"le 02/03/2026 à 09:00</span><br><span class=\"fr-text--italic\">pour des créneaux "
        r"de la semaine du 16/03/2026</span>",
        page,
    )
    result = RdvPrefectureAdapter().classify(page.encode())
    assert result.release_last_at == datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    assert result.release_last_week == date(2026, 3, 16)
    assert result.release_next_at == datetime(2026, 3, 9, 8, 0, tzinfo=UTC)
    assert result.release_next_week == date(2026, 3, 23)


def test_banners_of_the_fixture_are_stored_as_utc() -> None:
    result = RdvPrefectureAdapter().classify((FIXTURES / "banners.html").read_bytes())
    # "le 04/05/2026 à 11:58" in Paris (summer time).
    assert result.release_last_at == datetime(2026, 5, 4, 9, 58, tzinfo=UTC)
    assert result.release_last_week == date(2026, 5, 18)
    assert result.release_next_at == datetime(2026, 5, 11, 9, 58, tzinfo=UTC)
    assert result.release_next_week == date(2026, 5, 25)
    assert result.outcome is Outcome.NO_SLOT
    # The same banners as the front-end script writes them (a <br> between the lines).
    shaped = RdvPrefectureAdapter().classify((FIXTURES / "last_week_one_element.html").read_bytes())
    assert (shaped.release_last_at, shaped.release_last_week) == (
        datetime(2026, 5, 4, 9, 58, tzinfo=UTC),
        date(2026, 5, 18),
    )
    assert shaped.release_next_at == datetime(2026, 5, 11, 9, 58, tzinfo=UTC)


def test_the_week_opens_on_its_monday(sim: RunningSimulator, clock: VirtualClock) -> None:
    """`premierJour` is the week's Monday; on a Wednesday, Monday and Tuesday are empty
    columns and `dateMin` is today."""
    clock.set(T0 + timedelta(days=2))  # Wednesday 4 March 2026
    with httpx.Client(base_url=sim.base_url) as client:
        page = pass_captcha(sim, client, "desktop.test", 100)
    critere = read_critere(page)
    assert critere is not None
    assert (critere["premierJour"], critere["dateMin"]) == ("02/03/2026", "04/03/2026")
    columns = page.split('class="column col items-center blocCreneauSelection"')[1:]
    assert len(columns) == 6 and ">lundi<br>02/03<" in columns[0]
    assert all("<ul></ul>" in c for c in columns[:3])  # slots start tomorrow
    result = RdvPrefectureAdapter().classify(page.encode())
    check(result.outcome.value, result, slot_truth(sim))


def test_page_data_is_vertigo_uis_data_element(sim: RunningSimulator) -> None:
    """Every page carries its data where Vertigo-UI writes it: raw JSON in
    `<script id="vui-init-data" type="application/json">`, `vueData` first."""
    with httpx.Client(base_url=sim.base_url) as client:
        landing = client.get(f"{base('desktop.test', 100)}/").text
        page = pass_captcha(sim, client, "desktop.test", 100)
    for text in (landing, page):
        match = re.search(
            r'<script id="vui-init-data" type="application/json">(.*?)</script>', text, re.S
        )
        assert match, text
        data = json.loads(match.group(1))
        assert set(data) >= {"vueData", "componentStates", "uiMessageStack"}
    assert set(data["vueData"]["critere"]) >= {"premierJour", "dateMin", "dateMax"}
    assert "VertigoUi.pageData" not in page and "var vueData" not in page


def test_slot_page_is_reloadable_until_the_session_ends(
    sim: RunningSimulator, clock: VirtualClock
) -> None:
    slot_url = f"{base('v1.test', 100)}/creneau/"
    with httpx.Client(base_url=sim.base_url) as client:
        # Without a validated captcha: back to the conditions page.
        first = client.get(slot_url)
        assert first.status_code == 302 and first.headers["location"].endswith("/cgu/")
        pass_captcha(sim, client, "v1.test", 100)
        clock.advance(timedelta(minutes=9))
        again = client.get(slot_url)
        assert again.status_code == 200 and "Choisissez votre créneau" in again.text
        clock.advance(timedelta(minutes=2))  # the site's session lasts 10 min here
        expired = client.get(slot_url)
        assert expired.status_code == 302 and expired.headers["location"].endswith("/cgu/")
        assert sim.state.truth_records()[-1].state == "session_expired"
        # The session is over for good: a new captcha is needed.
        assert client.get(slot_url).status_code == 302


def test_captcha_widgets_and_service(sim: RunningSimulator) -> None:
    with httpx.Client(base_url=sim.base_url) as client:
        landing = client.get(f"{base('desktop.test', 100)}/").text
        assert "Accueil" in landing.split("</title>")[0]
        assert "Que souhaitez-vous faire ?" in landing and "Étape 1 sur 6" in landing
        assert re.search(
            r'<a class="q-btn[^"]*" tabindex="0" href="[^"]+/cgu/"><span class="q-focus-helper">'
            r'</span><span class="q-btn__content[^"]*"><span class="block">Prendre un '
            r"rendez-vous</span>",
            landing,
        )
        assert "Gérer mes rendez-vous" in landing
        cgu = client.get(f"{base('desktop.test', 100)}/cgu/").text
        assert "Constituez votre dossier" in cgu and "code de sécurité" in cgu
        assert 'id="captchaFormulaireExtInput" name="captchaUsercode"' in cgu
        assert 'title="Énoncer le code du captcha"' in cgu
        assert 'title="Générer un nouveau captcha"' in cgu
        assert re.search(r'formaction="[^"]+/_validerCaptcha"', cgu)
        # The service is not the site's: PISTE's host, called with the page's token. The
        # page holds neither the image nor the captcha's id until its script asks.
        endpoint, token = widget(cgu)
        assert endpoint == "/api.piste.gouv.fr/piste/captchetat/v2/simple-captcha-endpoint"
        assert "data:image/png" not in cgu
        assert '<input type="hidden" name="captchaId" value="">' in cgu
        image = {"get": "image", "c": "captchaFR"}
        assert client.get(endpoint, params=image).status_code == 401
        bearer = {"Authorization": f"Bearer {token}", "Origin": "https://site.test"}
        fresh = client.get(endpoint, params=image, headers=bearer)
        assert fresh.headers["access-control-allow-origin"] == "https://site.test"
        assert set(fresh.json()) == {"imageb64", "uuid"}
        data_url = fresh.json()["imageb64"]
        assert data_url.startswith("data:image/png;base64,")
        png = base64.b64decode(data_url.split(",", 1)[1])
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">II", png[16:24]) == (200, 70)
        ident = fresh.json()["uuid"]
        assert sim.state.rdvpref.answer(ident) not in cgu
        sound = client.get(
            endpoint, params={"get": "sound", "c": "captchaFR", "t": ident}, headers=bearer
        )
        assert sound.headers["content-type"] == "audio/x-wav" and sound.content[:4] == b"RIFF"
        unknown = {"get": "sound", "c": "captchaFR", "t": "nope"}
        assert client.get(endpoint, params=unknown, headers=bearer).status_code == 404
        # A wrong answer: the captcha is spent, the page says so and asks again.
        wrong = client.post(
            f"{base('desktop.test', 100)}/_validerCaptcha",
            data={"captchaId": ident, "captchaUsercode": "NOPE"},
        )
        assert wrong.headers["location"].endswith("/cgu/?error=invalidCaptcha")
        shown = client.get(wrong.headers["location"]).text
        assert (
            '<p id="text-input-captcha-desc-error" class="fr-error-text">Le code de sécurité '
            "saisi est incorrect</p>"
        ) in shown
        again = client.post(
            f"{base('desktop.test', 100)}/_validerCaptcha",
            data={"captchaId": ident, "captchaUsercode": sim.state.rdvpref.answer(ident)},
        )
        assert again.headers["location"].endswith("/cgu/?error=invalidCaptcha")
        # The older widget: BotDetect markup first (it names the captcha), then the image
        # shown from a blob: URL; its sound link becomes "#"; all with a bearer token.
        client.cookies.clear()
        old = client.get(f"{base('v1.test', 100)}/cgu/").text
        endpoint, token = widget(old)
        assert endpoint == "/api.piste.gouv.fr/piste/captcha/simple-captcha-endpoint"
        assert '<div id="BDC_CaptchaComponent"></div>' in old
        assert "link.href='#'" in old
        ident = new_captcha(client, old)
        assert client.get(endpoint, params={"get": "sound", "t": ident}).status_code == 401
        bearer = {"Authorization": f"Bearer {token}"}
        got = client.get(endpoint, params={"get": "image", "t": ident}, headers=bearer)
        assert got.headers["content-type"] == "image/png"
        # Each widget's service knows its own captchas only.
        v2_endpoint = "/api.piste.gouv.fr/piste/captchetat/v2/simple-captcha-endpoint"
        other = client.get(v2_endpoint, params={"get": "sound", "t": ident}, headers=bearer)
        assert other.status_code == 404
    assert sim.state.conduct.report()["violations"] == []


def test_personal_data_page_is_a_violation(sim: RunningSimulator) -> None:
    with httpx.Client(base_url=sim.base_url) as client:
        page = client.get(f"{base('desktop.test', 100)}/informations/").text
    assert "<h1>Vos informations</h1>" in page
    assert any("personal data page" in v for v in sim.state.conduct.report()["violations"])
    result = RdvPrefectureAdapter().classify(page.encode())
    assert (result.outcome, result.detail) == (Outcome.UNRECOGNIZED, "personal_data_page")


def test_slot_page_known_by_url_alone_and_other_demarche() -> None:
    page = (FIXTURES / "empty_week.html").read_bytes()
    bare = re.sub(rb"<title>.*?</title>|<h1.*?</h1>|<h2.*?</h2>", b"", page, flags=re.S)
    adapter = RdvPrefectureAdapter()
    assert adapter.classify(bare).detail == "not_slot_page"
    url = "https://www.rdv-prefecture.interieur.gouv.fr/rdvpref/reservation/demarche/4418/creneau/"
    assert adapter.classify(bare, url).outcome is Outcome.NO_SLOT


def test_page_data_read_tolerantly() -> None:
    element = (
        '<script id="vui-init-data" type="application/json">{"vueData": {"autre": '
        '{"x": "}"}, "critere": {"premierJour": "18/05/2026", "datePremiereDispo": null, '
        '"ageIds": [4, 5]}}}</script>'
    )
    assert read_critere(element) == {
        "premierJour": "18/05/2026",
        "datePremiereDispo": "",
        "ageIds": "[4, 5]",
    }
    assert read_critere('x = {"critere" : {"premierJour":"18/05/2026","datePremiereDispo":""}}')
    escaped = 'data-page="{&quot;critere&quot;:{&quot;premierJour&quot;:&quot;18/05/2026&quot;}}"'
    assert read_critere(escaped) == {"premierJour": "18/05/2026"}
    assert read_critere("no data") is None


def test_live_pages_without_a_year_use_the_clock() -> None:
    """A live page whose data lacks `critere`: the year comes from the observation time."""
    from observatoire.adapters.rdv_prefecture import classify_page

    page = (FIXTURES / "no_page_data.html").read_bytes()
    now = datetime(2026, 5, 18, 8, 0, tzinfo=UTC)
    result = classify_page(page, None, now)
    assert result.first_slot_at == datetime(2026, 5, 19, 9, 30, tzinfo=PARIS)
    assert result.outcome is Outcome.AVAILABLE and result.detail == ""


def test_simulator_and_adapter_share_nothing() -> None:
    """Written independently from the reference: neither imports the other."""
    for path, forbidden in (
        (ROOT / "simulator" / "rdvpref.py", "observatoire.adapters"),
        (ROOT / "adapters" / "rdv_prefecture.py", "observatoire.simulator"),
    ):
        tree = ast.parse(path.read_text("utf-8"))
        names = [
            node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
        ] + [a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names]
        assert not [n for n in names if n.startswith(forbidden)], path
