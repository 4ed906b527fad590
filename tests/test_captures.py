"""Captures from a person's own browser, server side: tokens, limits, classification by
the platform adapter, review of what is not recognised, cross-checks with the robot,
private applicant captures kept out of the figures, phone screenshots read by OCR
(exact sentences only), and deletion that leaves no trace."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from observatoire.captures.contributors import (
    ContributorInfo,
    add_contributor,
    authenticate,
    set_opt_in,
)
from observatoire.captures.delete import delete_contributor
from observatoire.captures.reception import CaptureOutcome, CaptureService
from observatoire.captures.review import (
    ReviewError,
    accept_capture,
    pending_count,
    reject_capture,
    review_queue,
)
from observatoire.captures.routes import RateLimiter
from observatoire.clock import VirtualClock
from observatoire.config import load_config
from observatoire.db import make_engine
from observatoire.db.models import CaptureRow, Contributor, Probe, ProbeDay, ReleaseRow
from observatoire.health import check_health
from observatoire.outcomes import Outcome, ProbeResult
from observatoire.publish.dossier import build_dossier
from observatoire.record.evidence import EvidenceStore
from observatoire.record.releases import looks_by_target, survivals
from observatoire.record.rollups import counted_sql, rebuild
from observatoire.record.store import save_probe, sync_targets
from observatoire.robot.browser import BrowserPool
from observatoire.simulator import RunningSimulator
from observatoire.stats import monthly_stats
from tests import factories
from tests.captures_support import RDV, capture_server, walk_to_slots
from tests.conftest import DEMO_CONFIG, REQUIRE_ALL, T0
from tests.factories import VALID_TARGETS, add_target, doubtful_capture, probe_record

HAUTS_DE_SEINE = "92-titre-sejour-rdvpref-3327"


async def slot_page(simulator: RunningSimulator, demarche: int) -> tuple[bytes, str]:
    """The slot page as a person's browser gets it (the captcha answered through the
    simulator's hook): its HTML and address."""
    base = f"{simulator.base_url}/{RDV}/{demarche}"
    async with httpx.AsyncClient(follow_redirects=True) as client:
        cgu = (await client.get(f"{base}/cgu/")).text
        # As the page's script does: a captcha from the service, with the page's token.
        widget = re.search(r'endpoint-url="([^"]+)" [^>]*token="([^"]+)"', cgu)
        assert widget is not None
        service = await client.get(
            f"{simulator.base_url}{widget.group(1)}",
            params={"get": "image", "c": "captchaFR"},
            headers={"Authorization": f"Bearer {widget.group(2)}"},
        )
        captcha = str(service.json()["uuid"])
        answer = simulator.state.rdvpref.answer(captcha)
        page = await client.post(
            f"{base}/_validerCaptcha",
            data={"captchaId": captcha, "captchaUsercode": answer},
        )
        assert str(page.url).endswith("/creneau/")
        return page.content, str(page.url)


async def post_capture(server: str, token: str | None, **fields: bytes | str) -> httpx.Response:
    files = {k: (k, v) for k, v in fields.items()}
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(f"{server}/api/captures", headers=headers, files=files)


