"""The targets file (`config/prefectures.yaml`): pydantic models and a loader whose every
error names the file, the line and the field, so an operator can fix it at once.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails

from observatoire.platforms import PLATFORMS, PlatformOptions
from observatoire.yamlsource import LocatedYaml, YamlLoadError, load_located

#: Placeholder for the simulator's base URL in `config/demo.yaml`.
SIMULATOR_PLACEHOLDER = "{simulator}"
SLUG = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
OptionsT = TypeVar("OptionsT", bound=PlatformOptions)


@dataclass(frozen=True)
class Department:
    code: str
    name: str
    prefecture_city: str
    region: str
    zone: str


@cache
def reference_departments() -> dict[str, Department]:
    """The 101 departments (INSEE codes as strings: "01", "2A", "976")."""
    text = resources.files("observatoire.data").joinpath("departements.csv").read_text("utf-8")
    rows = csv.DictReader(text.splitlines())
    return {
        r["code"]: Department(r["code"], r["name"], r["prefecture_city"], r["region"], r["zone"])
        for r in rows
    }


_DAYS_FR = ("lun", "mar", "mer", "jeu", "ven", "sam", "dim")
_HOURS = re.compile(r"^(\d{1,2})[:h](\d{2})\s*-\s*(\d{1,2})[:h](\d{2})$")


def parse_opening_hours(text: str) -> tuple[frozenset[int], tuple[tuple[int, int], ...]]:
    """'lun-ven 09:00-12:00, 13:30-16:00' -> ({0..4}, ((540, 720), (810, 960))): weekdays
    (Monday = 0) and opening ranges in minutes of the day, Europe/Paris. Days are
    optional (Monday to Friday). Raises ValueError saying what is wrong."""
    text = text.strip()
    days: set[int] = set(range(5))
    head, _, rest = text.partition(" ")
    if head[:3].lower() in _DAYS_FR and not _HOURS.match(text.split(",")[0].strip()):
        days = set()
        for part in head.lower().split(","):
            first, _, last = part.partition("-")
            if first[:3] not in _DAYS_FR or (last and last[:3] not in _DAYS_FR):
                raise ValueError(f"unknown day in {head!r} (lun, mar, mer, jeu, ven, sam, dim)")
            a = _DAYS_FR.index(first[:3])
            b = _DAYS_FR.index(last[:3]) if last else a
            days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(b + 1)])
        text = rest
    ranges = []
    for part in text.split(","):
        m = _HOURS.match(part.strip())
        if not m:
            raise ValueError(f"{part.strip()!r} is not a range like 09:00-12:00")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if not (m1 < 60 and m2 < 60 and 0 <= start < end <= 24 * 60):
            raise ValueError(f"{part.strip()!r}: the range must go forward within one day")
        ranges.append((start, end))
    return frozenset(days), tuple(ranges)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class FollowupConfig(_Strict):
    """Follow-up probes of an automatic target (issue 17; see robot/followup.py): when a probe
    sees slots or a release is announced, look again every `every_minutes` for
    `for_minutes`, at most `per_host_hour` follow-ups per host and per hour, always
    through the per-host gate. `followup: true` takes these defaults."""

    every_minutes: int = Field(default=10, ge=5, le=60)
    for_minutes: int = Field(default=60, ge=10, le=240)
    per_host_hour: int = Field(default=6, ge=1, le=12)


class TargetConfig(_Strict):
    id: str = Field(pattern=SLUG, max_length=80)
    procedure: str = Field(pattern=SLUG)
    #: The procedure as the platform labels it (free text, French).
    label: str = Field(min_length=1)
    platform: str
    url: str
    enabled: bool = True
    interval_minutes: int | None = Field(default=None, gt=0, le=7 * 24 * 60)
    #: The office: "Préfecture des Hauts-de-Seine (Nanterre)".
    site: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    source: str | None = None
    note: str | None = None
    #: Hosts known to share one server (e.g. two names of one prefecture site) get one
    #: politeness gate: one request in flight and the minimum delay across all of them.
    host_group: str | None = Field(default=None, pattern=SLUG, max_length=60)
    #: Follow-up probes after slots are seen (automatic platforms only).
    followup: FollowupConfig | bool | None = None
    #: The prefecture's opening hours, "lun-ven 09:00-12:00, 13:30-16:00" (days optional,
    #: Monday to Friday by default): the dossier counts the attempts made while the
    #: office was open. Never affects a measurement.
    opening_hours: str | None = None

    @field_validator("opening_hours")
    @classmethod
    def _opening_hours(cls, value: str | None) -> str | None:
        if value is not None:
            parse_opening_hours(value)  # raises ValueError with the reason
        return value

    @field_validator("platform")
    @classmethod
    def _known_platform(cls, value: str) -> str:
        # The registry, plugins included: a platform added through the
        # `observatoire.adapters` entry point is a known platform.
        if value not in PLATFORMS:
            known = ", ".join(sorted(PLATFORMS))
            raise ValueError(f"unknown platform {value!r} (known: {known})")
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {value!r}")
        if " " in value:
            raise ValueError(f"URL contains a space: {value!r}")
        return value


class DepartmentConfig(_Strict):
    code: str
    name: str = Field(min_length=1)
    prefecture: str = Field(min_length=1)
    targets: list[TargetConfig] = Field(default_factory=list)


class Defaults(_Strict):
    interval_minutes: int = Field(default=60, gt=0, le=7 * 24 * 60)


class ConfigFile(_Strict):
    version: Literal[1]
    defaults: Defaults = Field(default_factory=Defaults)
    #: Procedure slugs and their French names, shared by all departments.
    procedures: dict[str, str]
    departments: list[DepartmentConfig]


@dataclass(frozen=True)
class Target:
    """A resolved target: what the sweep, the adapters and the database see."""

    id: str
    department: str
    department_name: str
    prefecture: str
    procedure: str
    procedure_name: str
    label: str
    platform: str
    url: str
    enabled: bool
    interval_minutes: int
    site: str | None
    #: The options as stored and hashed (JSON, defaults filled in); adapters read them
    #: typed through `options_as`.
    options: dict[str, Any]
    host_group: str | None = None
    followup: FollowupConfig | None = None
    opening_hours: str | None = None

    def options_as(self, model: type[OptionsT]) -> OptionsT:
        """The options as the platform's typed model, whose defaults are the only ones:
        an adapter reads `options_as(LegacyBookingOptions).calendar_days`, never a
        string key with a default of its own."""
        return model.model_validate(self.options)

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc.lower()

    @property
    def gate_key(self) -> str:
        """The politeness gate this target's host goes through (canonical host, or its
        `host_group`); shards split targets by it."""
        from observatoire.robot.politeness import group_key, url_host_key

        return group_key(self.host_group) if self.host_group else url_host_key(self.url)

    @property
    def config_hash(self) -> str:
        """Changes whenever anything that affects a measurement changes."""
        payload = json.dumps(
            [self.platform, self.url, self.procedure, self.options, self.interval_minutes],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ConfigIssue:
    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class ConfigError(Exception):
    """The file cannot be used; `issues` lists every problem found."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = issues


