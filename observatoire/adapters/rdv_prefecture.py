"""Adapter for the national RDV-Préfecture platform, observed with a volunteer.

Built from the platform's real pages (the project's platform notes §2, verified 2026):
server-rendered Vertigo pages with Vue 3 / Quasar components over them, DSFR styling,
page data inlined as JSON (`<script id="vui-init-data" type="application/json">`, as
Vertigo-UI writes it). The State's captcha (CaptchEtat) stands before the slot page; it
is served by its own host (PISTE's API), which the page's script calls with a bearer
token the page carries: the image and its id arrive after the page has loaded.
The robot never solves it and never buys an answer: `observatoire assist` shows the
captcha, taken from the robot's own browser, to a volunteer, and this module does the
rest in steps:

1. `open_captcha`: the procedure's page, the link button "Prendre un rendez-vous", then
   the conditions page (`…/cgu/`) with the captcha, once the page's script has put the
   image in. The image comes from the 2025 widget
   (`.captcha img[src^="data:image/png;base64"]`, decoded as is) or from the older one
   (`#captchaFR_CaptchaImage`, shown from a blob: URL, so screenshotted). The robot never
   asks the captcha service for anything itself: `audio` presses the page's own button
   ("Énoncer le code du captcha", the service's own library also spells it without the
   accent; or `#captchaFR_SoundLink`) and keeps the response it triggers, the same
   request a person's click makes (the script fetches it with its token and plays a
   blob).
2. `submit_answer`: types the volunteer's answer and presses "Suivant". A wrong answer
   (`…/cgu/?error=invalidCaptcha`, "Le code de sécurité saisi est incorrect") or an
   expired session (back on `…/cgu/`) gives a new captcha and nothing is recorded.
3. `read_slot_page`: reads the slot page (`rdv-choix-tranche`) and touches nothing on it.
   It never selects a slot, never presses "Suivant", never reaches "Vos informations".

Reading the slot page (`classify` reads saved pages the same way):

- slot radios (`trhId`) → `available`. A radio's label is only a time ("09h30"): its date
  is its column's header ("mardi<br>19/05", or "lundi 18/05" on a phone), the year comes
  from the page data (`critere.premierJour`/`dateMin`), else from a release banner's week,
  else (live pages) from the clock; a week across New Year is handled. Slots that cannot
  be dated are counted with detail `undated_slots`.
- "Prochaine disponibilité le DD/MM/YYYY" → `available` (detail `next_availability`),
  first slot that day at midnight in Paris. The same page says "Aucun créneau disponible
  sur cette semaine": reading that sentence alone as "no slot" was the worst bug an
  observatory could ship.
- `no_slot` only on the slot page (its title or heading "Choisissez votre créneau", or
  the URL `…/creneau/`), with the platform's sentence as the whole text of its element
  (or, for the last week, as the two `<br>`-separated lines of one `div`: "Aucun
  créneau disponible à partir de cette date." then "Veuillez réessayer
  ultérieurement.", that pair and nothing else), visible (not hidden by an
  inline `display:none` or the `hidden` attribute), and no contrary sign (a slot radio,
  a "Prochaine disponibilité" button, even hidden, or a non-empty
  `critere.datePremiereDispo`): "Aucun créneau disponible sur cette semaine"
  (`empty_week`); "Aucun créneau disponible à partir de cette date." with "Veuillez
  réessayer ultérieurement." (`last_week`); "Veuillez réessayer ultérieurement." alone,
  no calendar at all (`calendar_not_displayed`).
- The last reachable week says "Aucun créneau disponible à partir de cette date." whether
  or not it has slots (the front-end script shows it for that week, slots or not): with
  slot radios beside it, the page is `available`.
- The page data is cross-checked against the visible page; when they disagree the page
  is `unrecognized` with a detail `page_data_disagrees:<what>`.
- The personal-data page is recognised by its URL (`/informations`) or an h1/h2 heading
  "Vos informations", never by the stepper's "Étape suivante : Vos informations" that
  the slot page prints.
- Release banners ("Dernière / Prochaine mise en ligne … le DD/MM/YYYY à HH:mm pour des
  créneaux de la semaine du DD/MM/YYYY") are kept with the probe (instants in UTC).

Anything else is `blocked` (captcha, Cloudflare, WAF, 403/429), `error` (timeout, 5xx)
or `unrecognized`.
"""

from __future__ import annotations

import base64
import binascii
import html as html_lib
import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from functools import partial
from typing import TypedDict
from urllib.parse import urlsplit

