"""Phone screenshots, read by tesseract (Debian packages `tesseract-ocr` and
`tesseract-ocr-fra`).

OCR misreads. So nothing is guessed: only the platform's own sentences, read exactly
after the usual folding (normalize_text), in their place (under the slot page's title),
with no contrary sign in the picture, give `no_slot` or `available`. Anything else — a
blurred picture, a cropped one, a sentence one letter off — waits for a person's review
with what tesseract read, so the reviewer sees what the machine saw.

A screenshot shows only part of a page. The RDV-Préfecture "Aucun créneau disponible sur
cette semaine" alone is therefore never read as no slot: the "Prochaine disponibilité le
…" button that turns it into `available` sits just below and may be outside the picture.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import date, datetime

from observatoire.adapters import legacy_booking, rdv_prefecture
from observatoire.adapters.base import normalize_text
from observatoire.clock import PARIS
from observatoire.outcomes import Outcome

TIMEOUT_SECONDS = 60.0
#: A slot time as the slot page shows it ("09h30"): a contrary sign in a no-slot picture.
SLOT_TIME = re.compile(r"\b\d{1,2}h\d{2}\b")


class OcrUnavailable(RuntimeError):
    """tesseract (or its French model) is not installed."""


@dataclass(frozen=True)
class OcrReading:
    outcome: Outcome
    detail: str
    text: str
    first_slot_at: datetime | None = None
    message: str | None = None


def run_tesseract(image: bytes) -> str:
    """The text tesseract reads in `image` (French model), one line per line seen."""
    exe = shutil.which("tesseract")
    if exe is None:
        raise OcrUnavailable("tesseract is not installed (apt-get install tesseract-ocr)")
    try:
        done = subprocess.run(
            [exe, "stdin", "stdout", "-l", "fra", "--psm", "3"],
            input=image,
            capture_output=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return ""
    if done.returncode != 0:
        err = done.stderr.decode("utf-8", "replace")
        if "fra" in err and ("traineddata" in err or "language" in err.lower()):
            raise OcrUnavailable("the French OCR model is missing (tesseract-ocr-fra)")
        return ""
    return done.stdout.decode("utf-8", "replace")


def _lines(text: str) -> list[str]:
    return [n for line in text.splitlines() if (n := normalize_text(line))]


def _same(a: str, b: str) -> bool:
    return normalize_text(a) == normalize_text(b)


def read_rdv_prefecture(text: str) -> OcrReading:
    lines = _lines(text)
    if not any(_same(line, rdv_prefecture.SLOT_PAGE_TITLE) for line in lines):
        return OcrReading(Outcome.UNRECOGNIZED, "ocr:no_slot_page_title", text)
    nexts = [m for line in lines if (m := rdv_prefecture.NEXT_AVAILABILITY.match(line))]
    week_empty = any(_same(line, rdv_prefecture.NO_SLOT_WEEK) for line in lines)
    after = [i for i, line in enumerate(lines) if _same(line, rdv_prefecture.NO_SLOT_AFTER)]
    later = [i for i, line in enumerate(lines) if _same(line, rdv_prefecture.TRY_LATER)]
    times = any(SLOT_TIME.search(line) for line in lines)
    if nexts:
        if len(nexts) > 1 or not week_empty or after or times:
            return OcrReading(Outcome.UNRECOGNIZED, "ocr:next_availability_unclear", text)
        m = nexts[0]
        try:
            day = date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
        except ValueError:
            return OcrReading(Outcome.UNRECOGNIZED, "ocr:bad_date", text)
        first = datetime(day.year, day.month, day.day, tzinfo=PARIS)
        return OcrReading(
            Outcome.AVAILABLE,
            "ocr:next_availability",
            text,
            first_slot_at=first,
            message=f"{rdv_prefecture.NO_SLOT_WEEK} / {m.group(0)}",
        )
    if rdv_prefecture.NEXT_ANYWHERE.search(" ".join(lines)) or times:
        return OcrReading(Outcome.UNRECOGNIZED, "ocr:contrary_sign", text)
    if after and later and any(j == i + 1 for i in after for j in later) and not week_empty:
        message = f"{rdv_prefecture.NO_SLOT_AFTER} {rdv_prefecture.TRY_LATER}"
        return OcrReading(Outcome.NO_SLOT, "ocr:last_week", text, message=message)
    if week_empty:
        return OcrReading(Outcome.UNRECOGNIZED, "ocr:week_empty_needs_review", text)
    return OcrReading(Outcome.UNRECOGNIZED, "ocr:no_platform_sentence", text)


def read_legacy_booking(text: str) -> OcrReading:
    joined = " ".join(_lines(text))
    if normalize_text(legacy_booking.RESULT_HEADING) not in joined:
        return OcrReading(Outcome.UNRECOGNIZED, "ocr:no_result_heading", text)
    if SLOT_TIME.search(joined) or legacy_booking.FREE_CELL in joined:
        return OcrReading(Outcome.UNRECOGNIZED, "ocr:contrary_sign", text)
    if legacy_booking.NO_SLOT_MESSAGE in joined:
        return OcrReading(
            Outcome.NO_SLOT, "ocr:no_slot_message", text, message=legacy_booking.NO_SLOT_MESSAGE
        )
    return OcrReading(Outcome.UNRECOGNIZED, "ocr:no_platform_sentence", text)


READERS = {"rdv_prefecture": read_rdv_prefecture, "legacy_booking": read_legacy_booking}


def read_screenshot(platform: str, text: str) -> OcrReading:
    """The outcome the OCR'd `text` of a screenshot of `platform` supports."""
    reader = READERS.get(platform)
    if reader is None:
        return OcrReading(Outcome.UNRECOGNIZED, "ocr:platform_not_supported", text)
    if not text.strip():
        return OcrReading(Outcome.UNRECOGNIZED, "ocr:nothing_read", text)
    return reader(text)