@dataclass(frozen=True)
class Config:
    path: Path
    procedures: dict[str, str]
    departments: list[DepartmentConfig]
    targets: list[Target]

    def target(self, target_id: str) -> Target:
        for t in self.targets:
            if t.id == target_id:
                return t
        raise KeyError(target_id)

    @property
    def enabled_targets(self) -> list[Target]:
        return [t for t in self.targets if t.enabled]

    def missing_departments(self) -> list[str]:
        listed = {d.code for d in self.departments}
        return [code for code in reference_departments() if code not in listed]


def _field_name(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _pydantic_message(err: ErrorDetails) -> str:
    kind = err.get("type", "")
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field (check its spelling)"
    msg = str(err.get("msg", "invalid value"))
    return msg.removeprefix("Value error, ")


def load_config(
    path: Path | str, simulator_url: str | Callable[[str], str] | None = None
) -> Config:
    """Read and validate a targets file. Raises ConfigError listing every problem.

    `simulator_url` replaces the `{simulator}` placeholder used by `config/demo.yaml`
    (a function receives the simulated host that follows the placeholder, for a
    simulator serving each host on its own port); without it a placeholder is reported
    as an error, so a demo file is never probed against nothing.
    """
    path = Path(path)
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(name, 0, "", "file not found")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigIssue(name, 1, "", f"not UTF-8 text: {exc.reason}")]) from None
    except OSError as exc:
        raise ConfigError([ConfigIssue(name, 0, "", f"cannot read: {exc.strerror}")]) from None

    if SIMULATOR_PLACEHOLDER in text and simulator_url is not None:
        if callable(simulator_url):
            resolve = simulator_url
            text = re.sub(
                r"\{simulator\}/([^/\s\"']+)",
                lambda m: f"{resolve(m.group(1)).rstrip('/')}/{m.group(1)}",
                text,
            )
        else:
            text = text.replace(SIMULATOR_PLACEHOLDER, simulator_url.rstrip("/"))
    try:
        doc = load_located(text)
    except YamlLoadError as exc:
        raise ConfigError(
            [ConfigIssue(name, p.line, _field_name(p.path), p.message) for p in exc.problems]
        ) from None
    if not isinstance(doc.data, dict):
        raise ConfigError([ConfigIssue(name, 1, "", "expected a mapping with 'departments'")])

    try:
        parsed = ConfigFile.model_validate(doc.data)
    except ValidationError as exc:
        issues = [
            ConfigIssue(
                name,
                doc.line_of(tuple(e["loc"])),
                _field_name(tuple(e["loc"])),
                _pydantic_message(e),
            )
            for e in exc.errors()
        ]
        raise ConfigError(issues) from None

    issues = _cross_check(parsed, doc, name)
    if issues:
        raise ConfigError(issues)
    return _resolve(parsed, path)


