"""Adapter for démarche numérique (formerly démarches-simplifiées) request forms.

Anonymously one can only see whether a démarche's public page exists and is open; its
queue is internal, so no slot is ever observable. What the platform does (the project's
platform notes §4; controller `Users::CommencerController`, views and locales read in
its open source):

- open: `GET /commencer/<slug>` → 200 with "Commencer la démarche" → `form_open` (valid,
  not counted as "no way to book"; never `available`);
- closed: 302 to `/fermeture/<slug>`, h1 "La démarche <libellé> est close depuis le
  <date longue>" → `procedure_missing`, detail `form_closed:<ISO date>` (or
  `form_closed` when the date cannot be read). Until February 2024 a closed démarche
  went to the home page with an alert flash "Cette démarche en ligne a été close, il
  n’est plus possible de déposer de dossier…" (saved pages of that time are read too);
- absent: 302 to the home page `/` with the alert flash "La démarche n’existe pas" →
  `procedure_missing` (`form_absent`). The platform never answers 404 for an unknown
  slug, so a 404 is an HTTP error like any other;
- replaced: 302 (or 301 to the canonical path) to another `/commencer/<slug>`: the
  successor is read and the detail records its slug (`…;replaced_by:<slug>`).

Every verdict rests on the final URL (on the target's site) *and* on the message in its
place. The flash is the bare text of the layout's alert, `div.alert.alert-danger`
(role `alert` since 2022) in `#flash_message` in `#flash_messages`, inside `<main>`, on
the home page; the closing heading is the h1 of `/fermeture/<slug>`. The same words
elsewhere — a DSFR `fr-alert`, a paragraph, a hidden element, an open form whose FAQ
says "n'existe pas", a page that also offers "Commencer la démarche" — prove nothing:
such a page is `form_open` or `unrecognized`. 403/429/5xx, Cloudflare and network
errors as everywhere.
"""

from __future__ import annotations

import re
from datetime import date
from urllib.parse import urlsplit

from lxml import html as lxml_html

from observatoire.adapters.base import (
    Adapter,
    ProbeContext,
    ProbeStop,
    blocked_sign,
    check_status,
    decode_page,
    element_xpath,
    normalize_text,
    parse_html,
    response_text,
    visible_text,
)
from observatoire.config import Target
from observatoire.french import MONTH_NUMBER
from observatoire.outcomes import Outcome, ProbeResult
from observatoire.platforms import DemarchesSimplifieesOptions, Platform

#: The whole text of the flash left on the home page for an unknown slug
#: (`errors.messages.procedure_not_found`, unchanged since 2018 but for the apostrophe).
ABSENT_FLASH = normalize_text("La démarche n’existe pas")
#: 2019–2024: a closed démarche's flash on the home page ("fermée" until November 2019;
#: the service's contact follows from 2022). The flash must *start* with it (`match`);
#: the dossier quotes it wherever it is (`search`).
OLD_CLOSED = re.compile(
    r"cette démarche en ligne a été (?:close|fermée), "
    r"il n'est plus possible de déposer de dossier\b",
    re.I,
)
CLOSED_HEADING = re.compile(
    r"^La démarche (?P<label>.+) est close depuis le (?P<date>.+?)\.?$", re.I | re.S
)
LONG_DATE = re.compile(r"(?P<day>\d{1,2})(?:er)? (?P<month>[a-zéû]+) (?P<year>\d{4})", re.I)
START = re.compile(r"commencer la démarche", re.I)


def _has_class(name: str) -> str:
    return f"contains(concat(' ', normalize-space(@class), ' '), ' {name} ')"


