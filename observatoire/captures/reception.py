"""Receiving a capture: validate it, classify it with the platform adapter's
saved-page classifier, keep it as evidence and as a `manual` probe.

Why each rule:
- the probe's time is the server's reception stamp, not the browser's clock: a
  contributor's clock can be wrong (or set back); the browser's time is kept beside it
  and a large gap is flagged for review;
- the page is classified by the same code as the robot's saved pages, so a person's
  capture obeys the same "no false no_slot" rules: `no_slot` only on the platform's own
  message, in its place, on a page of the target;
- a page that matches no configured target, or that the adapter does not recognise, is
  kept and listed for an operator — never dropped, never guessed;
- an applicant's captures stay out of every figure unless they opted in: they are still
  probes (their dossier reads them), but the rollups skip them;
- a capture waiting for review is a probe too (its evidence kept, its reading visible to
  the reviewer), but no figure counts it until a person accepts it (`review`): a doubtful
  "no slot" must not bias the figures while it waits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from observatoire.adapters import get_adapter
from observatoire.captures.contributors import ContributorInfo
from observatoire.captures.crosscheck import contradicting_probes, reason_for
from observatoire.captures.lookup import known_hosts, match_target
from observatoire.captures.ocr import OcrReading, read_screenshot, run_tesseract
from observatoire.db.models import CaptureRow, TargetRow
from observatoire.outcomes import Outcome, ProbeResult
from observatoire.record.evidence import EvidenceStore
from observatoire.record.releases import record_releases
from observatoire.record.rollups import record_probe
from observatoire.record.store import ProbeRecord, probe_row

MAX_HTML_BYTES = 5 * 1024 * 1024
MAX_IMAGE_BYTES = 8 * 1024 * 1024
MAX_URL = 2048
#: A browser clock this far from the server's is flagged (the capture is kept).
CLOCK_TOLERANCE = timedelta(minutes=15)
PNG = b"\x89PNG\r\n\x1a\n"
_META_CHARSET = re.compile(rb"<meta[^>]+?charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.I | re.S)


class CaptureRefused(ValueError):
    """The capture cannot be accepted; the message (French) says why."""


@dataclass(frozen=True)
class CaptureOutcome:
    """What the contributor is told back."""

    id: int
    outcome: str
    detail: str
    review: str
    review_reason: str
    target_id: str | None
    probe_id: int | None
    received_at: datetime
    page_sha256: str | None
    screenshot_sha256: str | None

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "outcome": self.outcome,
            "detail": self.detail,
            "review": self.review,
            "review_reason": self.review_reason,
            "target": self.target_id,
            "probe": self.probe_id,
            "received_at": self.received_at.isoformat(),
            "page_sha256": self.page_sha256,
            "screenshot_sha256": self.screenshot_sha256,
        }


def check_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if len(url) > MAX_URL or parts.scheme not in ("http", "https") or not parts.netloc:
        raise CaptureRefused("Adresse de page invalide (http ou https attendu).")
    return url


def check_png(image: bytes) -> bytes:
    if len(image) > MAX_IMAGE_BYTES:
        raise CaptureRefused("Capture d'écran trop lourde (8 Mo au plus).")
    if not image.startswith(PNG):
        raise CaptureRefused("La capture d'écran doit être une image PNG.")
    return image


def as_declared(html: str) -> bytes:
    """The page's bytes in the encoding its own `<meta charset>` declares.

    The browser hands us the page as text; saved as UTF-8 under a `<meta charset=
    iso-8859-1>`, the evidence would contradict itself and a reader (or `classify`)
    would see "ultÃ©rieurement". Characters the declared encoding lacks become
    character references, which mean the same thing in HTML."""
    head = html[:4096].encode("ascii", "replace")
    match = _META_CHARSET.search(head)
    codec = match.group(1).decode("ascii").lower() if match else "utf-8"
    try:
        return html.encode(codec, errors="xmlcharrefreplace")
    except LookupError:
        return html.encode("utf-8")


class CaptureService:
    """The reception desk: one instance per server, shared by every request."""

    def __init__(self, engine: Engine, evidence: EvidenceStore) -> None:
        self.engine = engine
        self.evidence = evidence

    # -- the extension: a page ------------------------------------------------------------
    def receive_page(
        self,
        who: ContributorInfo,
        html: bytes,
        url: str,
        received_at: datetime,
        *,
        screenshot: bytes | None = None,
        client_time: datetime | None = None,
        user_agent: str | None = None,
    ) -> CaptureOutcome:
        url = check_url(url)
        if not html.strip():
            raise CaptureRefused("La page est vide.")
        if len(html) > MAX_HTML_BYTES:
            raise CaptureRefused("Page trop lourde (5 Mo au plus).")
        try:
            text = html.decode("utf-8")
        except UnicodeDecodeError:
            raise CaptureRefused("La page doit être envoyée en UTF-8.") from None
        if "<" not in text[:2048]:
            raise CaptureRefused("Ce n'est pas une page HTML.")
        page = as_declared(text)
        if screenshot is not None:
            check_png(screenshot)
        target = match_target(self.engine, url)
        review, reason = "none", ""
        if target is None:
            result = ProbeResult(Outcome.UNRECOGNIZED, "no_target")
            host = urlsplit(url).netloc.lower()
            reason = "no_target" if host in known_hosts(self.engine) else "unknown_host"
            review = "pending"
        else:
            adapter = get_adapter(target.platform)
            result = adapter.classify(page, url)
            if result.outcome is Outcome.UNRECOGNIZED:
                review, reason = "pending", f"unrecognized:{result.detail}"
        return self._store(
            who,
            "page",
            received_at,
            client_time,
            url,
            target.id if target else None,
            target.platform if target else None,
            result,
            page,
            screenshot,
            None,
            review,
            reason,
            user_agent,
        )

    # -- a phone: a screenshot ------------------------------------------------------------
    def receive_screenshot(
        self,
        who: ContributorInfo,
        image: bytes,
        target_id: str,
        received_at: datetime,
        *,
        client_time: datetime | None = None,
        user_agent: str | None = None,
        ocr: OcrReading | None = None,
    ) -> CaptureOutcome:
        check_png(image)
        with Session(self.engine) as session:
            row = session.get(TargetRow, target_id)
            if row is None:
                raise CaptureRefused("Démarche inconnue.")
            platform, url = row.platform, row.url
        reading = ocr or read_screenshot(platform, run_tesseract(image))
        result = ProbeResult(
            reading.outcome,
            reading.detail,
            first_slot_at=reading.first_slot_at,
            platform_message=reading.message,
        )
        review, reason = "none", ""
        if reading.outcome is Outcome.UNRECOGNIZED:
            review, reason = "pending", reading.detail
        return self._store(
            who,
            "screenshot",
            received_at,
            client_time,
            None,
            target_id,
            platform,
            result,
            None,
            image,
            reading.text,
            review,
            reason,
            user_agent,
            final_url=url,
        )

    # -- storage --------------------------------------------------------------------------
    def _store(
        self,
        who: ContributorInfo,
        kind: str,
        received_at: datetime,
        client_time: datetime | None,
        url: str | None,
        target_id: str | None,
        platform: str | None,
        result: ProbeResult,
        page: bytes | None,
        screenshot: bytes | None,
        ocr_text: str | None,
        review: str,
        reason: str,
        user_agent: str | None,
        final_url: str | None = None,
    ) -> CaptureOutcome:
        """Evidence first, then the probe, the capture row, the rollups and the releases
        in one transaction (as the robot's `save_probe`)."""
        page_sha = self.evidence.put(page, "html") if page else None
        shot_sha = self.evidence.put(screenshot, "png") if screenshot else None
        if (
            review == "none"
            and client_time is not None
            and abs(client_time - received_at) > CLOCK_TOLERANCE
        ):
            review, reason = "pending", "client_clock_differs"
        with Session(self.engine) as session, session.begin():
            probe_id = None
            if target_id is not None and platform is not None:
                if review == "none":
                    ids = contradicting_probes(session, target_id, received_at, result.outcome)
                    if ids:
                        review, reason = "pending", reason_for(ids)
                adapter = get_adapter(platform)
                # A saved page has no HTTP status of its own: the column stays empty.
                shown = replace(result, http_status=None, final_url=url or final_url)
                record = ProbeRecord(
                    target_id=target_id,
                    scheduled_at=None,
                    started_at=received_at,
                    finished_at=received_at,
                    result=shown,
                    requests_made=0,
                    attempts=1,
                    duration_ms=0,
                    adapter=adapter.name,
                    adapter_version=adapter.version,
                    mode="manual",
                    volunteer=who.pseudonym,
                    contributor_id=who.id,
                )
                probe = probe_row(record, page_sha, shot_sha)
                session.add(probe)
                session.flush()
                probe_id = probe.id
                # Pending: out of the figures until a person accepts it (review.py), as
                # `rollups.counted_sql` says for a rebuild. The releases its page tells
                # about ("Dernière / Prochaine mise en ligne") count on the same terms.
                if who.counted and review == "none":
                    record_probe(
                        session,
                        target_id,
                        received_at,
                        result.outcome,
                        result.first_slot_at,
                        result.second_slot_at,
                        "manual",
                    )
                    record_releases(session, probe, shown)
            row = CaptureRow(
                contributor_id=who.id,
                kind=kind,
                received_at=received_at,
                client_time=client_time,
                url=url,
                target_id=target_id,
                probe_id=probe_id,
                outcome=result.outcome.value,
                detail=result.detail[:200],
                page_sha256=page_sha,
                screenshot_sha256=shot_sha,
                ocr_text=ocr_text,
                review=review,
                review_reason=reason[:200],
                user_agent=(user_agent or "")[:200] or None,
            )
            session.add(row)
            session.flush()
            return CaptureOutcome(
                row.id,
                row.outcome,
                row.detail,
                review,
                row.review_reason,
                target_id,
                probe_id,
                received_at,
                page_sha,
                shot_sha,
            )
