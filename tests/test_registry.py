"""The platform registry, walked: every registered platform has what a platform needs to
be trusted (an adapter, contract fixtures for every outcome it can give, a simulation,
a fault-matrix row), and the registry refuses what would make it lie (a name declared
twice, an entry that is not a platform)."""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
import types
from pathlib import Path

import pytest
import yaml

import observatoire.adapters
from observatoire import platforms
from observatoire.adapters.assisted import AssistedAdapter
from observatoire.adapters.base import Adapter
from observatoire.config import load_config
from observatoire.platforms import (
    PLATFORMS,
    DuplicatePlatform,
    Platform,
    PlatformOptions,
    RegistryError,
    load_platforms,
)
from observatoire.simulator.server import PLATFORM_SIMULATIONS

from .conftest import DEMO_CONFIG

FIXTURES = Path(__file__).parent / "fixtures"
NAMES = sorted(PLATFORMS)


def test_every_adapter_module_with_a_platform_is_registered() -> None:
    # A module left out of BUILTIN would leave its targets unknown: walk the package.
    declared = {}
    for info in pkgutil.iter_modules(observatoire.adapters.__path__, "observatoire.adapters."):
        entry = getattr(importlib.import_module(info.name), "PLATFORM", None)
        if entry is not None:
            declared[entry.name] = entry
    assert declared, "no adapter module declares a PLATFORM"
    for name, entry in declared.items():
        assert PLATFORMS.get(name) is entry, f"{name} is not in platforms.BUILTIN"


@pytest.mark.parametrize("name", NAMES)
def test_every_platform_has_an_adapter_and_typed_options(name: str) -> None:
    entry = PLATFORMS[name]
    assert issubclass(entry.adapter, Adapter)
    assert entry.adapter.name == name == entry.name
    assert re.fullmatch(r"\d+\.\d+", entry.adapter.version), entry.adapter.version
    assert entry.transport in ("http", "browser")
    assert issubclass(entry.options, PlatformOptions)
    assert entry.label and entry.label != name  # the French label the site shows
    # The adapter can be made, and says it is this platform.
    assert entry.adapter().name == name


@pytest.mark.parametrize("name", NAMES)
def test_every_platform_has_fixtures_for_every_outcome_it_declares(name: str) -> None:
    path = FIXTURES / name / "expected.yaml"
    assert path.exists(), f"no {path.relative_to(FIXTURES.parent)}"
    expected = yaml.safe_load(path.read_text("utf-8"))
    covered = {want["outcome"] for page, want in expected.items() if page != "_options"}
    declared = {o.value for o in PLATFORMS[name].adapter.outcomes}
    assert "unrecognized" in covered
    assert declared <= covered, f"{name}: no fixture for {declared - covered}"
    for page in expected:
        if page != "_options":
            assert (FIXTURES / name / page).is_file(), f"{name}: {page} is listed but missing"


@pytest.mark.parametrize("name", NAMES)
def test_every_platform_has_a_simulation(name: str) -> None:
    module = PLATFORM_SIMULATIONS.get(name)
    assert module is not None, f"{name}: no simulation in simulator/server.py"
    assert module.__module__.startswith("observatoire.simulator.")


@pytest.mark.parametrize("name", NAMES)
def test_every_platform_has_a_fault_matrix_row(name: str) -> None:
    path = FIXTURES / name / "faults.yaml"
    assert path.exists(), f"no {path.relative_to(FIXTURES.parent)}: the fault matrix skips {name}"
    rows = yaml.safe_load(path.read_text("utf-8"))["targets"]
    assert rows
    demo = {t.id: t for t in load_config(DEMO_CONFIG, simulator_url="http://127.0.0.1:1").targets}
    for row in rows:
        assert "truth" in row
        if "id" in row:
            assert row["id"] in demo, f"{name}: {row['id']} is not in config/demo.yaml"
            assert demo[row["id"]].platform == name
        else:
            PLATFORMS[name].options.model_validate(row["target"]["options"])
    captcha = [row for row in rows if row["truth"] == "captcha"]
    # Only a captcha-first platform's row stops at the captcha (its assisted flow).
    assert bool(captcha) == issubclass(PLATFORMS[name].adapter, AssistedAdapter)


def test_no_fixture_folder_is_left_without_a_platform() -> None:
    folders = {p.name for p in FIXTURES.iterdir() if (p / "expected.yaml").exists()}
    assert folders == set(NAMES)


def test_a_volunteer_is_needed_exactly_for_assisted_adapters() -> None:
    # `captcha_first` is read by the sweep (never probed alone), the assist queue, the
    # statistics and the site: it must follow from the adapter's interface.
    assert {n for n in NAMES if PLATFORMS[n].captcha_first} == {"rdv_prefecture"}


def _fake_module(monkeypatch: pytest.MonkeyPatch, entry: object) -> None:
    module = types.ModuleType("observatoire_test_fake_platform")
    module.PLATFORM = entry
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(platforms, "BUILTIN", (*platforms.BUILTIN, module.__name__))


def test_a_name_declared_twice_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    existing = PLATFORMS["legacy_booking"]

    class Impostor(existing.adapter):
        pass

    impostor = Platform(
        Impostor, "Imposteur", existing.options, existing.url_pattern, existing.url_hint
    )
    _fake_module(monkeypatch, impostor)
    with pytest.raises(DuplicatePlatform, match="legacy_booking.*declared twice"):
        load_platforms()
    assert PLATFORMS["legacy_booking"] is existing


def test_an_entry_must_be_a_platform_with_a_versioned_adapter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fake_module(monkeypatch, PLATFORMS["legacy_booking"].adapter)  # a class, not an entry
    with pytest.raises(RegistryError, match="expected an observatoire.platforms.Platform"):
        load_platforms()

    class Unversioned(PLATFORMS["scripted"].adapter):
        name = "unversioned"
        version = ""

    entry = PLATFORMS["scripted"]
    _fake_module(
        monkeypatch,
        Platform(Unversioned, "Sans version", entry.options, entry.url_pattern, entry.url_hint),
    )
    with pytest.raises(RegistryError, match="needs a `name` and a `version`"):
        load_platforms()
