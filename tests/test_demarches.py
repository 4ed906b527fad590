"""démarche numérique: the adapter's site and status rules on mocked HTTP (respx), and
the simulator's markup checked against the structure the platform's open source
renders (layouts/_flash_messages, users/commencer/closing_details, commencer/show).

The saved-page contract is in tests/fixtures/demarches_simplifiees/expected.yaml; the
flow against the simulator is in test_browser_adapters.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import respx
from lxml import html as lxml_html

from observatoire.adapters import ProbeContext, get_adapter
from observatoire.clock import VirtualClock
from observatoire.config import Target
from observatoire.outcomes import Outcome, ProbeResult
from observatoire.robot.politeness import PolitePolicy
from observatoire.simulator import RunningSimulator
from observatoire.simulator.demarches import _long_date

from .conftest import T0

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SITE = "https://demarche.numerique.gouv.fr"
SLUG = "premiere-demande-titre-sejour-prefecture-rhone"


def _home(flash: str = "La démarche n’existe pas") -> str:
    """The home page as the platform renders it after `procedure_not_found`."""
    return (
        '<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8"><title>Accueil</title>'
        '</head><body><main id="contenu" role="main"><div id="flash_messages" tabindex="-1">'
        '<div id="flash_message" class="center"><div class="alert alert-danger fr-p-2w" '
        f'role="alert">{flash}</div></div></div><div class="landing"><h1>Accueil</h1></div>'
        "</main></body></html>"
    )


def _target(url: str = f"{SITE}/commencer/{SLUG}") -> Target:
    return Target(
        id="69-premiere-demande-dn",
        department="69",
        department_name="Rhône",
        prefecture="Lyon",
        procedure="titre-sejour",
        procedure_name="Titre de séjour",
        label="Première demande",
        platform="demarches_simplifiees",
        url=url,
        enabled=True,
        interval_minutes=60,
        site=None,
        options={},
    )


async def _run(target: Target) -> ProbeResult:
    policy = PolitePolicy("observatoire/test (+https://example.org)", 0.0, 5.0)
    session = policy.session()
    try:
        return await get_adapter("demarches_simplifiees").probe(
            target, ProbeContext(http=session, clock=VirtualClock(NOW))
        )
    finally:
        await session.aclose()
        await policy.aclose()


@respx.mock
async def test_absent_slug_is_the_flash_on_the_home_page() -> None:
    respx.get(f"{SITE}/commencer/{SLUG}").respond(302, headers={"Location": "/"})
    respx.get(f"{SITE}/").respond(200, html=_home())
    result = await _run(_target())
    assert (result.outcome, result.detail) == (Outcome.PROCEDURE_MISSING, "form_absent")


@respx.mock
async def test_the_old_host_answering_from_the_new_one_is_the_same_platform() -> None:
    old = "https://www.demarches-simplifiees.fr"
    respx.get(f"{old}/commencer/{SLUG}").respond(
        301, headers={"Location": f"{SITE}/commencer/{SLUG}"}
    )
    respx.get(f"{SITE}/commencer/{SLUG}").respond(302, headers={"Location": "/"})
    respx.get(f"{SITE}/").respond(200, html=_home())
    result = await _run(_target(f"{old}/commencer/{SLUG}"))
    assert (result.outcome, result.detail) == (Outcome.PROCEDURE_MISSING, "form_absent")


@respx.mock
async def test_the_flash_on_another_site_is_not_the_targets_answer() -> None:
    respx.get(f"{SITE}/commencer/{SLUG}").respond(
        302, headers={"Location": "https://formulaires.example.org/"}
    )
    respx.get("https://formulaires.example.org/").respond(200, html=_home())
    result = await _run(_target())
    assert (result.outcome, result.detail) == (Outcome.UNRECOGNIZED, "other_site")


@respx.mock
async def test_a_404_is_an_http_error_not_an_absent_demarche() -> None:
    """The platform redirects an unknown slug to its home page; it never 404s it."""
    respx.get(f"{SITE}/commencer/{SLUG}").respond(404, html="<h1>Page non trouvée</h1>")
    result = await _run(_target())
    assert (result.outcome, result.detail) == (Outcome.ERROR, "http:404")


@respx.mock
async def test_a_reworded_flash_is_unrecognized() -> None:
    respx.get(f"{SITE}/commencer/{SLUG}").respond(302, headers={"Location": "/"})
    respx.get(f"{SITE}/").respond(200, html=_home("La démarche n’existe pas encore"))
    result = await _run(_target())
    assert result.outcome is Outcome.UNRECOGNIZED
    assert result.detail == "absent_message_out_of_place", result.detail


def _doc(text: str) -> lxml_html.HtmlElement:
    return lxml_html.document_fromstring(text)


def test_simulator_renders_the_platforms_flash(
    simulator: RunningSimulator, clock: VirtualClock
) -> None:
    site = "/www.demarches-simplifiees.fr"
    with httpx.Client(base_url=simulator.base_url) as client:
        clock.set(T0 - timedelta(days=5))  # the Meurthe-et-Moselle démarche is absent
        client.get(f"{site}/commencer/renouvellement-apres-aes-meurthe-et-moselle")
        home = _doc(client.get(f"{site}/").text)
        again = _doc(client.get(f"{site}/").text)
    alerts = home.xpath(
        "//main[@id='contenu']/div[@id='flash_messages']/div[@id='flash_message']"
        "/div[@role='alert']"
    )
    assert len(alerts) == 1
    assert set(alerts[0].get("class").split()) >= {"alert", "alert-danger"}
    assert list(alerts[0]) == [] and alerts[0].text.strip() == "La démarche n’existe pas"
    # Every page has the container; the alert is shown once.
    assert again.xpath("//div[@id='flash_messages']/div[@id='flash_message']")
    assert not again.xpath("//div[@role='alert']")


def test_simulator_renders_the_open_and_closing_pages(
    simulator: RunningSimulator, clock: VirtualClock
) -> None:
    site = "/www.demarches-simplifiees.fr"
    with httpx.Client(base_url=simulator.base_url) as client:
        opened = _doc(client.get(f"{site}/commencer/{SLUG}").text)
        clock.set(T0 - timedelta(days=20))
        closing = _doc(client.get(f"{site}/fermeture/{SLUG}").text)
        unknown = client.get(f"{site}/fermeture/pas-de-demarche")
    preview = opened.xpath("//main//div[contains(@class, 'procedure-preview')]")[0]
    assert preview.xpath("./h1[@class='fr-h2']")
    title = preview.xpath(".//div[contains(@class, 'fr-callout')]/h2[@class='fr-callout__title']")
    assert [t.text for t in title] == ["Commencer la démarche"]
    assert preview.xpath(".//a[contains(@class, 'fr-connect')]")
    heading = closing.xpath("//main//div[contains(@class, 'procedure-preview')]//h1")
    assert len(heading) == 1 and " est close depuis le " in heading[0].text
    # An unknown slug's closing page is `procedure_not_found`: back home, with the flash.
    assert (unknown.status_code, unknown.headers["location"]) == (302, f"{site}/")


def test_the_closing_date_is_rails_long_french_date() -> None:
    """`l(date, format: :long)` in French is `%e %B %Y`: no "1er", the day padded."""
    assert _long_date(datetime(2026, 2, 1, 12, tzinfo=UTC)) == " 1 février 2026"
    assert _long_date(datetime(2026, 1, 15, 12, tzinfo=UTC)) == "15 janvier 2026"