async def test_api_tokens_limits_and_review(
    tmp_path: Path, simulator: RunningSimulator, clock: VirtualClock
) -> None:
    async with capture_server(tmp_path, simulator, clock) as server:
        _, token = add_contributor(server.engine, "benevole-b", "volunteer", clock.now())
        html, url = await slot_page(simulator, 3327)

        async def post(token: str | None, **fields: bytes | str) -> httpx.Response:
            return await post_capture(server.url, token, **fields)

        client = httpx.AsyncClient(timeout=120)

        # CORS preflight: the extension's origin is not ours; the token is the credential.
        pre = await client.options(f"{server.url}/api/captures")
        assert pre.status_code == 204 and pre.headers["Access-Control-Allow-Origin"] == "*"
        # No token, a wrong token: refused, nothing stored.
        assert (await post(None, url=url, html=html)).status_code == 401
        assert (await post("nope", url=url, html=html)).status_code == 401
        # Too big, not PNG, missing fields.
        big = await post(token, url=url, html=b"<html>" + b"x" * (5 * 1024 * 1024 + 1))
        assert big.status_code == 413
        bad_png = await post(token, url=url, html=html, screenshot=b"GIF89a")
        assert bad_png.status_code == 422 and "PNG" in bad_png.json()["error"]
        assert (await post(token, html=html)).status_code == 400

        # The real slot page: classified by the adapter, a manual probe.
        ok = await post(token, url=url, html=html)
        assert ok.status_code == 201, ok.text
        assert ok.json()["outcome"] == "no_slot" and ok.json()["review"] == "none"
        # A page of the target the adapter does not recognise: kept, waiting for review.
        odd = await post(token, url=url, html=b"<html><body><p>Bonjour</p></body></html>")
        assert odd.json()["outcome"] == "unrecognized"
        assert odd.json()["review"] == "pending" and odd.json()["probe"] is not None
        # A page of no configured target: kept without a probe, for review.
        other = await post(token, url="https://example.org/rdv/1", html=html)
        assert other.json()["review_reason"] == "unknown_host" and other.json()["probe"] is None
        with Session(server.engine) as session:
            assert session.scalar(select(func.count()).select_from(CaptureRow)) == 3
            assert session.scalar(select(func.count()).select_from(Probe)) == 2
            pending = session.scalars(
                select(CaptureRow.review_reason).where(CaptureRow.review == "pending")
            ).all()
            assert sorted(pending) == ["unknown_host", "unrecognized:slot_page"]

        # Guessing tokens stops after ten refusals from one address.
        codes = [(await post(f"guess{i}", url=url, html=html)).status_code for i in range(10)]
        assert codes[-1] == 429 and set(codes[:8]) == {401}
        # The deposit page is reachable without the volunteer page's cookie.
        form = await client.get(f"{server.url}/captures/deposer")
        await client.aclose()
        assert form.status_code == 200 and "Déposer une capture d'écran" in form.text


def test_rate_limiter() -> None:
    limiter = RateLimiter(2, 60.0)
    assert limiter.allow("a", 0.0) is None and limiter.allow("a", 1.0) is None
    assert limiter.allow("a", 2.0) == pytest.approx(58.0)
    assert limiter.allow("b", 2.0) is None
    assert limiter.allow("a", 61.0) is None


def robot_probe(engine: Engine, evidence: EvidenceStore, at, outcome: Outcome) -> int:
    result = ProbeResult(outcome, "", page=b"<html>robot</html>")
    record = probe_record(
        HAUTS_DE_SEINE, at, result, requests_made=3, adapter="rdv_prefecture", adapter_version="x"
    )
    return save_probe(engine, evidence, record)