from lxml import etree
from lxml import html as lxml_html
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Frame, Page, Response

from observatoire.adapters.assisted import AssistedAdapter, Captcha
from observatoire.adapters.base import (
    STAMP,
    ProbeStop,
    drop_hidden,
    element_xpath,
    normalize_text,
    read_saved_page,
)
from observatoire.adapters.browser_support import (
    capture,
    page_signs,
    settle,
    status_stop,
    wait_for,
)
from observatoire.clock import PARIS, paris_midnight
from observatoire.config import Target
from observatoire.french import parse_slots
from observatoire.outcomes import Outcome, ProbeResult
from observatoire.platforms import Platform, RdvPrefectureOptions

# -- the platform's texts (platforms.md §2) ---------------------------------------------
SLOT_PAGE_TITLE = "Choisissez votre créneau"
PERSONAL_HEADING = "Vos informations"
NO_SLOT_WEEK = "Aucun créneau disponible sur cette semaine"
NO_SLOT_AFTER = "Aucun créneau disponible à partir de cette date."
TRY_LATER = "Veuillez réessayer ultérieurement."
NEXT_AVAILABILITY = re.compile(
    r"^Prochaine disponibilit[ée] le (\d{1,2})/(\d{1,2})/(\d{4})\.?$", re.I
)
NEXT_ANYWHERE = re.compile(r"Prochaine disponibilit[ée] le \d{1,2}/\d{1,2}/\d{4}", re.I)
WEEKDAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
DAY_HEADER = re.compile(
    r"^(" + "|".join(WEEKDAYS) + r")\.?\s*(\d{1,2})/(\d{1,2})(?:/(\d{4}))?$", re.I
)
SLOT_TIME = re.compile(r"\b(\d{1,2})\s*[hH:]\s*(\d{2})\b")
RELEASE_NEXT = re.compile(
    r"Prochaine mise en ligne de nouveaux rendez-vous\s*:?\s*le (\d{1,2}/\d{1,2}/\d{4}) "
    r"à (\d{1,2})[:h](\d{2})(?:\s*pour des créneaux de la semaine du (\d{1,2}/\d{1,2}/\d{4}))?",
    re.I,
)
RELEASE_LAST = re.compile(
    r"Derni[èe]re mise en ligne de rendez-vous\s*:?\s*le (\d{1,2}/\d{1,2}/\d{4}) "
    r"à (\d{1,2})[:h](\d{2})(?:\s*pour des créneaux de la semaine du (\d{1,2}/\d{1,2}/\d{4}))?",
    re.I,
)
#: The inlined page data, read over the raw source as public bots do (when the
#: Vertigo-UI data element cannot be parsed).
CRITERE = re.compile(r'"critere"\s*:\s*(\{[^}]*\})')
#: Where Vertigo-UI writes the page data: `{"vueData": {…}, "uiMessageStack": …}`.
PAGE_DATA = element_xpath("//script[@id='vui-init-data']")
WRONG_ANSWER = "est incorrect"
START_BUTTON = "Prendre un rendez-vous"
ANSWER_INPUT = "#captchaFormulaireExtInput"
WIDGET_V1 = "rdv-captchetat"
IMAGE_V2 = ".captcha img[src^='data:image/png;base64']"
IMAGE_V1 = "#captchaFR_CaptchaImage"
#: The title ends the same with "Énoncer" or "Enoncer" (both spellings are published).
AUDIO_BUTTONS = "button[title$='noncer le code du captcha'], #captchaFR_SoundLink"
#: Either widget's image, once the page's script has received it from the service.
IMAGE_ANY = f"{IMAGE_V2}, {IMAGE_V1}"
SLOT_INPUTS = "input[type=radio][name='trhId'], input[type=radio][id^='trhId_']"
SLOT_XPATH = "//input[@type='radio'][@name='trhId' or starts-with(@id, 'trhId_')]"
#: Besides the markup's own hiding (base.drop_hidden): Vue templates and the utility
#: classes that hide an element (`hidden`, DSFR's `fr-hidden`).
HIDDEN_BY_PLATFORM = (
    "//template | "
    "//*[contains(concat(' ', normalize-space(@class), ' '), ' hidden ') or "
    "contains(concat(' ', normalize-space(@class), ' '), ' fr-hidden ')]"
)
#: Notes the sources the page plays (its own audio, from a blob: URL): see `audio`.
WATCH_PLAYED = """() => {
    if (window.__observatoirePlayed) return;
    window.__observatoirePlayed = [];
    const play = HTMLMediaElement.prototype.play;
    HTMLMediaElement.prototype.play = function () {
        window.__observatoirePlayed.push(this.currentSrc || this.src);
        return play.apply(this, arguments);
    };
}"""
#: The last played blob:/data: source, read inside the page (never a network request).
READ_PLAYED = """async () => {
    const src = (window.__observatoirePlayed || []).filter(
        s => s.startsWith('blob:') || s.startsWith('data:')).pop();
    if (!src) return null;
    const r = await fetch(src);
    const bytes = new Uint8Array(await r.arrayBuffer());
    let s = '';
    for (let i = 0; i < bytes.length; i += 8192)
        s += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
    return {type: r.headers.get('content-type') || '', data: btoa(s)};
}"""
#: A procedure id the platform no longer offers (seen as a 404 page saying so).
MISSING = re.compile(
    r"d[ée]marche\W.{0,60}(n'est pas disponible|n'existe pas|introuvable|n'est plus)", re.I
)
#: Longest element text compared with a platform sentence (longer: a paragraph that
#: merely quotes it).
MAX_MESSAGE = 120


