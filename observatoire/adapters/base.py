"""What every adapter shares: the probe context, the transport-error mapping and the
page signs (captcha, WAF, waiting room) that mean `blocked` on any platform.

An adapter knows one platform *family*. It parses; it never sleeps, retries or picks a
User-Agent (the policy layer does). When in doubt it answers `unrecognized`: only a
positively recognised message may ever become `no_slot`.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import httpx
from lxml import etree
from lxml import html as lxml_html

from observatoire.clock import Clock
from observatoire.config import Target
from observatoire.outcomes import Outcome, ProbeResult
from observatoire.robot.browser import BrowserPool, BrowserUnavailable
from observatoire.robot.politeness import HostPaused, HttpSession, TooManyRedirects


class ProbeStop(Exception):
    """Raised inside an adapter to end the probe with a known result."""

    def __init__(self, result: ProbeResult) -> None:
        super().__init__(result.detail)
        self.result = result


@dataclass
class ProbeContext:
    http: HttpSession
    clock: Clock
    #: The shared browser, for adapters whose transport is "browser".
    browser: BrowserPool | None = None

    def require_browser(self) -> BrowserPool:
        if self.browser is None:
            raise ProbeStop(ProbeResult(Outcome.ERROR, "browser_unavailable"))
        return self.browser


def normalize_text(text: str) -> str:
    """Fold typographic variants so a message matches however it is typeset, but
    never loosely: the words and their order must be the same."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\u2019", "'").replace("\u00a0", " ").replace("\u202f", " ")
    return re.sub(r"\s+", " ", text).strip()


def element_xpath(expression: str) -> Callable[[lxml_html.HtmlElement], list[Any]]:
    """An XPath that selects elements, compiled once. A string given to `.xpath()` is
    compiled again at each call, and the checks below run on every response of every
    probe: compiling them once took a quarter off a legacy probe's parsing."""
    compiled = etree.XPath(expression)

    def select(node: lxml_html.HtmlElement) -> list[Any]:
        return cast(list[Any], compiled(node))

    return select


_NOT_TEXT = element_xpath("//script|//style|//noscript")
_SCRIPTS_INSIDE = element_xpath(".//script|.//style")


def page_text(doc: lxml_html.HtmlElement) -> str:
    for bad in _NOT_TEXT(doc):
        bad.drop_tree()
    return normalize_text(doc.text_content())


_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", re.I)
_META_CHARSET = re.compile(rb"<meta[^>]+?charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.I | re.S)


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name.strip()).name
    except LookupError:
        return None


def decode_page(data: bytes, content_type: str | None = None) -> str:
    """A page's text in the encoding the site declared: the `Content-Type` charset first,
    else a `<meta charset>` (or `http-equiv`) near the top, else UTF-8.

    Old eZ Publish sites serve ISO-8859-1 declared only in a `<meta>`; read as UTF-8,
    "ultérieurement" would become "ult\ufffdrieurement" and the message would not
    match. The same function serves live pages and saved evidence (`classify`), so a
    page is read the same way whenever it is read. Bytes that do not decode are
    replaced (never guessed), so a mislabelled page fails to match rather than match.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    codec = None
    if content_type:
        header = _HEADER_CHARSET.search(content_type)
        codec = _codec(header.group(1)) if header else None
    if codec is None:
        meta = _META_CHARSET.search(data[:4096])
        codec = _codec(meta.group(1).decode("ascii", "replace")) if meta else None
    return data.decode(codec or "utf-8", errors="replace")


def response_text(response: httpx.Response) -> str:
    """An httpx response's page, decoded as the site declared it (see decode_page)."""
    return decode_page(response.content, response.headers.get("content-type"))


_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)
HIDDEN_XPATH = "//*[@hidden or @style]"
_HIDDEN = element_xpath(HIDDEN_XPATH)


def drop_hidden(doc: lxml_html.HtmlElement, also: str | None = None) -> list[str]:
    """Remove the elements a visitor cannot see (inline `display:none` or
    `visibility:hidden`, the `hidden` attribute) and return their texts, folded.
    `also` is an XPath of further elements a platform is known to hide (its hiding
    utility classes, say), removed the same way.

    A message that only a parser sees is not the platform telling a visitor anything:
    a no-slot sentence hidden in a page that offers to continue must not count. The
    returned texts let the caller say *why* a page was refused (the message was there,
    but hidden). Stylesheets are not evaluated: only what the markup itself hides."""
    hidden: list[str] = []
    dropped: set[lxml_html.HtmlElement] = set()
    extra = set(doc.xpath(also)) if also else set()
    candidates = doc.xpath(f"{HIDDEN_XPATH} | {also}") if also else _HIDDEN(doc)
    for element in candidates:
        style = element.get("style") or ""
        if (
            element not in extra
            and element.get("hidden") is None
            and not _HIDDEN_STYLE.search(style)
        ):
            continue
        if any(ancestor in dropped for ancestor in element.iterancestors()):
            continue  # gone with a hidden ancestor
        for bad in _SCRIPTS_INSIDE(element):
            bad.drop_tree()
        hidden.append(normalize_text(element.text_content()))
        dropped.add(element)
        if element.getparent() is not None:
            element.drop_tree()
    return hidden