#: The layout's flash container (`layouts/_flash_messages`): every page has one, in
#: `<main>`; a second one is not the platform's.
FLASH_CONTAINERS = element_xpath("//*[@id='flash_messages']")
#: The platform's alert flashes: `div.alert.alert-danger` directly in `#flash_message`,
#: itself directly in `#flash_messages`, in `<main>`; role `alert` when it has one.
PLATFORM_ALERTS = element_xpath(
    "//main//*[@id='flash_messages']/*[@id='flash_message']/div"
    f"[{_has_class('alert')} and {_has_class('alert-danger')} and "
    "(not(@role) or @role='alert')]"
)
MAIN_HEADINGS = element_xpath("//main//h1")
#: The content column of a démarche's own page (its start call-out, its description).
PROCEDURE_PREVIEW = element_xpath(f"//*[{_has_class('procedure-preview')}]")
COMMENCER = re.compile(r"/commencer/(?P<slug>[A-Za-z0-9_-]+)/?$")
FERMETURE = re.compile(r"/fermeture/(?P<slug>[A-Za-z0-9_-]+)/?$")
#: The home page: `/`, or `/<host>/` when a loopback simulator prefixes paths by host.
HOME = re.compile(r"^(/[^/]+\.[^/]+)?/?$")
#: A loopback simulator's host prefix: `/<host>/…`.
HOST_PREFIX = re.compile(r"^/(?P<host>[^/]+\.[^/]+)(?=/|$)")
#: The platform's own hosts, old name and new: a page on one answers for the other.
PLATFORM_HOSTS = frozenset(
    {"demarche.numerique.gouv.fr", "www.demarches-simplifiees.fr", "demarches-simplifiees.fr"}
)


def _slug(url: str | None, pattern: re.Pattern[str]) -> str | None:
    if not url:
        return None
    match = pattern.search(urlsplit(url).path)
    return match.group("slug") if match else None


def _site(url: str) -> tuple[str, str]:
    """Who serves `url`: (server, host), the server only when paths carry the host (a
    loopback simulator), the platform's hosts folded into one."""
    parts = urlsplit(url)
    prefixed = HOST_PREFIX.match(parts.path)
    host = (prefixed.group("host") if prefixed else parts.hostname or "").lower()
    server = parts.netloc.lower() if prefixed else ""
    return server, "platform" if host in PLATFORM_HOSTS else host


def _closing_date(text: str) -> str | None:
    match = LONG_DATE.search(text)
    if not match or match.group("month").lower() not in MONTH_NUMBER:
        return None
    try:
        return date(
            int(match.group("year")),
            MONTH_NUMBER[match.group("month").lower()],
            int(match.group("day")),
        ).isoformat()
    except ValueError:
        return None


def _platform_flashes(doc: lxml_html.HtmlElement) -> list[str]:
    """The texts of the platform's alert flashes, or none when the page has more than
    one flash container (then none of them is in its place)."""
    if len(FLASH_CONTAINERS(doc)) != 1:
        return []
    return [normalize_text(e.text_content()) for e in PLATFORM_ALERTS(doc)]


def _start_offered(doc: lxml_html.HtmlElement, text: str) -> bool:
    """A sign that a démarche can be started here: its start call-out, or the content
    column of a démarche's own page (the home page has neither)."""
    return bool(START.search(text) or PROCEDURE_PREVIEW(doc))