async def test_crosscheck_private_applicant_and_delete(
    engine: Engine, tmp_path: Path, simulator: RunningSimulator, clock: VirtualClock
) -> None:
    cfg = load_config(DEMO_CONFIG, simulator_url=simulator.base_url)
    sync_targets(engine, cfg.targets, clock.now())
    evidence = EvidenceStore(tmp_path / "evidence")
    service = CaptureService(engine, evidence)
    applicant, token = add_contributor(engine, "demandeur-c", "applicant", T0)
    volunteer, _ = add_contributor(engine, "benevole-d", "volunteer", T0)
    assert authenticate(engine, token) == applicant and authenticate(engine, "x") is None
    html, url = await slot_page(simulator, 3327)

    # The robot saw slots 4 minutes earlier: a manual "no slot" stands out.
    robot_probe(engine, evidence, T0 - timedelta(minutes=4), Outcome.AVAILABLE)
    flagged = service.receive_page(applicant, html, url, T0, client_time=T0)
    assert (flagged.outcome, flagged.review) == ("no_slot", "pending")
    assert flagged.review_reason.startswith("contradicted_by_probe:#")
    # An hour later, nothing contradicts it.
    later = service.receive_page(volunteer, html, url, T0 + timedelta(hours=1), client_time=None)
    assert later.review == "none"

    # The applicant has not opted in: out of the figures (rollups and their rebuild).
    def manual_days() -> list[tuple[int, int]]:
        with Session(engine) as session:
            return [(d.no_slot, d.manual) for d in session.scalars(select(ProbeDay))]

    assert manual_days() == [(1, 1)]  # the volunteer's capture only (and the robot's slot)
    rebuild(engine)
    assert manual_days() == [(1, 1)]

    # Deleting the applicant leaves no trace; the volunteer's shared page evidence stays.
    shot = b"\x89PNG\r\n\x1a\n" + b"applicant-only"
    own = service.receive_page(
        applicant, html.replace(b"</body>", b"<!-- a --></body>"), url, T0, screenshot=shot
    )
    own_files = [
        evidence.path_for(own.page_sha256, "html"),
        evidence.path_for(shot_sha(shot), "png"),
    ]
    assert all(p.exists() for p in own_files)
    shared = evidence.path_for(flagged.page_sha256, "html")
    done = delete_contributor(engine, evidence, "demandeur-c")
    assert (done.captures, done.probes) == (2, 2)
    assert not any(p.exists() for p in own_files)
    assert shared.exists()  # the volunteer's capture of the same page still uses it
    with Session(engine) as session:
        assert (
            session.scalar(select(Contributor).where(Contributor.pseudonym == "demandeur-c"))
            is None
        )
        assert session.scalars(select(CaptureRow.contributor_id)).all() == [volunteer.id]
        assert (
            session.scalar(
                select(func.count()).select_from(Probe).where(Probe.contributor_id == applicant.id)
            )
            == 0
        )
        assert (
            session.scalar(
                select(func.count()).select_from(Probe).where(Probe.volunteer == "demandeur-c")
            )
            == 0
        )
    delete_contributor(engine, evidence, "benevole-d")
    assert not shared.exists()
    assert manual_days() == [(0, 0)] or manual_days() == []


def shot_sha(data: bytes) -> str:
    return __import__("hashlib").sha256(data).hexdigest()


def need_tesseract() -> None:
    if shutil.which("tesseract"):
        return
    if REQUIRE_ALL:
        pytest.fail("CI needs tesseract-ocr and tesseract-ocr-fra (scripts/setup.sh)")
    pytest.skip("tesseract not installed (apt-get install tesseract-ocr tesseract-ocr-fra)")


async def test_phone_screenshot_no_slot_and_doubtful_ones_wait_for_review(
    tmp_path: Path, simulator: RunningSimulator, clock: VirtualClock, browser_pool: BrowserPool
) -> None:
    need_tesseract()
    (site,) = simulator.state.scenario.rdv_prefecture_sites
    site.empty_view = "last_week"  # "Aucun créneau disponible à partir de cette date."
    browser = await browser_pool.browser()
    phone = await browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=3,
        is_mobile=True,
        has_touch=True,
        locale="fr-FR",
    )
    page = await phone.new_page()
    await walk_to_slots(page, simulator, 3327)
    clear = await page.screenshot()
    # Cropped to the message alone: the sentence is there, but not shown in its place
    # (no slot-page title), so nothing says which page it came from.
    box = await page.locator("text=Aucun créneau disponible à partir").bounding_box()
    assert box is not None
    cropped = await page.screenshot(
        clip={"x": 0, "y": box["y"] - 8, "width": 390, "height": 200}, full_page=True
    )
    await page.add_style_tag(content="body { filter: blur(2.5px); }")
    blurred = await page.screenshot()
    await phone.close()

    async with capture_server(tmp_path, simulator, clock) as server:
        _, token = add_contributor(server.engine, "demandeuse-e", "applicant", clock.now())

        client = httpx.AsyncClient(timeout=120)

        async def upload(image: bytes, jeton: str = token) -> httpx.Response:
            return await client.post(
                f"{server.url}/captures/deposer",
                data={"jeton": jeton, "cible": HAUTS_DE_SEINE},
                files={"capture": ("capture.png", image, "image/png")},
            )

        answers = [await upload(img) for img in (clear, cropped, blurred)]
        assert [a.status_code for a in answers] == [201, 201, 201]
        assert "Capture reçue" in answers[0].text and "aucun créneau" in answers[0].text.lower()
        assert "la regardera" in answers[1].text
        with Session(server.engine) as session:
            rows = session.scalars(select(CaptureRow).order_by(CaptureRow.id)).all()
            assert [(r.kind, r.outcome, r.review) for r in rows] == [
                ("screenshot", "no_slot", "none"),
                ("screenshot", "unrecognized", "pending"),
                ("screenshot", "unrecognized", "pending"),
            ]
            assert [r.detail for r in rows[:2]] == ["ocr:last_week", "ocr:no_slot_page_title"]
            assert "Veuillez réessayer ultérieurement." in (rows[0].ocr_text or "")
            probe = session.get(Probe, rows[0].probe_id)
            assert probe is not None and probe.mode == "manual" and probe.page_sha256 is None
            assert server.evidence.get(probe.screenshot_sha256, "png") == clear
        # A wrong token is refused on the form too.
        refused = await upload(clear, "faux")
        await client.aclose()
        assert refused.status_code == 401 and "Jeton personnel inconnu" in refused.text