def visible_text(doc: lxml_html.HtmlElement) -> tuple[str, list[str]]:
    """The page's visible text (hidden elements, scripts and styles removed) and the
    texts that were hidden. Mutates `doc`."""
    hidden = drop_hidden(doc)
    return page_text(doc), hidden


def parse_html(body: str) -> lxml_html.HtmlElement:
    if not body.strip():
        raise ProbeStop(ProbeResult(Outcome.UNRECOGNIZED, "empty_page"))
    try:
        return lxml_html.document_fromstring(body)
    except (ValueError, lxml_html.etree.ParserError):
        raise ProbeStop(ProbeResult(Outcome.UNRECOGNIZED, "unparseable_page")) from None


WAITING_ROOM = re.compile(
    r"salle d'attente virtuelle|file d'attente virtuelle|vous êtes dans la file d'attente|"
    r"waiting room|queue-it",
    re.I,
)
WAF = re.compile(
    r"request forbidden by administrative rules|the requested url was rejected|"
    r"access denied|accès refusé|attention required!? \| cloudflare",
    re.I,
)
CAPTCHA_HEADING = re.compile(r"captcha|contrôle de sécurité|je ne suis pas un robot", re.I)
CAPTCHA_WIDGET = (
    "//*[contains(translate(concat(@id, ' ', @name, ' ', @class, ' ', @src), "
    "'CAPTH', 'capth'), 'captcha')] | //rdv-captchetat"
)
#: Cloudflare's block page (platforms.md §2 "Blocking"): its ids, heading and footer.
CLOUDFLARE_BLOCK_XPATH = "//*[@id='cf-wrapper' or @id='cf-error-details']"
CLOUDFLARE_BLOCK_TEXT = re.compile(r"sorry, you have been blocked|cloudflare ray id", re.I)
#: Cloudflare's managed challenge: the Turnstile answer field, the challenge options
#: object, the "Just a moment..." title.
CLOUDFLARE_CHALLENGE_XPATH = (
    "//input[@name='cf-turnstile-response'] | //*[@id='challenge-form'] | "
    "//script[contains(., '_cf_chl_opt')] | //title[starts-with(normalize-space(.), "
    "'Just a moment')]"
)
CLOUDFLARE_CHALLENGE_TEXT = re.compile(
    r"_cf_chl_opt|cf-turnstile-response|verify you are human.*ray id", re.I | re.S
)


_CLOUDFLARE_CHALLENGE = element_xpath(CLOUDFLARE_CHALLENGE_XPATH)
_CLOUDFLARE_BLOCK = element_xpath(CLOUDFLARE_BLOCK_XPATH)
_CAPTCHA_WIDGET = element_xpath(CAPTCHA_WIDGET)
_HEADINGS = element_xpath("//h1|//h2|//title")


def cloudflare_sign(doc: lxml_html.HtmlElement | None, text: str) -> str | None:
    """`cloudflare_block` or `cloudflare_challenge` when the page is Cloudflare's, with
    whatever status it came (a 200 included)."""
    if doc is not None:
        if _CLOUDFLARE_CHALLENGE(doc):
            return "cloudflare_challenge"
        if _CLOUDFLARE_BLOCK(doc):
            return "cloudflare_block"
    if CLOUDFLARE_CHALLENGE_TEXT.search(text):
        return "cloudflare_challenge"
    if CLOUDFLARE_BLOCK_TEXT.search(text):
        return "cloudflare_block"
    return None


def blocked_sign(doc: lxml_html.HtmlElement | None, text: str) -> str | None:
    """A page that stands between the robot and the answer: Cloudflare, captcha, waiting
    room, WAF.

    A captcha is recognised by its widget or by a heading, not by a mention in a
    progress bar (the legacy module lists "Contrôle de sécurité" on every step)."""
    cloudflare = cloudflare_sign(doc, text)
    if cloudflare:
        return cloudflare
    if doc is not None:
        if _CAPTCHA_WIDGET(doc):
            return "captcha"
        for heading in _HEADINGS(doc):
            if CAPTCHA_HEADING.search(heading.text_content() or ""):
                return "captcha"
    if WAITING_ROOM.search(text):
        return "waiting_room"
    if WAF.search(text):
        return "waf"
    return None


#: The robot's own banner on captured pages (see browser_support.capture).
STAMP = "//*[@data-observatoire='stamp']"