@dataclass(frozen=True)
class SlotPage:
    """What a slot page shows, read from its DOM (visible parts only, unless noted)."""

    radios: int
    visible_radios: int
    slots: list[datetime | None]
    next_dates: list[date]
    #: "Prochaine disponibilité le …" somewhere, but not as a visible element of its own.
    next_elsewhere: str | None
    week_empty: bool
    after_date: bool
    try_later: bool
    day_headers: int
    critere: dict[str, str] | None
    messages: list[str]
    visible_text: str


def _fold(text: str) -> str:
    return normalize_text(text).rstrip(" .").casefold()


#: The platform's no-slot sentences, folded (read for every text of a slot page).
NO_SLOT_SENTENCES = frozenset(map(_fold, (NO_SLOT_WEEK, NO_SLOT_AFTER, TRY_LATER)))


def _dmy(text: str) -> date | None:
    match = re.fullmatch(r"\s*(\d{1,2})/(\d{1,2})/(\d{4})\s*", text or "")
    if not match:
        return None
    try:
        return date(int(match.group(3)), int(match.group(2)), int(match.group(1)))
    except ValueError:
        return None


def _critere_of(data: object) -> dict[str, object] | None:
    """`vueData.critere` of Vertigo-UI's page data, exactly there: a `critere` found
    anywhere else is not the slot page's, and must not stand in for it (an empty
    `datePremiereDispo` is what lets a page be read as no slot)."""
    view = data.get("vueData") if isinstance(data, dict) else None
    found = view.get("critere") if isinstance(view, dict) else None
    return found if isinstance(found, dict) else None


def _flat(critere: dict[str, object]) -> dict[str, str]:
    return {str(k): "" if v is None else str(v) for k, v in critere.items()}


def read_critere(source: str) -> dict[str, str] | None:
    """`critere` of the inlined page data (premierJour, dateMin, dateMax,
    datePremiereDispo): from Vertigo-UI's data element (`script#vui-init-data`, raw
    JSON), else over the raw source as public bots read it, also when the JSON sits in
    an attribute of a saved copy. The source is parsed here: a document already read
    for its text has lost its scripts, the data element with them."""
    try:
        doc: lxml_html.HtmlElement | None = lxml_html.fromstring(source)
    except (ValueError, etree.ParserError):
        doc = None
    for script in PAGE_DATA(doc) if doc is not None else []:
        try:
            found = _critere_of(json.loads(script.text or ""))
        except ValueError:
            continue
        if found is not None:
            return _flat(found)
    for text in (source, html_lib.unescape(source)):
        match = CRITERE.search(text)
        if match:
            try:
                data = json.loads(match.group(1))
            except ValueError:
                return None
            if isinstance(data, dict):
                return _flat(data)
    return None


def _paris_midnight(day: date) -> datetime:
    return paris_midnight(day)


def _release(match: re.Match[str] | None) -> tuple[datetime | None, date | None]:
    if match is None:
        return None, None
    day = _dmy(match.group(1))
    at = None
    if day is not None:
        at = datetime.combine(day, time(int(match.group(2)), int(match.group(3))), PARIS)
        at = at.astimezone(UTC)
    return at, _dmy(match.group(4) or "")