# -- review: a doubtful capture counts in no figure until a person accepts it -------------
FIGURES = ["probes", "probes_manual", "no_slot", "available", "valid", "no_way"]
MARCH = [datetime(2026, 3, d, 10, 0, tzinfo=UTC) for d in range(1, 6)]


def figures(engine: Engine) -> dict[tuple[str, str], list[int]]:
    """What the monthly statistics say, per target and month (the counts a capture moves),
    with the days without any slot."""
    frame = monthly_stats(engine, "target")
    return {
        (row["target_id"], row["month"]): [row[c] for c in [*FIGURES, "days_without_slot"]]
        for row in frame.to_dict(orient="records")
    }


def public_reads(engine: Engine) -> tuple[int, int, int]:
    """What open data, the site and the survival of releases read: counted probes, looks
    that say whether slots existed, and the episodes without any slot."""
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT COUNT(*) FROM probes p WHERE {counted_sql('p')}"))
        episodes = conn.execute(text("SELECT COUNT(*) FROM episodes")).scalar_one()
        counted = rows.scalar_one()
    return counted, len(looks_by_target(engine)["92-a"]), episodes


def dossier_attempts(engine: Engine, evidence: EvidenceStore, out: Path) -> tuple[int, int]:
    """The attempts and failed attempts the target's dossier counts."""
    manifest = build_dossier(engine, evidence, "92-a", out, pdf=False)
    return int(str(manifest["attempts"])), int(str(manifest["failed_attempts"]))


def slots_every_day(engine: Engine, evidence: EvidenceStore) -> ContributorInfo:
    """Target 92-a, where the robot found slots on 1, 3 and 4 March; a volunteer."""
    add_target(engine, "92-a")
    for at in (MARCH[0], MARCH[2], MARCH[3]):
        factories.robot_probe(
            engine, evidence, "92-a", at, ProbeResult.with_slots([at + timedelta(days=9)])
        )
    who, _ = add_contributor(engine, "benevole-revue", "volunteer", MARCH[0])
    return who


def test_a_doubtful_no_slot_counts_nowhere_until_accepted(engine: Engine, tmp_path: Path) -> None:
    evidence = EvidenceStore(tmp_path / "ev")
    volunteer = slots_every_day(engine, evidence)
    before, reads = figures(engine), public_reads(engine)
    assert before[("92-a", "2026-03")][FIGURES.index("no_slot")] == 0

    # 2 March: "no slot", from a phone whose clock is two hours off. Kept, visible, and
    # in no figure while it waits.
    capture = doubtful_capture(
        engine, evidence, volunteer, "92-a", MARCH[1], ProbeResult(Outcome.NO_SLOT)
    )
    assert figures(engine) == before and public_reads(engine) == reads
    assert dossier_attempts(engine, evidence, tmp_path / "waiting") == (3, 0)
    assert pending_count(engine) == 1
    assert check_health(engine, [], MARCH[4]).as_dict()["captures_pending"] == 1
    (waiting,) = review_queue(engine)
    assert (waiting.id, waiting.outcome, waiting.reason) == (
        capture,
        "no_slot",
        "client_clock_differs",
    )

    # A person accepts it: the monthly figures, the episodes and every public read move.
    decided = accept_capture(engine, capture, MARCH[4], "heure du téléphone mal réglée")
    assert (decided.review, decided.counted) == ("accepted", True)
    after = figures(engine)[("92-a", "2026-03")]
    assert dict(zip([*FIGURES, "days_without_slot"], after, strict=True)) == {
        "probes": 4,
        "probes_manual": 1,
        "no_slot": 1,
        "available": 3,
        "valid": 4,
        "no_way": 1,
        "days_without_slot": 1,
    }
    assert public_reads(engine) == (reads[0] + 1, reads[1] + 1, reads[2] + 1)
    assert dossier_attempts(engine, evidence, tmp_path / "accepted") == (4, 1)
    assert pending_count(engine) == 0 and review_queue(engine) == []
    assert check_health(engine, [], MARCH[4]).as_dict()["captures_pending"] == 0
    # Decided once: a second decision is refused, nothing changes.
    with pytest.raises(ReviewError, match="already accepted"):
        accept_capture(engine, capture, MARCH[4])
    with pytest.raises(ReviewError, match="already accepted"):
        reject_capture(engine, capture, MARCH[4])


