"""The assisted interface: what a captcha-first platform's adapter offers the volunteer's
page (`observatoire assist`).

Where a captcha stands before availability, the robot does not solve it: a volunteer
answers it, in the robot's own browser. The assist code drives any adapter that
implements `AssistedAdapter` through these steps, and knows no platform by name. An
adapter implementing it is "captcha-first" in the registry: its targets are never
probed automatically (`run` says `blocked/captcha_first` without loading anything).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from datetime import datetime

from playwright.async_api import Page

from observatoire.adapters.base import Adapter, ProbeContext
from observatoire.config import Target
from observatoire.outcomes import Outcome, ProbeResult


@dataclass(frozen=True)
class Captcha:
    """What the volunteer needs: the image as the robot's browser shows it, and whether
    the page offers an audio button (pressed only when the volunteer asks)."""

    image_png: bytes
    audio_via_button: bool
    #: The platform said the previous answer was wrong.
    after_wrong_answer: bool = False
    #: The platform's session ended before the answer: back to a new captcha.
    session_expired: bool = False
    #: The widget's version as the adapter recognised it ("v2", "v1", "other").
    widget: str = "v2"


class AssistedAdapter(Adapter):
    """A captcha-first platform: each step is one the volunteer's page asks for. Every
    step may raise ProbeStop to end the observation with a known result."""

    async def run(self, target: Target, ctx: ProbeContext) -> ProbeResult:
        """Never called by a sweep (captcha-first targets wait for a volunteer): without
        a person to answer the captcha, the only truthful outcome is `blocked`, and the
        robot does not even load the page to say so."""
        return ProbeResult(Outcome.BLOCKED, "captcha_first")

    @abstractmethod
    async def open_captcha(self, page: Page, target: Target, timeout: float) -> Captcha:
        """From the procedure's page to its captcha."""

    @abstractmethod
    async def submit_answer(
        self, page: Page, answer: str, timeout: float, now: datetime, target: Target | None = None
    ) -> Captcha | ProbeResult:
        """Type the volunteer's answer: a new Captcha when it was refused or the session
        had ended, else the result read on the page it led to (evidence not attached)."""

    @abstractmethod
    async def read_slot_page(
        self, page: Page, timeout: float, now: datetime, target: Target | None = None
    ) -> ProbeResult:
        """Read what the page behind the captcha says, touching nothing on it."""

    @abstractmethod
    async def captcha_again(self, page: Page, timeout: float) -> Captcha | None:
        """After a reload of that page ("Regarder à nouveau"): the new captcha when the
        platform's session has ended, else None (the page can be read again)."""

    @abstractmethod
    async def audio(self, page: Page, timeout: float = 30.0) -> tuple[bytes, str]:
        """The captcha's audio and its content type, as the page's own button gets it."""

    @abstractmethod
    async def evidence(self, page: Page, when: datetime, note: str) -> tuple[bytes, bytes]:
        """The page's HTML and screenshot, stamped with `note`."""
