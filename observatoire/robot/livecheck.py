"""`observatoire targets check --live ID`: one polite look at a target's first page.

Before enabling a target an operator wants to know three things, without a full probe:
does the link still answer, which booking platform answers it, and has the prefecture
retired it ("Ce lien a été désactivé définitivement")? This module fetches the target's
URL once (redirects followed, each hop through the shared PolitePolicy: the robot's
User-Agent with its contact, the per-host gate, the minimum delay) and reads the page
for the signs the project's platform notes give of each platform. It stores nothing
and never goes past the first page: no form is posted, no captcha is touched.

The signs are deliberately few and structural (ids, URL paths, a platform's fixed
wording): the verdict is a hint for a person, who then runs one supervised probe.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from lxml import html as lxml_html

from observatoire.adapters.base import blocked_sign, normalize_text, page_text, response_text
from observatoire.adapters.legacy_booking import RETIRED
from observatoire.config import Target
from observatoire.platforms import PLATFORMS
from observatoire.robot.politeness import HostPaused, PolitePolicy, TooManyRedirects
from observatoire.robot.runtime import Runtime
from observatoire.settings import Settings


@dataclass(frozen=True)
class Sign:
    """One thing that identifies a platform: an XPath that must match the page, a
    regular expression over its visible text, or one over the final URL's path."""

    platform: str
    what: str
    xpath: str | None = None
    text: re.Pattern[str] | None = None
    path: re.Pattern[str] | None = None


#: From platforms.md (§1–§4); each platform needs a sign on the page itself, the URL
#: alone proves nothing (a redirect to a home page keeps a plausible path).
SIGNS: tuple[Sign, ...] = (
    Sign(
        "legacy_booking", "booking form #FormBookingCreate", xpath="//form[@id='FormBookingCreate']"
    ),
    Sign(
        "legacy_booking",
        "booking module (#global_Booking)",
        xpath="//*[@id='global_Booking' or @id='inner_Booking']",
    ),
    Sign("legacy_booking", "URL /booking/create/<id>", path=re.compile(r"/booking/create/\d+")),
    Sign(
        "rdv_prefecture",
        "RDV-Préfecture stepper (Étape N sur 6)",
        text=re.compile(r"Étape \d sur 6"),
    ),
    Sign(
        "rdv_prefecture",
        "'Prendre un rendez-vous' button",
        xpath="//a[contains(@href, '/cgu/')]"
        "[contains(normalize-space(.), 'Prendre un rendez-vous')]",
    ),
    Sign(
        "rdv_prefecture",
        "CaptchEtat answer field",
        xpath="//input[@name='captchaUsercode']",
    ),
    Sign(
        "rdv_prefecture",
        "URL /rdvpref/reservation/demarche/<id>",
        path=re.compile(r"/rdvpref/reservation/demarche/\d+"),
    ),
    Sign("eappointment", "postal-code field #CPId", xpath="//input[@id='CPId']"),
    Sign("eappointment", "motive checkboxes", xpath="//input[@name='selectedMotiveKeyList']"),
    Sign("eappointment", "URL /eAppointment…", path=re.compile(r"/eAppointment")),
    Sign(
        "demarches_simplifiees",
        "form open: 'Commencer la démarche'",
        text=re.compile(r"Commencer la démarche"),
    ),
    Sign(
        "demarches_simplifiees",
        "form closed: 'La démarche … est close depuis'",
        text=re.compile(
            r"La démarche .{1,300}? est close depuis|Cette démarche en ligne a été close"
        ),
    ),
    Sign(
        "demarches_simplifiees",
        "form absent: 'La démarche n'existe pas'",
        text=re.compile(r"La démarche n'existe pas"),
    ),
    Sign("demarches_simplifiees", "URL /commencer/<slug>", path=re.compile(r"/commencer/[\w-]+")),
    Sign("demarches_simplifiees", "URL /fermeture/<slug>", path=re.compile(r"/fermeture/[\w-]+")),
)


@dataclass
class LiveLook:
    """What one look at a target's first page showed."""

    url: str
    final_url: str = ""
    status: int | None = None
    requests: int = 0
    #: The platform the page's own signs point to (None: none, or two disagree).
    platform: str | None = None
    signs: list[str] = field(default_factory=list)
    retired: bool = False
    blocked: str | None = None
    error: str | None = None

    def verdict(self, configured: str) -> tuple[bool, str]:
        """(fine, one sentence for the operator)."""
        if self.error:
            return False, f"could not fetch the page: {self.error}"
        if self.retired:
            return False, (
                f"the link is retired ('{RETIRED}'): a finding to note (date, URL); set "
                "`enabled: false` and look for the procedure's new page"
            )
        if self.blocked:
            return False, (
                f"the site answered with a block ({self.blocked}): do not insist; try "
                "again later, and raise the interval if it repeats"
            )
        if self.platform is None:
            return False, (
                "no known booking platform recognised on this page: check the URL in a "
                "browser; a `scripted` target may describe another site"
            )
        if self.platform != configured and configured != "scripted":
            return False, (
                f"the page looks like {self.platform}, but the target says platform: {configured}"
            )
        if self.status is not None and self.status >= 400:
            return False, f"HTTP {self.status}: the page is not there"
        if any(sign.startswith(f"{self.platform}: form absent") for sign in self.signs):
            return False, (
                "the platform says this démarche does not exist: check the slug (it may "
                "have been replaced by a new one)"
            )
        return True, f"the page looks like {self.platform}, as configured"


