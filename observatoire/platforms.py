"""The platform registry: one entry per booking platform family, read by everything
that needs to know about platforms (config validation, the sweep, the assist queue, the
site's labels, the browser extension's host list, the tests).

An entry (`Platform`) names the adapter class, its typed options model, its French
label, the shape of its URLs; its transport and whether a volunteer is needed follow
from the adapter class, so they are written once. Each adapter module declares its own
`PLATFORM` next to its class. The registry loads, in one place (`load_platforms`), the
built-in modules listed in `BUILTIN` and every `observatoire.adapters` entry point of the
installed distributions, so a third party adds a platform without editing this package
(docs/adding-a-platform.md). A name declared twice is refused, never silently replaced.

The options models live here, apart from the adapters' parsing code, because they are
the targets file's vocabulary: config validation and the adapters read the same model.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from observatoire.adapters.base import Adapter


class PlatformOptions(BaseModel):
    """Base of every platform's `options:` model: unknown keys are refused, so a typo in
    the targets file is an error with its line, not a silently ignored setting."""

    model_config = ConfigDict(extra="forbid")


class LegacyBookingOptions(PlatformOptions):
    #: The counter ("guichet", radio `planning`) to choose on step 1. Needed to read
    #: the week calendar; when a form has several counters and none is given, the
    #: first one offered is used and the probe detail says so.
    planning: int | None = Field(default=None, gt=0)
    #: How far ahead to read the week calendar when slots exist.
    calendar_days: int = Field(default=60, ge=7, le=120)


class RdvPrefectureOptions(PlatformOptions):
    pass


#: The Val-de-Marne eAppointment no-slot alert, with the site's own typos
#: (platforms.md §3). The text is sent by the server, so it differs between instances:
#: a target on another instance lists its own in `no_slot_messages`.
EAPPOINTMENT_NO_SLOT_DEFAULT = (
    "Aucun rendez-vous n'est possible pour les motifs selectionnnés ou le créneau "
    "horaire séléctionné.",
)


class EAppointmentOptions(PlatformOptions):
    postal_code: str | None = Field(default=None, pattern=r"^\d{5}$")
    motive: str | None = None
    #: The instance's no-slot alert texts, compared exactly after folding spaces and
    #: apostrophes — never fuzzily: a reworded alert must be read by a person first.
    no_slot_messages: list[Annotated[str, Field(min_length=10)]] = Field(
        default_factory=lambda: list(EAPPOINTMENT_NO_SLOT_DEFAULT), min_length=1
    )


class DemarchesSimplifieesOptions(PlatformOptions):
    pass


#: Fields the robot must never fill: it never submits personal data.
PERSONAL_FIELD = re.compile(
    r"nom|name|pr[ée]nom|mail|t[ée]l|phone|naissance|birth|adresse|address|passe?port|"
    r"agdref|[ée]tranger|nationalit|sexe|gender|iban|password|mot.?de.?passe",
    re.I,
)
ATTRIBUTE_NAMES = re.compile(r"\b(name|id|type|class|for)\s*[*^$|~]?=", re.I)


def looks_personal(identifier: str) -> bool:
    """True when a selector, field name, id or label designates personal data."""
    return bool(PERSONAL_FIELD.search(ATTRIBUTE_NAMES.sub(" ", identifier)))


ACTIONS = ("goto", "click", "check", "select", "fill", "wait_for")


class ScriptStep(PlatformOptions):
    """One step: exactly one action. `select` and `fill` take `value`; `fill` only for
    non-personal fields (postal code, a search box)."""

    goto: str | None = None
    click: str | None = None
    check: str | None = None
    select: str | None = None
    fill: str | None = None
    wait_for: str | None = None
    value: str | None = None
    timeout_s: float = Field(default=20.0, gt=0, le=120)

    @model_validator(mode="after")
    def _one_action(self) -> ScriptStep:
        chosen = [a for a in ACTIONS if getattr(self, a) is not None]
        if len(chosen) != 1:
            raise ValueError(f"a step needs exactly one of {', '.join(ACTIONS)}")
        if chosen[0] in ("select", "fill") and self.value is None:
            raise ValueError(f"`{chosen[0]}` needs a `value`")
        if self.fill is not None and looks_personal(self.fill):
            raise ValueError(
                f"refusing to fill {self.fill!r}: the robot never submits personal data"
            )
        if self.value and re.search(r"@|\+?\d[\d .-]{8,}", self.value):
            raise ValueError("this value looks like personal data (e-mail or phone number)")
        return self

    @property
    def action(self) -> str:
        return next(a for a in ACTIONS if getattr(self, a) is not None)


class ExpectRule(PlatformOptions):
    """When `text` is seen (on the final page, or in a JavaScript alert if `in_dialog`),
    the probe ends with `outcome`. Rules are tried in order."""

    text: str = Field(min_length=3)
    outcome: Literal["available", "no_slot", "procedure_missing"]
    in_dialog: bool = False


class ScriptedOptions(PlatformOptions):
    steps: list[ScriptStep] = Field(min_length=1)
    expect: list[ExpectRule] = Field(min_length=1)
    #: Elements whose text holds an offered slot ("mardi 12 mai 2026 à 09:30").
    slot_selector: str | None = None


@dataclass(frozen=True)
class Platform:
    """One booking platform family: the registry entry.

    Everything else a platform needs is derived from these fields: its name, version and
    transport from the adapter class, "a volunteer is needed" from the adapter
    implementing the assisted interface (`AssistedAdapter`)."""

    #: The adapter class (its `name` is the `platform:` of the targets it serves).
    adapter: type[Adapter]
    #: French, as the public site and the dossier name the platform.
    label: str
    #: The model of a target's `options:` on this platform; adapters receive it typed.
    options: type[PlatformOptions]
    #: What a target's URL on this platform looks like (checked by `targets check`).
    url_pattern: re.Pattern[str]
    #: The documented address, shown when a URL does not match (and, when it names a
    #: real host, added to the browser extension's host list).
    url_hint: str

    @property
    def name(self) -> str:
        return self.adapter.name

    @property
    def transport(self) -> str:
        """The adapter's transport: "http" (httpx) or "browser" (Playwright)."""
        return self.adapter.transport

    @property
    def captcha_first(self) -> bool:
        """A captcha precedes availability, so a volunteer is needed: such targets are
        never probed automatically, only through `observatoire assist`."""
        from observatoire.adapters.assisted import AssistedAdapter

        return issubclass(self.adapter, AssistedAdapter)