def _cross_check(parsed: ConfigFile, doc: LocatedYaml, name: str) -> list[ConfigIssue]:
    """Checks that need more than one field: references, uniqueness, platform rules."""
    issues: list[ConfigIssue] = []

    def add(path: tuple[str | int, ...], message: str) -> None:
        issues.append(ConfigIssue(name, doc.line_of(path), _field_name(path), message))

    for slug in parsed.procedures:
        if not re.match(SLUG, slug):
            add(("procedures", slug), f"procedure key {slug!r} must be a lowercase slug")
    reference = reference_departments()
    seen_departments: dict[str, int] = {}
    seen_targets: dict[str, tuple[str | int, ...]] = {}
    for d_index, dept in enumerate(parsed.departments):
        dpath: tuple[str | int, ...] = ("departments", d_index)
        ref = reference.get(dept.code)
        if ref is None:
            add((*dpath, "code"), f"unknown department code {dept.code!r} (e.g. '01', '2A', '974')")
        elif ref.name != dept.name:
            add(
                (*dpath, "name"), f"department {dept.code} is named {ref.name!r}, not {dept.name!r}"
            )
        if dept.code in seen_departments:
            add((*dpath, "code"), f"department {dept.code} is listed twice")
        seen_departments.setdefault(dept.code, d_index)
        for t_index, target in enumerate(dept.targets):
            tpath = (*dpath, "targets", t_index)
            prefix = dept.code.lower() + "-"
            if not target.id.startswith(prefix):
                add((*tpath, "id"), f"target id must start with the department code: {prefix}…")
            if target.id in seen_targets:
                first = doc.line_of(seen_targets[target.id])
                add((*tpath, "id"), f"duplicate target id {target.id!r} (first on line {first})")
            seen_targets.setdefault(target.id, tpath)
            if target.procedure not in parsed.procedures:
                add(
                    (*tpath, "procedure"),
                    f"unknown procedure {target.procedure!r}; declare it under 'procedures'",
                )
            spec = PLATFORMS[target.platform]
            if SIMULATOR_PLACEHOLDER in target.url:
                add(
                    (*tpath, "url"),
                    "uses {simulator}: run it through `observatoire demo` or pass --simulator-url",
                )
            elif not spec.url_pattern.match(target.url):
                add((*tpath, "url"), f"not a {target.platform} URL; expected {spec.url_hint}")
            if target.followup and spec.captcha_first:
                add(
                    (*tpath, "followup"),
                    "follow-ups are for automatic targets; a captcha-first target is "
                    "observed by volunteers (see the calendar feed of announced releases)",
                )
            try:
                spec.options.model_validate(target.options)
            except ValidationError as exc:
                for e in exc.errors():
                    add((*tpath, "options", *e["loc"]), _pydantic_message(e))
    return issues


def _followup(value: FollowupConfig | bool | None) -> FollowupConfig | None:
    if value is True:
        return FollowupConfig()
    return value or None


def _resolve(parsed: ConfigFile, path: Path) -> Config:
    targets = [
        Target(
            id=t.id,
            department=d.code,
            department_name=d.name,
            prefecture=d.prefecture,
            procedure=t.procedure,
            procedure_name=parsed.procedures[t.procedure],
            label=t.label,
            platform=t.platform,
            url=t.url,
            enabled=t.enabled,
            interval_minutes=t.interval_minutes or parsed.defaults.interval_minutes,
            site=t.site,
            options=PLATFORMS[t.platform].options.model_validate(t.options).model_dump(),
            host_group=t.host_group,
            followup=_followup(t.followup),
            opening_hours=t.opening_hours,
        )
        for d in parsed.departments
        for t in d.targets
    ]
    return Config(path, dict(parsed.procedures), list(parsed.departments), targets)