def _resolve_day(
    weekday: str, dd: int, mm: int, yyyy: str | None, anchor: date | None
) -> date | None:
    """The date of a column header "mardi 19/05": the year nearest to `anchor` whose
    date falls on that weekday (a week across New Year gets the right year)."""
    if yyyy:
        years = [int(yyyy)]
    elif anchor is not None:
        years = [anchor.year - 1, anchor.year, anchor.year + 1]
    else:
        years = []
    best: date | None = None
    for year in years:
        try:
            candidate = date(year, mm, dd)
        except ValueError:
            continue
        if WEEKDAYS[candidate.weekday()] != weekday.lower():
            continue
        if best is None or (anchor is not None and abs(candidate - anchor) < abs(best - anchor)):
            best = candidate
    return best


def _own_text(element: lxml_html.HtmlElement) -> str:
    return normalize_text(element.text_content())


def _day_headers(doc: lxml_html.HtmlElement) -> list[lxml_html.HtmlElement]:
    """The smallest elements whose whole text is a day header ("mardi19/05" once the
    `<br>` is gone, or "lundi 18/05")."""
    found = []
    for element in doc.iter():
        if not isinstance(element.tag, str) or element.tag in ("script", "style", "input"):
            continue
        text = _own_text(element)
        if len(text) > 30 or not DAY_HEADER.match(text):
            continue
        if any(
            isinstance(child.tag, str) and DAY_HEADER.match(_own_text(child))
            for child in element.iterdescendants()
        ):
            continue
        found.append(element)
    return found


def _slot_label(doc: lxml_html.HtmlElement, radio: lxml_html.HtmlElement) -> str:
    radio_id = radio.get("id")
    if radio_id:
        for label in doc.xpath("//label[@for=$id]", id=radio_id):
            return _own_text(label)
    for label in radio.iterancestors("label"):
        return _own_text(label)
    return normalize_text(radio.get("aria-label") or "")


def _date_slot(
    doc: lxml_html.HtmlElement,
    radio: lxml_html.HtmlElement,
    headers: list[lxml_html.HtmlElement],
    anchor: date | None,
) -> datetime | None:
    label = _slot_label(doc, radio)
    full = parse_slots(label)  # an older markup wrote the whole date in the label
    if full:
        return full[0].astimezone(UTC)
    clock = SLOT_TIME.search(label)
    if clock is None:
        return None
    header = None
    for ancestor in radio.iterancestors():
        inside = [h for h in headers if h is ancestor or ancestor in h.iterancestors()]
        if len(inside) == 1:
            header = inside[0]
            break
        if len(inside) > 1:
            return None  # several days around this radio and none of its own
    if header is None:
        return None
    match = DAY_HEADER.match(_own_text(header))
    assert match is not None
    day = _resolve_day(
        match.group(1), int(match.group(2)), int(match.group(3)), match.group(4), anchor
    )
    if day is None:
        return None
    hours, minutes = int(clock.group(1)), int(clock.group(2))
    if hours > 23 or minutes > 59:
        return None
    return datetime.combine(day, time(hours, minutes), PARIS).astimezone(UTC)


def _lines(element: lxml_html.HtmlElement) -> list[str]:
    """The element's text cut at its own `<br>` children."""
    lines = [element.text or ""]
    for child in element:
        if not isinstance(child.tag, str):  # a comment: only its tail is text
            lines[-1] += child.tail or ""
        elif child.tag == "br":
            lines.append(child.tail or "")
        else:
            lines[-1] += child.text_content() + (child.tail or "")
    return [line for line in (normalize_text(x) for x in lines) if line]


def _message_elements(doc: lxml_html.HtmlElement) -> list[str]:
    """The text of every element short enough to be one message (an element whose whole
    text is the platform's sentence is the sentence "in its place"), and the lines of an
    element made only of the platform's sentences, one per `<br>`-separated line (the
    last week: "Aucun créneau disponible à partir de cette date.<br>Veuillez réessayer
    ultérieurement." in one `div`; exactly that pair, in that order)."""
    last_week = [_fold(NO_SLOT_AFTER), _fold(TRY_LATER)]
    texts = []
    for element in doc.iter():
        if not isinstance(element.tag, str) or element.tag in ("script", "style", "html"):
            continue
        text = _own_text(element)
        if text and len(text) <= MAX_MESSAGE:
            texts.append(text)
        if element.find("br") is not None:
            lines = _lines(element)
            if [_fold(line) for line in lines] == last_week:  # that pair, nothing else
                texts.extend(lines)
    return texts