def test_a_rejected_capture_stays_out_and_keeps_its_evidence(
    engine: Engine, tmp_path: Path
) -> None:
    evidence = EvidenceStore(tmp_path / "ev")
    volunteer = slots_every_day(engine, evidence)
    before, reads = figures(engine), public_reads(engine)
    capture = doubtful_capture(
        engine, evidence, volunteer, "92-a", MARCH[1], ProbeResult(Outcome.NO_SLOT)
    )
    decided = reject_capture(engine, capture, MARCH[4], "  image d'un autre jour  ")
    assert (decided.review, decided.counted) == ("rejected", False)
    assert figures(engine) == before and public_reads(engine) == reads
    rebuild(engine)
    assert figures(engine) == before and public_reads(engine) == reads
    # Nothing destroyed: the capture, its probe, its screenshot, both reasons.
    with Session(engine) as session:
        row = session.get(CaptureRow, capture)
        assert row is not None and row.probe_id is not None
        assert (row.review, row.review_reason, row.review_note) == (
            "rejected",
            "client_clock_differs",
            "image d'un autre jour",
        )
        assert row.reviewed_at == MARCH[4]
        probe = session.get(Probe, row.probe_id)
        assert probe is not None and probe.outcome == "no_slot"
        assert row.screenshot_sha256 and evidence.path_for(row.screenshot_sha256, "png").exists()
    with pytest.raises(ReviewError, match="already rejected"):
        accept_capture(engine, capture, MARCH[4])
    with pytest.raises(ReviewError, match="no capture 999"):
        reject_capture(engine, 999, MARCH[4])

    # A capture of no configured target has nothing to count: it can only be rejected.
    lost = CaptureService(engine, evidence).receive_page(
        volunteer, b"<html><body>x</body></html>", "https://example.org/rdv", MARCH[4]
    )
    assert lost.review == "pending" and lost.probe_id is None
    with pytest.raises(ReviewError, match="matched no target"):
        accept_capture(engine, lost.id, MARCH[4])
    assert reject_capture(engine, lost.id, MARCH[4]).review == "rejected"
    # A private applicant's capture, accepted, is still theirs alone.
    private, _ = add_contributor(engine, "demandeur-revue", "applicant", MARCH[0])
    own = doubtful_capture(
        engine, evidence, private, "92-a", MARCH[1], ProbeResult(Outcome.NO_SLOT)
    )
    assert accept_capture(engine, own, MARCH[4]).counted is False
    assert figures(engine) == before and public_reads(engine) == reads


