"""Adapter for démarche numérique (formerly démarches-simplifiées) request forms.

Anonymously one can only see whether a démarche's public page exists and is open; its
queue is internal, so no slot is ever observable. What the platform does
(the project's platform notes §4, from its open-source controller):

- open: `GET /commencer/<slug>` → 200 with "Commencer la démarche" → `form_open` (valid,
  not counted as "no way to book"; never `available`);
- closed: 302 to `/fermeture/<slug>`, h1 "La démarche <libellé> est close depuis le
  <date longue>" → `procedure_missing`, detail `form_closed:<ISO date>` (or
  `form_closed` when the date cannot be read). The 2020–2022 behaviour (home page with
  "Cette démarche en ligne a été close…") is read too;
- absent: 302 to the home page `/` with the flash "La démarche n’existe pas" →
  `procedure_missing` (`form_absent`); a 404 also;
- replaced: 302 to another `/commencer/<slug>`: the successor is read and the detail
  records its slug (`…;replaced_by:<slug>`).

Every verdict rests on the final URL *and* on the message in its place: the flash in
the flash/alert element on the home page, the closing heading on `/fermeture/<slug>`.
Words elsewhere (an open form whose FAQ says "n'existe pas") prove nothing: such a page
is `form_open` or `unrecognized`. 403/429/5xx, Cloudflare and network errors as
everywhere.
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
    normalize_text,
    parse_html,
    response_text,
    visible_text,
)
from observatoire.config import Target
from observatoire.french import MONTH_NUMBER
from observatoire.outcomes import Outcome, ProbeResult
from observatoire.platforms import DemarchesSimplifieesOptions, Platform

#: The flash shown on the home page after a redirect from an unknown slug.
ABSENT_FLASH = normalize_text("La démarche n'existe pas")
#: The 2020–2022 closed démarche: home page with this notice.
OLD_CLOSED = re.compile(
    r"cette démarche en ligne a été close|il n'est plus possible de déposer de dossier", re.I
)
CLOSED_HEADING = re.compile(
    r"^La démarche (?P<label>.+) est close depuis le (?P<date>.+?)\.?$", re.I | re.S
)
LONG_DATE = re.compile(r"(?P<day>\d{1,2})(?:er)? (?P<month>[a-zéû]+) (?P<year>\d{4})", re.I)
START = re.compile(r"commencer la démarche", re.I)
#: Where a Rails/DSFR page puts its flash messages.
FLASH = (
    "//*[@id='flash_messages' or @id='flash-messages' or @role='alert' or "
    "contains(concat(' ', normalize-space(@class), ' '), ' fr-alert ') or "
    "contains(concat(' ', normalize-space(@class), ' '), ' flash ') or "
    "contains(concat(' ', normalize-space(@class), ' '), ' alert ')]"
)
COMMENCER = re.compile(r"/commencer/(?P<slug>[A-Za-z0-9_-]+)/?$")
FERMETURE = re.compile(r"/fermeture/(?P<slug>[A-Za-z0-9_-]+)/?$")
#: The home page: `/`, or `/<host>/` when a loopback simulator prefixes paths by host.
HOME = re.compile(r"^(/[^/]+\.[^/]+)?/?$")


def _slug(url: str | None, pattern: re.Pattern[str]) -> str | None:
    if not url:
        return None
    match = pattern.search(urlsplit(url).path)
    return match.group("slug") if match else None


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


def _flash_text(doc: lxml_html.HtmlElement) -> list[str]:
    return [normalize_text(e.text_content()) for e in doc.xpath(FLASH)]


class DemarchesSimplifieesAdapter(Adapter):
    name = "demarches_simplifiees"
    version = "2.0"
    transport = "http"
    outcomes = frozenset({Outcome.FORM_OPEN, Outcome.PROCEDURE_MISSING})

    async def run(self, target: Target, ctx: ProbeContext) -> ProbeResult:
        response = await ctx.http.get(target.url)
        final = str(response.url)
        if response.status_code == 404:
            return ProbeResult(
                Outcome.PROCEDURE_MISSING,
                "form_absent",
                http_status=404,
                final_url=final,
                page=response.content,
            )
        check_status(response)
        result = self._classify_text(
            response.content, response_text(response), final, response.status_code
        )
        wanted = _slug(target.url, COMMENCER)
        landed = _slug(final, COMMENCER)
        if wanted and landed and landed != wanted and result.outcome is not Outcome.BLOCKED:
            detail = f"{result.detail};replaced_by:{landed}"
            return ProbeResult(
                result.outcome,
                detail,
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
            return ProbeResult(
                Outcome.UNRECOGNIZED,
                "other_demarche",
                http_status=result.http_status,
                final_url=final,
                page=result.page,
            )
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
        text, hidden = visible_text(doc)
        sign = blocked_sign(doc, text)
        if sign:
            return result(Outcome.BLOCKED, sign)
        path = urlsplit(url).path if url else None
        flashes = _flash_text(doc)
        headings = [normalize_text(h.text_content()) for h in doc.xpath("//h1")]

        # Closed: /fermeture/<slug> with its heading.
        closing = next((m for h in headings if (m := CLOSED_HEADING.match(h))), None)
        if path is not None and FERMETURE.search(path):
            if closing is None:
                return result(Outcome.UNRECOGNIZED, "closing_page_without_heading")
            when = _closing_date(closing.group("date"))
            return result(
                Outcome.PROCEDURE_MISSING, f"form_closed:{when}" if when else "form_closed"
            )
        if closing is not None and path is None:
            when = _closing_date(closing.group("date"))
            return result(
                Outcome.PROCEDURE_MISSING, f"form_closed:{when}" if when else "form_closed"
            )

        on_home = path is None or bool(HOME.match(path))
        # Absent: the home page with the flash in its place.
        if any(ABSENT_FLASH in f for f in flashes):
            if not on_home:
                return result(Outcome.UNRECOGNIZED, "absent_flash_not_on_home_page")
            if START.search(text):
                return result(Outcome.UNRECOGNIZED, "contrary_sign:start_button")
            return result(Outcome.PROCEDURE_MISSING, "form_absent")
        if any(ABSENT_FLASH in h for h in hidden):
            return result(Outcome.UNRECOGNIZED, "absent_flash_hidden")
        # 2020–2022: the home page with the closing notice in the flash.
        if any(OLD_CLOSED.search(f) for f in flashes):
            if START.search(text):
                return result(Outcome.UNRECOGNIZED, "contrary_sign:start_button")
            return result(Outcome.PROCEDURE_MISSING, "form_closed")
        # Open: the démarche's page with its start call-out.
        if headings and START.search(text):
            if path is not None and not COMMENCER.search(path):
                return result(Outcome.UNRECOGNIZED, "start_button_off_commencer")
            return result(Outcome.FORM_OPEN, "form_open")
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