def read_slot_dom(doc: lxml_html.HtmlElement, source: str, now: datetime | None) -> SlotPage:
    """Everything the slot page shows, hidden parts set apart. `doc` is consumed."""
    for stamp in doc.xpath(STAMP):
        stamp.drop_tree()
    critere = read_critere(source)
    anchor = None
    if critere:
        anchor = _dmy(critere.get("premierJour", "")) or _dmy(critere.get("dateMin", ""))
    all_text = normalize_text(doc.text_content())
    if anchor is None:
        for pattern in (RELEASE_LAST, RELEASE_NEXT):
            match = pattern.search(all_text)
            if match and match.group(4):
                anchor = _dmy(match.group(4))
                break
    if anchor is None and now is not None:
        anchor = now.astimezone(PARIS).date()
    radios = doc.xpath(SLOT_XPATH)
    headers = _day_headers(doc)
    slots = [_date_slot(doc, radio, headers, anchor) for radio in radios]
    drop_hidden(doc, HIDDEN_BY_PLATFORM)
    visible_text = normalize_text(doc.text_content())
    visible_radios = len(doc.xpath(SLOT_XPATH))
    texts = _message_elements(doc)
    folded = {_fold(t) for t in texts}
    next_dates = sorted(
        {
            d
            for t in texts
            if (m := NEXT_AVAILABILITY.match(t))
            and (d := _dmy(f"{m.group(1)}/{m.group(2)}/{m.group(3)}")) is not None
        }
    )
    messages = [t for t in texts if _fold(t) in NO_SLOT_SENTENCES or NEXT_AVAILABILITY.match(t)]
    return SlotPage(
        radios=len(radios),
        visible_radios=visible_radios,
        slots=slots,
        next_dates=next_dates,
        next_elsewhere=None
        if next_dates or not NEXT_ANYWHERE.search(all_text)
        else "next_availability_unplaced"
        if NEXT_ANYWHERE.search(visible_text)
        else "hidden_next_availability",
        week_empty=_fold(NO_SLOT_WEEK) in folded,
        after_date=_fold(NO_SLOT_AFTER) in folded,
        try_later=_fold(TRY_LATER) in folded,
        day_headers=len(_day_headers(doc)),
        critere=critere,
        messages=list(dict.fromkeys(messages)),
        visible_text=visible_text,
    )


class _Releases(TypedDict):
    """The release banners' fields of a ProbeResult."""

    release_last_at: datetime | None
    release_last_week: date | None
    release_next_at: datetime | None
    release_next_week: date | None


def _releases(text: str) -> _Releases:
    last_at, last_week = _release(RELEASE_LAST.search(text))
    next_at, next_week = _release(RELEASE_NEXT.search(text))
    return {
        "release_last_at": last_at,
        "release_last_week": last_week,
        "release_next_at": next_at,
        "release_next_week": next_week,
    }


def judge_slot_page(seen: SlotPage, now: datetime | None) -> ProbeResult:
    """The meaning of a page known to be the slot page."""
    first_dispo = None if seen.critere is None else seen.critere.get("datePremiereDispo", "")
    message = " / ".join(seen.messages) or None
    if seen.radios:
        # The last reachable week shows its two sentences beside its slots: not a
        # contradiction. Any other no-slot sentence beside slot radios is.
        if (
            seen.week_empty
            or (seen.after_date and not seen.try_later)
            or (seen.try_later and not seen.after_date and not seen.day_headers)
        ):
            return ProbeResult(Outcome.UNRECOGNIZED, "no_slot_message_and_slots")
        # An empty `datePremiereDispo` beside slot radios is no contrary sign: the
        # front-end reads it only when the week is empty, and no source shows the
        # application filling it when the week has slots. The radios are the
        # platform's own slots; refusing them would lose every such page.
        count = seen.visible_radios or seen.radios
        if any(s is None for s in seen.slots):
            return ProbeResult(Outcome.AVAILABLE, "undated_slots", slots_count=count)
        dated = sorted(s for s in seen.slots if s is not None)
        if now is not None:
            dated = [s for s in dated if s >= now] or dated
        dispo = _dmy(first_dispo or "")
        if dispo is not None and dispo > dated[0].astimezone(PARIS).date():
            return ProbeResult(
                Outcome.UNRECOGNIZED, "page_data_disagrees:datePremiereDispo_after_first_slot"
            )
        return ProbeResult(
            Outcome.AVAILABLE,
            "",
            first_slot_at=dated[0],
            second_slot_at=dated[1] if len(dated) > 1 else None,
            slots_count=count,
        )
    if seen.next_dates:
        if len(seen.next_dates) > 1 or seen.after_date:
            return ProbeResult(Outcome.UNRECOGNIZED, "next_availability_unclear")
        day = seen.next_dates[0]
        if first_dispo is not None and _dmy(first_dispo) != day:
            return ProbeResult(Outcome.UNRECOGNIZED, "page_data_disagrees:next_availability_date")
        return ProbeResult(
            Outcome.AVAILABLE,
            "next_availability",
            first_slot_at=_paris_midnight(day),
            platform_message=message,
        )
    # From here on, only a no-slot page: every contrary sign is checked.
    if seen.next_elsewhere:
        return ProbeResult(Outcome.UNRECOGNIZED, seen.next_elsewhere)
    if first_dispo:
        return ProbeResult(
            Outcome.UNRECOGNIZED, "page_data_disagrees:datePremiereDispo_without_slots"
        )
    if seen.after_date and seen.try_later and not seen.week_empty:
        return ProbeResult(Outcome.NO_SLOT, "last_week", platform_message=message)
    if seen.week_empty and not seen.after_date:
        return ProbeResult(Outcome.NO_SLOT, "empty_week", platform_message=message)
    if seen.try_later and not (seen.week_empty or seen.after_date or seen.day_headers):
        return ProbeResult(Outcome.NO_SLOT, "calendar_not_displayed", platform_message=message)
    return ProbeResult(Outcome.UNRECOGNIZED, "slot_page")


