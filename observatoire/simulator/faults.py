"""Fault injection: every way a real booking site misbehaves, switchable per path
prefix (a site, a form) and for a share of requests, optionally only during a period.

Some faults hide the truth (the robot must then record neither `no_slot` nor
`available`); others leave it visible (changed layout with the same words, a
mislabelled charset): the robot must then record the truth or `unrecognized`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from observatoire.simulator.availability import unit
from observatoire.simulator.http import Request, Response
from observatoire.simulator.scenario import FAULT_KINDS, FaultRule

__all__ = ["FAULT_KINDS", "FaultBoard", "FaultRule"]

#: Faults after which the truth is still on the page.
TRUTH_VISIBLE = frozenset({"changed_layout", "charset_latin1_as_utf8", "charset_utf8_as_latin1"})
#: Faults the platform module renders itself (the page changes, not the transport).
PLATFORM_FAULTS = frozenset({"changed_layout", "new_wording", "truncated_body"})
CHARSET_FAULTS = frozenset({"charset_latin1_as_utf8", "charset_utf8_as_latin1"})


@dataclass
class FaultBoard:
    """The active fault rules; tests change them while the simulator runs."""

    seed: int
    rules: list[FaultRule]

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, int] = {}

    def set(self, rules: list[FaultRule]) -> None:
        with self._lock:
            self.rules = list(rules)

    def pick(self, path: str, anchor: datetime, now: datetime) -> str | None:
        """The fault this request gets, if any. A share is drawn from the request's rank
        among its own site's requests (the path's first segment), not among all
        requests: the robot sends one request at a time per site, so each site's
        sequence, and the demo's outcome counts, are the same from run to run however
        concurrent sites interleave."""
        site = path.lstrip("/").split("/", 1)[0]
        with self._lock:
            counter = self._counters[site] = self._counters.get(site, 0) + 1
            rules = list(self.rules)
        for index, rule in enumerate(rules):
            if not path.startswith(rule.path_prefix):
                continue
            if rule.period is not None and not rule.period.contains(anchor, now):
                continue
            if rule.share >= 1 or unit(self.seed, "fault", index, site, counter) < rule.share:
                return rule.kind
        return None


PROXY_502 = (
    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway"
    "</h1></center><hr><center>nginx</center></body></html>"
)
MAINTENANCE = (
    '<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8"><title>Maintenance</title>'
    "</head><body><h1>Site en maintenance</h1><p>Le service est momentanément "
    "indisponible. Merci de revenir plus tard.</p></body></html>"
)
WAF = (
    "<html><head><title>Request Rejected</title></head><body>Request forbidden by "
    "administrative rules.</body></html>"
)
CAPTCHA = (
    '<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8"><title>Vérification</title>'
    '</head><body><h1>Contrôle de sécurité</h1><form method="post"><img id="captcha-image" '
    'src="/captcha.png" alt="captcha"><input name="captcha_answer"><button>Valider</button>'
    "</form></body></html>"
)
#: Cloudflare's block page, as platforms.md §2 "Blocking" describes it.
CLOUDFLARE_BLOCK = """<!DOCTYPE html>
<!--[if lt IE 7]> <html class="no-js ie6 oldie" lang="en-US"> <![endif]-->
<html class="no-js" lang="en-US"><head>
<title>Attention Required! | Cloudflare</title>
<meta charset="UTF-8"><meta name="robots" content="noindex, nofollow">
<link rel="stylesheet" id="cf_styles-css" href="/cdn-cgi/styles/cf.errors.css">
</head><body>
<div id="cf-wrapper"><div class="cf-alert cf-alert-error cf-cookie-error" id="cookie-alert">
Please enable cookies.</div>
<div id="cf-error-details" class="cf-error-details-wrapper">
<div class="cf-wrapper cf-header cf-error-overview">
<h1 data-translate="block_headline">Sorry, you have been blocked</h1>
<h2 class="cf-subheadline"><span data-translate="unable_to_access">You are unable to
access</span> the site</h2></div>
<div class="cf-section cf-wrapper"><div class="cf-columns two"><div class="cf-column">
<h2 data-translate="blocked_why_headline">Why have I been blocked?</h2>
<p>This website is using a security service to protect itself from online attacks.
The action you just performed triggered the security solution.</p></div></div></div>
<div class="cf-error-footer cf-wrapper"><p><span class="cf-footer-item">Cloudflare Ray ID:
<strong class="font-semibold">8f3a1c2b9d4e5f60</strong></span>
<span class="cf-footer-separator">&bull;</span>
<span class="cf-footer-item">Performance &amp; security by Cloudflare</span></p></div>
</div></div></body></html>"""
#: Cloudflare's managed challenge ("Just a moment..." with a Turnstile widget).
CLOUDFLARE_CHALLENGE = """<!DOCTYPE html><html lang="en-US"><head>
<title>Just a moment...</title>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8">
<meta name="robots" content="noindex,nofollow">
</head><body><div class="main-wrapper" role="main"><div class="main-content">
<h1 class="zone-name-title h1">www.example.gouv.fr</h1>
<h2 class="h2" id="challenge-running">Verify you are human by completing the action
below.</h2>
<div id="challenge-stage"><div class="cf-turnstile-wrapper">
<input type="hidden" name="cf-turnstile-response" id="cf-chl-widget_response"></div></div>
<div id="challenge-body-text" class="core-msg spacer">www.example.gouv.fr needs to review
the security of your connection before proceeding.</div>
</div></div>
<script>(function(){window._cf_chl_opt={cvId: '3',cZone: "www.example.gouv.fr",
cType: 'managed',cRay: '8f3a1c2b9d4e5f61'};}());</script>
<div class="footer" role="contentinfo"><div class="footer-inner">
<div class="clearfix diagnostic-wrapper"><div class="ray-id">Ray ID:
<code>8f3a1c2b9d4e5f61</code></div></div>
<div class="text-center">Performance &amp; security by Cloudflare</div></div></div>
</body></html>"""
WAITING = (
    '<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8"><title>File d\'attente'
    "</title></head><body><h1>Forte affluence</h1><p>Vous êtes dans la file d'attente "
    "virtuelle. Temps d'attente estimé : 12 minutes. Ne fermez pas cette page.</p></body></html>"
)


def fault_response(kind: str, request: Request) -> Response | None:
    """The response for a transport or page fault; None for platform-rendered faults."""
    if kind == "connect_timeout":
        return Response(action="blackhole")
    if kind == "read_timeout":
        return Response(action="hang")
    if kind == "connection_reset":
        return Response(action="reset")
    if kind == "http_500":
        return Response(500, b"Internal Server Error", "text/plain")
    if kind == "http_502":
        return Response(502, PROXY_502.encode(), "text/html")
    if kind == "maintenance_503":
        return Response(503, MAINTENANCE.encode(), headers=[("Retry-After", "120")])
    if kind == "waf_403":
        return Response(403, WAF.encode(), "text/html")
    if kind == "rate_limit_429":
        return Response(429, b"Too Many Requests", "text/plain", [("Retry-After", "60")])
    if kind == "captcha":
        return Response.html(CAPTCHA)
    if kind == "cloudflare_block":
        return Response(
            403, CLOUDFLARE_BLOCK.encode(), "text/html; charset=UTF-8", [("cf-ray", "8f3a-CDG")]
        )
    if kind == "cloudflare_challenge":
        return Response(
            403,
            CLOUDFLARE_CHALLENGE.encode(),
            "text/html; charset=UTF-8",
            [("cf-mitigated", "challenge"), ("cf-ray", "8f3a-CDG")],
        )
    if kind == "waiting_room":
        return Response.html(WAITING)
    if kind == "redirect_loop":
        target = request.path + ("/" if not request.path.endswith("/") else "")
        if request.path.endswith("/"):
            target = request.path.rstrip("/")
        return Response.redirect(target)
    return None


def apply_charset_fault(kind: str, response: Response) -> Response:
    if kind == "charset_latin1_as_utf8" and response.content_type.startswith("text/html"):
        text = response.body.decode("utf-8")
        response.body = text.encode("latin-1", errors="replace")
        response.content_type = "text/html; charset=utf-8"
    elif kind == "charset_utf8_as_latin1" and response.content_type.startswith("text/html"):
        response.content_type = "text/html; charset=iso-8859-1"
    return response