def recognise(look: LiveLook, body: str) -> LiveLook:
    """Fill `look` from the page's text: retired, blocked, and the platform whose page
    signs (not only URL signs) match. Pure: the unit of the live check."""
    try:
        doc = lxml_html.document_fromstring(body) if body.strip() else None
    except (ValueError, lxml_html.etree.ParserError):
        doc = None
    text = page_text(doc) if doc is not None else normalize_text(body)
    path = urlsplit(look.final_url or look.url).path
    look.retired = normalize_text(RETIRED) in text
    if not look.retired:
        look.blocked = blocked_sign(doc, text)
    page_platforms: set[str] = set()
    url_platforms: set[str] = set()
    for sign in SIGNS:
        if sign.xpath is not None:
            hit = doc is not None and bool(doc.xpath(sign.xpath))
        elif sign.text is not None:
            hit = bool(sign.text.search(text))
        else:
            hit = bool(sign.path and sign.path.search(path))
        if hit:
            look.signs.append(f"{sign.platform}: {sign.what}")
            (url_platforms if sign.path is not None else page_platforms).add(sign.platform)
    if len(page_platforms) == 1:
        look.platform = page_platforms.pop()
    elif not page_platforms and look.retired and len(url_platforms) == 1:
        # A retirement notice replaces the whole module: the URL says whose link it was.
        look.platform = url_platforms.pop()
    return look


async def look_once(target: Target, policy: PolitePolicy) -> LiveLook:
    """GET the target's URL once through the policy (redirects followed, each hop
    through the host's gate) and recognise what answered."""
    look = LiveLook(url=target.url)
    session = policy.session()
    try:
        response = await session.get(target.url)
    except HostPaused as exc:
        look.error = f"the host asked us to wait ({exc})"
    except TooManyRedirects as exc:
        look.error = str(exc)
    except httpx.TimeoutException:
        look.error = "timeout"
    except httpx.HTTPError as exc:
        look.error = f"{type(exc).__name__}: {exc}"
    else:
        look.status = response.status_code
        look.final_url = str(response.url)
        recognise(look, response_text(response))
    finally:
        look.requests = session.requests_made
        await session.aclose()
    return look


@dataclass(frozen=True)
class LiveCheck:
    """One look at a target's first page, and what the operator is told about it."""

    target: Target
    look: LiveLook
    #: The User-Agent the request was sent with (the robot's, with its contact).
    user_agent: str

    @property
    def fine(self) -> bool:
        """The page looks like the configured platform and needs no attention."""
        return self.look.verdict(self.target.platform)[0]

    def lines(self) -> list[str]:
        """The report: what answered, the signs seen, the verdict and, when fine, the
        next step (a supervised probe, or the volunteer's page for a captcha)."""
        target, look = self.target, self.look
        fine, sentence = look.verdict(target.platform)
        lines = [
            f"{target.id} ({target.platform}): {look.url}",
            f"  answered: HTTP {look.status} at {look.final_url}"
            if look.status is not None
            else "  answered: nothing",
            f"  requests: {look.requests} (User-Agent: {self.user_agent})",
            f"  recognised platform: {look.platform or 'none'}",
            *(f"    sign: {sign}" for sign in look.signs),
            f"  retired link: {'yes' if look.retired else 'no'}",
            f"  verdict: {sentence}",
        ]
        if fine:
            nxt = (
                "a captcha comes first: it waits for a volunteer (`observatoire assist`)"
                if PLATFORMS[target.platform].captcha_first
                else f"one supervised probe: `observatoire probe {target.id}`"
            )
            lines.append(f"  next: {nxt}")
        return lines


def check_live(settings: Settings, configured: Sequence[Target], target: Target) -> LiveCheck:
    """One polite GET of `target`'s URL (redirects followed), stored nowhere. The
    identification rule is checked first; the per-host gate is the one shared with a
    running robot, or without a database yet this process's own (one request anyway).
    `configured` are the file's targets, whose host groups the gate joins."""
    runtime = Runtime.for_hosts(settings, [target.host], database="optional")

    async def look() -> LiveLook:
        policy = runtime.policy()
        policy.join_groups(configured)
        try:
            return await look_once(target, policy)
        finally:
            await policy.aclose()

    return LiveCheck(target, asyncio.run(look()), runtime.user_agent)