def _is_slot_page(doc: lxml_html.HtmlElement, url: str | None) -> bool:
    if url and re.search(r"/creneau/?$", urlsplit(url).path):
        return True
    wanted = _fold(SLOT_PAGE_TITLE)
    for element in doc.xpath("//title|//h1|//h2"):
        text = _fold(element.text_content())
        if text == wanted or (element.tag != "h2" and wanted in text):
            return True
        if text.startswith(wanted) and "fr-stepper__title" in (element.get("class") or ""):
            return True
    return False


def _is_personal_page(doc: lxml_html.HtmlElement, url: str | None) -> bool:
    if url and re.search(r"/informations/?$", urlsplit(url).path):
        return True
    for heading in doc.xpath("//h1|//h2"):
        parts = [
            normalize_text(t)
            for t in heading.xpath(
                ".//text()[not(ancestor::*[contains(@class, 'fr-stepper__state')])]"
            )
        ]
        if _fold(" ".join(p for p in parts if p)) == _fold(PERSONAL_HEADING):
            return True
    return False


def classify_page(
    page: bytes, url: str | None, now: datetime | None, demarche: str | None = None
) -> ProbeResult:
    """A rendered page of the platform, live or saved: blocked, personal-data page,
    missing procedure, the slot page in any state, or `unrecognized`."""
    try:
        doc, text = read_saved_page(page)
    except ProbeStop as stop:
        return replace(stop.result, page=None)
    source = page.decode("utf-8", errors="replace")
    if _is_personal_page(doc, url):
        # Should never happen (we never submit the slot page): say so loudly.
        return ProbeResult(Outcome.UNRECOGNIZED, "personal_data_page")
    if demarche is not None and url and f"/demarche/{demarche}/" not in urlsplit(url).path + "/":
        return ProbeResult(Outcome.UNRECOGNIZED, "other_demarche")
    if not _is_slot_page(doc, url):
        if MISSING.search(text):
            return ProbeResult(Outcome.PROCEDURE_MISSING, "procedure_unavailable")
        return ProbeResult(Outcome.UNRECOGNIZED, "not_slot_page")
    seen = read_slot_dom(doc, source, now)
    result = judge_slot_page(seen, now)
    return replace(result, **_releases(seen.visible_text))