def test_captures_accept_reject_commands_and_status(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    assert factories.invoke("db", "upgrade").exit_code == 0
    path = tmp_path / "targets.yaml"
    path.write_text(VALID_TARGETS, "utf-8")
    engine = make_engine(cli_env["OBSERVATOIRE_DATABASE_URL"])
    sync_targets(engine, load_config(path).targets, MARCH[0])
    evidence = EvidenceStore(tmp_path / "ev")
    volunteer, _ = add_contributor(engine, "benevole-cli", "volunteer", MARCH[0])
    target = "92-renouvellement-1"
    no_slot = ProbeResult(Outcome.NO_SLOT)
    first, second = (
        doubtful_capture(engine, evidence, volunteer, target, at, no_slot) for at in MARCH[1:3]
    )

    def status() -> tuple[dict[str, object], str]:
        as_json = factories.invoke("status", "--config", str(path), "--json")
        text_ = factories.invoke("status", "--config", str(path))
        assert as_json.exit_code == text_.exit_code == 1  # nothing probed: not a new alarm
        return json.loads(as_json.stdout), text_.stdout

    payload, shown = status()
    assert payload["schema_version"] == 1 and payload["captures_pending"] == 2
    assert "2 capture(s) waiting for review" in shown and "captures review" in shown
    listed = factories.invoke("captures", "review")
    assert listed.exit_code == 0 and "2 capture(s) waiting for review" in listed.stdout

    unknown = factories.invoke("captures", "accept", "999")
    assert unknown.exit_code == 2 and "error: no capture 999" in unknown.stderr
    ok = factories.invoke("captures", "accept", str(first))
    assert ok.exit_code == 0 and "now counts in the figures" in ok.stdout
    again = factories.invoke("captures", "accept", str(first))
    assert again.exit_code == 2 and "not waiting for review (already accepted)" in again.stderr
    out = factories.invoke("captures", "reject", str(second), "--reason", "photo floue")
    assert out.exit_code == 0 and "rejected" in out.stdout
    again = factories.invoke("captures", "reject", str(second))
    assert again.exit_code == 2 and "already rejected" in again.stderr
    with Session(engine) as session:
        rejected = session.get(CaptureRow, second)
        assert rejected is not None and rejected.review_note == "photo floue"

    payload, shown = status()
    assert payload["captures_pending"] == 0 and "waiting for review" not in shown
    helps = factories.invoke("captures", "--help").stdout
    assert "accept" in helps and "reject" in helps
    engine.dispose()


# -- releases: a person's capture of a release banner, once counted ----------------------
BANNERS_PAGE = Path(__file__).parent / "fixtures" / "rdv_prefecture" / "banners.html"
RDV_TARGET = "92-rdvpref-4418"
RDV_URL = f"https://{RDV}/4418/"
#: What the fixture's banners say: "Dernière mise en ligne … le 04/05/2026 à 11:58" and
#: "Prochaine mise en ligne … le 11/05/2026 à 11:58" (Paris, summer time).
LAST_RELEASE = datetime(2026, 5, 4, 9, 58, tzinfo=UTC)
NEXT_RELEASE = datetime(2026, 5, 11, 9, 58, tzinfo=UTC)
SEEN_AT = datetime(2026, 5, 5, 10, 0, tzinfo=UTC)


def banner_capture(
    engine: Engine, evidence: EvidenceStore, who: ContributorInfo, *, clock_off: bool = False
) -> CaptureOutcome:
    """The RDV-Préfecture slot page with both release banners, sent by the extension the
    day after the last release (from a computer whose clock is two hours off: it then
    waits for review)."""
    client_time = SEEN_AT - timedelta(hours=2) if clock_off else SEEN_AT
    return CaptureService(engine, evidence).receive_page(
        who, BANNERS_PAGE.read_bytes(), f"{RDV_URL}creneau/", SEEN_AT, client_time=client_time
    )


def stored_releases(engine: Engine) -> list[tuple[str, datetime, str, int | None]]:
    with Session(engine) as session:
        rows = session.scalars(select(ReleaseRow).order_by(ReleaseRow.published_at))
        return [(r.target_id, r.published_at, r.source, r.probe_id) for r in rows]


def rdv_target_and_volunteer(engine: Engine) -> ContributorInfo:
    add_target(engine, RDV_TARGET, platform="rdv_prefecture", url=RDV_URL)
    who, _ = add_contributor(engine, "benevole-banniere", "volunteer", SEEN_AT)
    return who


def test_a_counted_capture_of_a_release_banner_records_the_release(
    engine: Engine, tmp_path: Path
) -> None:
    volunteer = rdv_target_and_volunteer(engine)
    done = banner_capture(engine, EvidenceStore(tmp_path / "ev"), volunteer)
    assert (done.outcome, done.review) == ("no_slot", "none") and done.probe_id is not None
    assert stored_releases(engine) == [
        (RDV_TARGET, LAST_RELEASE, "banner", done.probe_id),
        (RDV_TARGET, NEXT_RELEASE, "announced", done.probe_id),
    ]
    # The "Mises en ligne" figures read it: the capture's "no slot" bounds its survival.
    (survival,) = survivals(engine, SEEN_AT, [RDV_TARGET])
    assert (survival.published_at, survival.source, survival.looks) == (LAST_RELEASE, "banner", 1)
    assert survival.high == (SEEN_AT - LAST_RELEASE).total_seconds()


def test_a_pending_banner_capture_records_its_releases_once_accepted(
    engine: Engine, tmp_path: Path
) -> None:
    evidence = EvidenceStore(tmp_path / "ev")
    volunteer = rdv_target_and_volunteer(engine)
    done = banner_capture(engine, evidence, volunteer, clock_off=True)
    assert (done.review, done.review_reason) == ("pending", "client_clock_differs")
    assert stored_releases(engine) == [] and survivals(engine, SEEN_AT) == []

    assert accept_capture(engine, done.id, SEEN_AT + timedelta(hours=1)).counted is True
    assert stored_releases(engine) == [
        (RDV_TARGET, LAST_RELEASE, "banner", done.probe_id),
        (RDV_TARGET, NEXT_RELEASE, "announced", done.probe_id),
    ]
    # An accepted capture's slots infer no release: it may lie before probes already
    # stored, whose own looks decide what was released when.
    add_target(engine, "92-a")
    factories.robot_probe(engine, evidence, "92-a", MARCH[0], ProbeResult(Outcome.NO_SLOT))
    slots = ProbeResult.with_slots([MARCH[1] + timedelta(days=9)])
    late = doubtful_capture(engine, evidence, volunteer, "92-a", MARCH[1], slots)
    assert accept_capture(engine, late, MARCH[4]).counted is True
    assert [r for r in stored_releases(engine) if r[0] == "92-a"] == []


def test_a_rejected_or_private_banner_capture_records_no_release(
    engine: Engine, tmp_path: Path
) -> None:
    evidence = EvidenceStore(tmp_path / "ev")
    volunteer = rdv_target_and_volunteer(engine)
    doubtful = banner_capture(engine, evidence, volunteer, clock_off=True)
    assert reject_capture(engine, doubtful.id, SEEN_AT).review == "rejected"
    # A private applicant's capture, counted nowhere, accepted or not.
    applicant, _ = add_contributor(engine, "demandeuse-banniere", "applicant", SEEN_AT)
    private = banner_capture(engine, evidence, applicant)
    assert private.review == "none" and private.probe_id is not None
    waiting = banner_capture(engine, evidence, applicant, clock_off=True)
    assert accept_capture(engine, waiting.id, SEEN_AT).counted is False
    assert stored_releases(engine) == [] and survivals(engine, SEEN_AT) == []
    # What does count still records it: the same page from the volunteer, without doubt.
    counted = banner_capture(engine, evidence, volunteer)
    assert [r[2:] for r in stored_releases(engine)] == [
        ("banner", counted.probe_id),
        ("announced", counted.probe_id),
    ]


def test_an_applicants_opt_in_moves_their_banners_in_and_out_of_the_releases(
    engine: Engine, tmp_path: Path
) -> None:
    evidence = EvidenceStore(tmp_path / "ev")
    rdv_target_and_volunteer(engine)
    applicant, _ = add_contributor(engine, "demandeuse-choix", "applicant", SEEN_AT)
    private = banner_capture(engine, evidence, applicant)
    assert stored_releases(engine) == []
    assert set_opt_in(engine, "demandeuse-choix", True).counted
    assert stored_releases(engine) == [
        (RDV_TARGET, LAST_RELEASE, "banner", private.probe_id),
        (RDV_TARGET, NEXT_RELEASE, "announced", private.probe_id),
    ]
    assert not set_opt_in(engine, "demandeuse-choix", False).counted
    assert stored_releases(engine) == []


def test_a_capture_sent_back_to_review_takes_its_releases_out(
    engine: Engine, tmp_path: Path
) -> None:
    evidence = EvidenceStore(tmp_path / "ev")
    volunteer = rdv_target_and_volunteer(engine)
    done = banner_capture(engine, evidence, volunteer)
    assert [r[2:] for r in stored_releases(engine)] == [
        ("banner", done.probe_id),
        ("announced", done.probe_id),
    ]
    # Five minutes later the robot finds slots on the same page: the capture's "no slot"
    # waits for review again, and its banners leave the releases with its probe.
    slots = ProbeResult.with_slots([SEEN_AT + timedelta(days=9)])
    factories.robot_probe(engine, evidence, RDV_TARGET, SEEN_AT + timedelta(minutes=5), slots)
    (waiting,) = review_queue(engine, recheck_since=SEEN_AT - timedelta(days=1))
    assert waiting.id == done.id and waiting.reason.startswith("contradicted_by_probe:")
    assert stored_releases(engine) == []
    accept_capture(engine, done.id, SEEN_AT + timedelta(hours=1))
    assert [r[2:] for r in stored_releases(engine)] == [
        ("banner", done.probe_id),
        ("announced", done.probe_id),
    ]


def test_deleting_a_contributor_leaves_no_release_of_theirs(engine: Engine, tmp_path: Path) -> None:
    evidence = EvidenceStore(tmp_path / "ev")
    volunteer = rdv_target_and_volunteer(engine)
    done = banner_capture(engine, evidence, volunteer)
    # The robot reads the same "Dernière mise en ligne" an hour later (no "Prochaine").
    later = SEEN_AT + timedelta(hours=1)
    seen = ProbeResult(Outcome.NO_SLOT, release_last_at=LAST_RELEASE)
    factories.robot_probe(engine, evidence, RDV_TARGET, later, seen)
    # Without banners (target 92-a): the volunteer's "no slot" precedes the robot's slots,
    # and the volunteer's slots follow the robot's "no slot": two inferred releases.
    add_target(engine, "92-a")
    no_slot = ProbeResult(Outcome.NO_SLOT)
    factories.robot_probe(engine, evidence, "92-a", MARCH[0], no_slot)
    own_slots = ProbeResult.with_slots([MARCH[1] + timedelta(days=9)])
    factories.manual_probe(engine, evidence, volunteer, "92-a", MARCH[1], own_slots)
    # (Half a second past: an inferred release keeps whole seconds of uncertainty.)
    half = timedelta(milliseconds=500)
    factories.manual_probe(engine, evidence, volunteer, "92-a", MARCH[2] + half, no_slot)
    robot_slots = ProbeResult.with_slots([MARCH[3] + timedelta(days=9)])
    factories.robot_probe(engine, evidence, "92-a", MARCH[3], robot_slots)
    with Session(engine) as session:
        inferred = session.execute(
            select(ReleaseRow.published_at, ReleaseRow.uncertainty_seconds)
            .where(ReleaseRow.target_id == "92-a")
            .order_by(ReleaseRow.published_at)
        ).all()
    day = 24 * 3600
    assert [tuple(r) for r in inferred] == [(MARCH[1], day), (MARCH[3], day - 1)]
    assert [r[2:] for r in stored_releases(engine) if r[0] == RDV_TARGET] == [
        ("banner", done.probe_id),
        ("announced", done.probe_id),
    ]

    delete_contributor(engine, evidence, "benevole-banniere")
    with Session(engine) as session:
        rows = session.scalars(select(ReleaseRow).order_by(ReleaseRow.published_at)).all()
        robot = session.scalar(select(Probe.id).where(Probe.started_at == later))
        left = [
            (
                r.target_id,
                r.published_at,
                r.source,
                r.probe_id,
                r.first_seen_at,
                r.uncertainty_seconds,
            )
            for r in rows
        ]
    # The banner the robot read too stays, as the robot saw it; the announced one only
    # the volunteer saw goes; the release their slots revealed goes; the robot's
    # inferred release is measured again from the robot's own "no slot" before it.
    assert left == [
        ("92-a", MARCH[3], "inferred", left[0][3], MARCH[3], 3 * day),
        (RDV_TARGET, LAST_RELEASE, "banner", robot, later, None),
    ]