class DemarchesSimplifieesAdapter(Adapter):
    name = "demarches_simplifiees"
    version = "3.0"
    transport = "http"
    outcomes = frozenset({Outcome.FORM_OPEN, Outcome.PROCEDURE_MISSING})

    async def run(self, target: Target, ctx: ProbeContext) -> ProbeResult:
        response = await ctx.http.get(target.url)
        final = str(response.url)
        check_status(response)
        result = self._classify_text(
            response.content, response_text(response), final, response.status_code
        )
        if result.outcome is Outcome.BLOCKED:
            return result

        def unrecognized(detail: str) -> ProbeResult:
            return ProbeResult(
                Outcome.UNRECOGNIZED,
                detail,
                http_status=result.http_status,
                final_url=final,
                page=result.page,
            )

        if _site(final) != _site(target.url):
            return unrecognized("other_site")
        wanted = _slug(target.url, COMMENCER)
        landed = _slug(final, COMMENCER)
        if wanted and landed and landed != wanted:
            return ProbeResult(
                result.outcome,
                f"{result.detail};replaced_by:{landed}",
                http_status=result.http_status,
                final_url=final,
                page=result.page,
            )
        closed_slug = _slug(final, FERMETURE)
        if (
            wanted
            and closed_slug
            and closed_slug != wanted
            and result.outcome is Outcome.PROCEDURE_MISSING
        ):
            return unrecognized("other_demarche")
        return result

    def _classify_text(
        self, page: bytes, body: str, url: str | None, status: int | None
    ) -> ProbeResult:
        def result(outcome: Outcome, detail: str = "") -> ProbeResult:
            return ProbeResult(outcome, detail, http_status=status, final_url=url, page=page)

        try:
            doc = parse_html(body)
        except ProbeStop as stop:
            return result(stop.result.outcome, stop.result.detail)
        text, hidden = visible_text(doc)  # drops hidden elements: what follows is seen
        sign = blocked_sign(doc, text)
        if sign:
            return result(Outcome.BLOCKED, sign)
        path = urlsplit(url).path if url else None
        flashes = _platform_flashes(doc)
        headings = [normalize_text(h.text_content()) for h in MAIN_HEADINGS(doc)]

        # Closed: /fermeture/<slug> with its heading (a saved page without its address:
        # the heading alone).
        closing = next((m for h in headings if (m := CLOSED_HEADING.match(h))), None)
        on_closing_page = path is not None and bool(FERMETURE.search(path))
        if on_closing_page and closing is None:
            return result(Outcome.UNRECOGNIZED, "closing_page_without_heading")
        if closing is not None and (on_closing_page or path is None):
            if START.search(text):
                return result(Outcome.UNRECOGNIZED, "contrary_sign:start_button")
            when = _closing_date(closing.group("date"))
            return result(
                Outcome.PROCEDURE_MISSING, f"form_closed:{when}" if when else "form_closed"
            )

        on_home = path is None or bool(HOME.match(path))
        # Absent: the home page with the platform's alert flash, that text and no other.
        if ABSENT_FLASH in flashes:
            if not on_home:
                return result(Outcome.UNRECOGNIZED, "absent_flash_not_on_home_page")
            if _start_offered(doc, text):
                return result(Outcome.UNRECOGNIZED, "contrary_sign:start_button")
            return result(Outcome.PROCEDURE_MISSING, "form_absent")
        if any(ABSENT_FLASH in h for h in hidden):
            return result(Outcome.UNRECOGNIZED, "absent_flash_hidden")
        # 2019–2024: the home page with the closed démarche's alert flash.
        if any(OLD_CLOSED.match(f) for f in flashes):
            if not on_home:
                return result(Outcome.UNRECOGNIZED, "closed_flash_not_on_home_page")
            if _start_offered(doc, text):
                return result(Outcome.UNRECOGNIZED, "contrary_sign:start_button")
            return result(Outcome.PROCEDURE_MISSING, "form_closed")
        # Open: the démarche's page with its start call-out.
        if headings and START.search(text):
            if path is not None and not COMMENCER.search(path):
                return result(Outcome.UNRECOGNIZED, "start_button_off_commencer")
            return result(Outcome.FORM_OPEN, "form_open")
        if on_home and ABSENT_FLASH in text:
            return result(Outcome.UNRECOGNIZED, "absent_message_out_of_place")
        return result(Outcome.UNRECOGNIZED, "page")

    def classify(self, page: bytes, url: str | None = None) -> ProbeResult:
        """A saved page; `url` is the address it was served from (the final URL)."""
        return self._classify_text(page, decode_page(page), url, None)


PLATFORM = Platform(
    adapter=DemarchesSimplifieesAdapter,
    label="Démarches simplifiées / démarche numérique",
    options=DemarchesSimplifieesOptions,
    url_pattern=re.compile(r"^https?://[^/]+(/.*)?/commencer/[A-Za-z0-9_-]+/?$"),
    url_hint="https://www.demarches-simplifiees.fr/commencer/<slug>",
)