class RdvPrefectureAdapter(AssistedAdapter):
    name = "rdv_prefecture"
    #: 2.0: the real slot page (dates from column headers, "Prochaine disponibilité",
    #: page data cross-checked, release banners), the 2025 captcha widget.
    #: 2.1: page data from Vertigo-UI's data element; the last week's sentences as
    #: `<br>`-separated lines of one element, and its slots read as `available`; the
    #: captcha image awaited from the service; both spellings of the audio button.
    version = "2.1"
    transport = "browser"

    # -- the assisted steps --------------------------------------------------------------
    async def open_captcha(self, page: Page, target: Target, timeout: float) -> Captcha:
        """From the procedure's page to its captcha. Raises ProbeStop when the platform
        answers anything else (missing procedure, WAF, error, unknown page)."""
        response = await page.goto(target.url, wait_until="domcontentloaded")
        if response is None:
            raise ProbeStop(ProbeResult(Outcome.UNRECOGNIZED, "no_response"))
        await settle(page, timeout)
        if response.status == 404 and MISSING.search(await _text(page)):
            raise ProbeStop(ProbeResult(Outcome.PROCEDURE_MISSING, "procedure_unavailable"))
        stop = status_stop(response.status, page.url)
        if stop:
            raise stop
        if not await page.query_selector(ANSWER_INPUT):
            await page_signs(page)
            if MISSING.search(await _text(page)):
                raise ProbeStop(ProbeResult(Outcome.PROCEDURE_MISSING, "procedure_unavailable"))
            start = page.get_by_role("link", name=START_BUTTON).or_(
                page.get_by_role("button", name=START_BUTTON)
            )
            if await start.count() == 0:
                raise ProbeStop(ProbeResult(Outcome.UNRECOGNIZED, "landing_page"))
            await start.first.click()
        return await self._captcha(page, timeout)

    async def submit_answer(
        self,
        page: Page,
        answer: str,
        timeout: float,
        now: datetime,
        target: Target | None = None,
    ) -> Captcha | ProbeResult:
        """Type the volunteer's answer and go on: a new Captcha when it was wrong or the
        session had ended, else the slot page's result (evidence not yet attached)."""
        await page.fill(ANSWER_INPUT, answer.strip())
        button = page.get_by_role("button", name="Suivant")
        if await button.count() == 0:
            raise ProbeStop(ProbeResult(Outcome.UNRECOGNIZED, "captcha_page"))
        navigated: list[str] = []

        def on_navigation(frame: Frame) -> None:
            if frame == page.main_frame:
                navigated.append(frame.url)

        page.on("framenavigated", on_navigation)
        try:
            await button.first.click()

            async def moved() -> bool:
                return bool(navigated) or await _wrong_answer_shown(page)

            if not await wait_for(moved, timeout):
                raise ProbeStop(ProbeResult(Outcome.UNRECOGNIZED, "no_answer_to_captcha"))
            await settle(page, timeout)
        finally:
            page.remove_listener("framenavigated", on_navigation)
        if "error=invalidCaptcha" in page.url or await _wrong_answer_shown(page):
            return await self._captcha(page, timeout, after_wrong_answer=True)
        if await page.query_selector(ANSWER_INPUT):
            # Back on the conditions page without an error: the session had ended.
            return await self._captcha(page, timeout, session_expired=True)
        return await self.read_slot_page(page, timeout, now, target)

    async def read_slot_page(
        self, page: Page, timeout: float, now: datetime, target: Target | None = None
    ) -> ProbeResult:
        """Read what the slot page says, and touch nothing on it."""

        async def readable() -> bool:
            return bool(
                await page.evaluate(
                    """(sel) => {
                        if (document.querySelector(sel)) return true;
                        const t = document.body ? document.body.innerText : '';
                        return /Aucun créneau disponible|Prochaine disponibilit|Veuillez réessayer/
                            .test(t);
                    }""",
                    SLOT_INPUTS,
                )
            )

        await wait_for(readable, min(timeout, 10.0))
        await _stop_on_status(page)
        await page_signs(page)
        source = (await page.content()).encode("utf-8")
        demarche = _demarche_id(target.url) if target is not None else None
        result = classify_page(source, page.url, now, demarche)
        return replace(result, final_url=page.url)

    async def audio(self, page: Page, timeout: float = 30.0) -> tuple[bytes, str]:
        """The captcha's audio, as the page's own button fetches it: press the button and
        keep the response it triggers (same request, same session as a person's click).

        Chromium does not keep the body of a response that a script read with
        `fetch(...).blob()`; the page then plays a blob: URL, which is read back inside
        the page (no request to the site) from the media element the page played."""
        button = page.locator(AUDIO_BUTTONS).first
        if await button.count() == 0:
            raise ProbeStop(ProbeResult(Outcome.UNRECOGNIZED, "no_audio_button"))
        await page.evaluate(WATCH_PLAYED)

        def is_audio(response: Response) -> bool:
            kind = response.headers.get("content-type", "")
            return "get=sound" in response.url or (
                kind.startswith("audio/") and response.url.startswith("http")
            )

        async with page.expect_response(is_audio, timeout=timeout * 1000) as info:
            await button.click()
        response = await info.value
        if not response.ok:
            raise PlaywrightError(f"audio answered {response.status}")
        kind = response.headers.get("content-type", "audio/wav")
        body = await response.body()
        if body:
            return body, kind

        async def played() -> bool:
            return bool(await page.evaluate(READ_PLAYED))

        if await wait_for(played, min(timeout, 5.0)):
            payload = await page.evaluate(READ_PLAYED)
            return base64.b64decode(payload["data"]), str(payload["type"] or kind)
        raise PlaywrightError("the audio response had no readable body")

    async def evidence(self, page: Page, when: datetime, note: str) -> tuple[bytes, bytes]:
        return await capture(page, when, note)

    async def captcha_again(self, page: Page, timeout: float) -> Captcha | None:
        """Back on the conditions page after a reload: the platform's session ended."""
        if await page.query_selector(ANSWER_INPUT):
            return await self._captcha(page, timeout, session_expired=True)
        return None

    async def _captcha(
        self,
        page: Page,
        timeout: float,
        *,
        after_wrong_answer: bool = False,
        session_expired: bool = False,
    ) -> Captcha:
        try:
            await page.wait_for_selector(ANSWER_INPUT, timeout=timeout * 1000)
        except PlaywrightError:
            await _stop_on_status(page)
            await page_signs(page)
            raise ProbeStop(ProbeResult(Outcome.UNRECOGNIZED, "no_captcha")) from None
        image, widget = await _captcha_image(page, timeout)
        audio = await page.locator(AUDIO_BUTTONS).count() > 0
        return Captcha(image, audio, after_wrong_answer, session_expired, widget)

    def classify(self, page: bytes, url: str | None = None) -> ProbeResult:
        """A saved page: the slot page (every state), the captcha page (`blocked`: as the
        robot alone would see it), a missing procedure, or `unrecognized`."""
        return replace(classify_page(page, url, None), page=page)