#: The built-in platforms: modules that each define a module-level `PLATFORM`.
BUILTIN: tuple[str, ...] = (
    "observatoire.adapters.legacy_booking",
    "observatoire.adapters.rdv_prefecture",
    "observatoire.adapters.eappointment",
    "observatoire.adapters.demarches_simplifiees",
    "observatoire.adapters.scripted",
)
#: Third-party platforms: `name = "package.module:PLATFORM"` in this entry point group.
ENTRY_POINT_GROUP = "observatoire.adapters"


class RegistryError(ValueError):
    """A platform entry cannot be registered (a name declared twice, not a Platform)."""


class DuplicatePlatform(RegistryError):
    pass


def _checked(entry: object, origin: str) -> Platform:
    if not isinstance(entry, Platform):
        raise RegistryError(f"{origin}: expected an observatoire.platforms.Platform, got {entry!r}")
    adapter = entry.adapter
    if not getattr(adapter, "name", None) or not getattr(adapter, "version", None):
        raise RegistryError(f"{origin}: {adapter.__name__} needs a `name` and a `version`")
    if getattr(adapter, "transport", None) not in ("http", "browser"):
        raise RegistryError(f"{origin}: {adapter.__name__}.transport must be http or browser")
    return entry


def load_platforms() -> dict[str, Platform]:
    """Every platform: the built-in ones, then the entry points. The one place where
    platforms are loaded; RegistryError when two entries claim one name."""
    found: dict[str, tuple[Platform, str]] = {}

    def add(entry: object, origin: str) -> None:
        platform = _checked(entry, origin)
        first = found.get(platform.name)
        if first is not None and first[0] is not platform:
            raise DuplicatePlatform(
                f"platform {platform.name!r} is declared twice: by {first[1]} and by {origin}"
            )
        found[platform.name] = (platform, origin)

    for module in BUILTIN:
        add(import_module(module).PLATFORM, module)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        origin = f"entry point {ep.name} = {ep.value}"
        try:
            entry = ep.load()
        except Exception as exc:  # a broken plugin is named, not a bare traceback
            raise RegistryError(f"{origin}: cannot load: {exc}") from exc
        add(entry, origin)
    return {name: platform for name, (platform, _) in found.items()}


class _Registry(Mapping[str, Platform]):
    """`PLATFORMS`: the registry as a read-only mapping, loaded on first use (the
    adapter modules import this one, so loading at import time would be circular)."""

    def __init__(self) -> None:
        self._platforms: dict[str, Platform] | None = None

    def _loaded(self) -> dict[str, Platform]:
        if self._platforms is None:
            self._platforms = load_platforms()
        return self._platforms

    def reload(self) -> None:
        """Forget what was loaded: the next use reads the entry points again (after a
        plugin was installed in a running process, as the tests do)."""
        self._platforms = None

    def __getitem__(self, name: str) -> Platform:
        return self._loaded()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())

    def __repr__(self) -> str:
        return f"<platform registry: {', '.join(self._loaded())}>"


PLATFORMS = _Registry()


def platform(name: str) -> Platform:
    """The entry for `name`; KeyError naming the known platforms."""
    try:
        return PLATFORMS[name]
    except KeyError:
        known = ", ".join(sorted(PLATFORMS))
        raise KeyError(f"unknown platform {name!r} (known: {known})") from None