def read_saved_page(
    page: bytes, content_type: str | None = None
) -> tuple[lxml_html.HtmlElement, str]:
    """A saved page's document and text, for `classify`. Raises ProbeStop when the page
    cannot be read (`unrecognized`) or shows a captcha, WAF or waiting room (`blocked`).

    The page is decoded as it declares itself (decode_page), as a live page is."""
    doc = parse_html(decode_page(page, content_type))
    raw = lxml_html.tostring(doc, encoding="unicode")
    text = page_text(doc)
    sign = blocked_sign(doc, text) or cloudflare_sign(None, raw)
    if sign:
        raise ProbeStop(ProbeResult(Outcome.BLOCKED, sign, page=page))
    return doc, text


def stamp_text(doc: lxml_html.HtmlElement) -> str:
    """What the robot wrote in its stamp when it captured the page (a JavaScript alert's
    text, for instance): never part of the site's own text."""
    return " ".join(normalize_text(e.text_content()) for e in doc.xpath(STAMP))


def status_result(
    status: int, final_url: str | None, page: bytes | None = None
) -> ProbeResult | None:
    """The outcome an HTTP status imposes whatever the platform: 403/429 are `blocked`,
    other 4xx and 5xx are `error`; None when the page must be read.

    A Cloudflare block or challenge page (403, or 503 for the older challenge) is
    `blocked` with its own detail: it measures the site's defences, not its health."""
    if status in (403, 503) and page:
        raw = decode_page(page[:65536])
        sign = cloudflare_sign(None, raw)
        if sign:
            return ProbeResult(
                Outcome.BLOCKED, sign, http_status=status, final_url=final_url, page=page
            )
    if status in (403, 429):
        return ProbeResult(
            Outcome.BLOCKED, f"http:{status}", http_status=status, final_url=final_url, page=page
        )
    if status >= 400:
        return ProbeResult(
            Outcome.ERROR, f"http:{status}", http_status=status, final_url=final_url, page=page
        )
    return None


def check_status(response: httpx.Response) -> None:
    """Raise ProbeStop when the response's status ends the probe."""
    result = status_result(response.status_code, str(response.url), response.content)
    if result is not None:
        raise ProbeStop(result)


def transport_error(exc: Exception) -> ProbeResult:
    """Network failures are `error`, never a statement about slots."""
    if isinstance(exc, httpx.ConnectTimeout):
        detail = "timeout:connect"
    elif isinstance(exc, httpx.ReadTimeout):
        detail = "timeout:read"
    elif isinstance(exc, httpx.TimeoutException):
        detail = "timeout"
    elif isinstance(exc, httpx.ConnectError):
        detail = (
            "dns" if "name" in str(exc).lower() and "resolution" in str(exc).lower() else "connect"
        )
    elif isinstance(exc, httpx.RemoteProtocolError):
        detail = "protocol"
    elif isinstance(exc, httpx.ReadError):
        detail = "connection_reset"
    elif isinstance(exc, httpx.DecodingError):
        detail = "decoding"
    elif isinstance(exc, TooManyRedirects):
        detail = "redirect_loop"
    elif isinstance(exc, httpx.HTTPError):
        detail = f"http_error:{exc.__class__.__name__}"
    else:
        detail = f"exception:{exc.__class__.__name__}"
    return ProbeResult(Outcome.ERROR, detail)


class Adapter(ABC):
    #: Registry name; the `platform` of the targets it serves.
    name: ClassVar[str]
    #: Stored with every probe: bump it whenever parsing changes, so a change of
    #: parser can be traced in the figures.
    version: ClassVar[str]
    #: "http" (httpx) or "browser" (Playwright).
    transport: ClassVar[str] = "http"
    #: The valid outcomes this platform can show (contract fixtures must cover each).
    outcomes: ClassVar[frozenset[Outcome]] = frozenset(
        {Outcome.AVAILABLE, Outcome.NO_SLOT, Outcome.PROCEDURE_MISSING}
    )

    async def probe(self, target: Target, ctx: ProbeContext) -> ProbeResult:
        """Observe `target` once; never raises for anything the site does."""
        try:
            return await self.run(target, ctx)
        except ProbeStop as stop:
            return stop.result
        except HostPaused:
            return ProbeResult(Outcome.BLOCKED, "host_paused")
        except BrowserUnavailable:
            return ProbeResult(Outcome.ERROR, "browser_unavailable")
        except (httpx.HTTPError, TooManyRedirects) as exc:
            return transport_error(exc)

    @abstractmethod
    async def run(self, target: Target, ctx: ProbeContext) -> ProbeResult:
        """The platform's flow. Raise ProbeStop to end early."""

    @abstractmethod
    def classify(self, page: bytes, url: str | None = None) -> ProbeResult:
        """The outcome this adapter gives a saved page (for `classify` and contract tests)."""