async def _captcha_image(page: Page, timeout: float) -> tuple[bytes, str]:
    """The captcha image: the 2025 widget's base64 PNG as is, else a screenshot of the
    older widget's image (a blob: URL the robot cannot fetch again). Either arrives after
    the page has loaded, when the page's script has had the captcha service's answer:
    wait for it (a page whose widget stays empty ends below, unrecognized)."""

    async def received() -> bool:
        return await page.locator(IMAGE_ANY).count() > 0

    await wait_for(received, timeout)
    inline = page.locator(IMAGE_V2).first
    if await inline.count():
        src = await inline.get_attribute("src") or ""
        try:
            data = base64.b64decode(src.split(",", 1)[1], validate=True)
        except (IndexError, binascii.Error):
            data = b""
        if data.startswith(b"\x89PNG"):
            return data, "v2"
        return await inline.screenshot(type="png"), "v2"
    for selector, widget in ((IMAGE_V1, "v1"), (f"{WIDGET_V1} img, .captcha img", "other")):
        image = page.locator(selector).first
        if await image.count():
            loaded = partial(image.evaluate, "img => img.complete && img.naturalWidth > 0")
            await wait_for(loaded, timeout)
            return await image.screenshot(type="png"), widget
    if await page.locator(WIDGET_V1).count():
        return await page.locator(WIDGET_V1).first.screenshot(type="png"), "other"
    raise ProbeStop(ProbeResult(Outcome.UNRECOGNIZED, "no_captcha_image"))


def _demarche_id(url: str) -> str | None:
    match = re.search(r"/demarche/(\d+)", url)
    return match.group(1) if match else None


async def _text(page: Page) -> str:
    try:
        return normalize_text(await page.inner_text("body"))
    except PlaywrightError:
        return ""


async def _stop_on_status(page: Page) -> None:
    """The current document's HTTP status (403, 429, 5xx…) ends the observation."""
    try:
        status = await page.evaluate(
            "() => performance.getEntriesByType('navigation')[0]?.responseStatus || 0"
        )
    except PlaywrightError:
        return
    stop = status_stop(int(status or 0), page.url) if status else None
    if stop:
        raise stop


async def _wrong_answer_shown(page: Page) -> bool:
    element = await page.query_selector("#text-input-captcha-desc-error")
    return element is not None and WRONG_ANSWER in normalize_text(await element.inner_text())


PLATFORM = Platform(
    adapter=RdvPrefectureAdapter,
    label="RDV-Préfecture (plateforme nationale)",
    options=RdvPrefectureOptions,
    url_pattern=re.compile(r"^https?://[^/]+(/.*)?/rdvpref/reservation/demarche/\d+/?$"),
    url_hint="https://www.rdv-prefecture.interieur.gouv.fr/rdvpref/reservation/demarche/<id>/",
)
