"""Adapter for démarches-simplifiées ("démarche numérique") request forms.

Anonymously one can only see whether a démarche's public page exists and is open; its
queue is internal, so no slot is ever observable. Outcomes (documented on the site's
methodology page):

- form open (title and the "Commencer la démarche" entry) → `form_open`: the procedure
  can be started; valid, and not counted as "no way to book"; never `available`;
- form closed ("Cette démarche est close" / no more files accepted) → `procedure_missing`
  (`form_closed`);
- form absent (HTTP 404 or "n'existe pas") → `procedure_missing` (`form_absent`);
- anything else → `unrecognized`; 403/429/5xx and network errors as everywhere.
"""

from __future__ import annotations

import re

import httpx

from observatoire.adapters import register
from observatoire.adapters.base import (
    Adapter,
    ProbeContext,
    ProbeStop,
    blocked_sign,
    check_status,
    page_text,
    parse_html,
)
from observatoire.config import Target
from observatoire.outcomes import Outcome, ProbeResult

CLOSED = re.compile(
    r"cette démarche est (close|terminée|fermée)|n'est plus possible de déposer|"
    r"ne (peut|pouvez) plus (être déposée|déposer)",
    re.I,
)
ABSENT = re.compile(r"page (non trouvée|introuvable)|n'existe pas", re.I)
START = re.compile(r"commencer la démarche|créer un compte|j'ai déjà un compte", re.I)


@register
class DemarchesSimplifieesAdapter(Adapter):
    name = "demarches_simplifiees"
    version = "1.0"
    transport = "http"
    outcomes = frozenset({Outcome.FORM_OPEN, Outcome.PROCEDURE_MISSING})

    async def run(self, target: Target, ctx: ProbeContext) -> ProbeResult:
        response = await ctx.http.get(target.url)
        if response.status_code == 404:
            return self._result(Outcome.PROCEDURE_MISSING, "form_absent", response)
        check_status(response)
        return self._classify_page(response.content, str(response.url), response.status_code)

    @staticmethod
    def _result(outcome: Outcome, detail: str, response: httpx.Response) -> ProbeResult:
        return ProbeResult(
            outcome,
            detail,
            http_status=response.status_code,
            final_url=str(response.url),
            page=response.content,
        )

    def _classify_page(self, page: bytes, url: str | None, status: int | None) -> ProbeResult:
        def result(outcome: Outcome, detail: str = "") -> ProbeResult:
            return ProbeResult(outcome, detail, http_status=status, final_url=url, page=page)

        try:
            doc = parse_html(page.decode("utf-8", errors="replace"))
        except ProbeStop as stop:
            return stop.result
        text = page_text(doc)
        sign = blocked_sign(doc, text)
        if sign:
            return result(Outcome.BLOCKED, sign)
        if CLOSED.search(text):
            return result(Outcome.PROCEDURE_MISSING, "form_closed")
        if ABSENT.search(text):
            return result(Outcome.PROCEDURE_MISSING, "form_absent")
        if doc.xpath("//h1") and START.search(text):
            return result(Outcome.FORM_OPEN, "form_open")
        return result(Outcome.UNRECOGNIZED, "page")

    def classify(self, page: bytes, url: str | None = None) -> ProbeResult:
        return self._classify_page(page, url, None)
