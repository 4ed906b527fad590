"""Contract tests: every registered adapter classifies its saved pages as declared in
`tests/fixtures/<adapter>/expected.yaml` (test_registry.py requires that file to cover
every outcome the adapter declares, and unrecognized)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from observatoire.adapters import registry
from observatoire.cli import app
from observatoire.platforms import ScriptedOptions

FIXTURES = Path(__file__).parent / "fixtures"


def load_expected(name: str) -> dict[str, dict[str, object]]:
    path = FIXTURES / name / "expected.yaml"
    if not path.exists():
        return {}
    return yaml.safe_load(path.read_text("utf-8"))


def contract_cases() -> list[tuple[str, str, dict[str, object]]]:
    cases = []
    for name in sorted(registry()):
        expected = load_expected(name)
        cases += [(name, page, want) for page, want in expected.items() if page != "_options"]
    return cases


@pytest.mark.parametrize(
    ("name", "page", "want"), contract_cases(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_contract(name: str, page: str, want: dict[str, object]) -> None:
    adapter = registry()[name]()
    data = (FIXTURES / name / page).read_bytes()
    options = load_expected(name).get("_options")
    if options is not None:
        result = adapter.classify_with(ScriptedOptions.model_validate(options), data)
    else:
        result = adapter.classify(data, str(want["url"]) if "url" in want else None)
    assert result.outcome.value == want["outcome"], result
    if "detail" in want:
        assert result.detail == want["detail"]
    if "slots_count" in want:
        assert result.slots_count == want["slots_count"]
    if "first_slot_at" in want:
        assert result.first_slot_at == datetime.fromisoformat(str(want["first_slot_at"]))


def test_classify_command_prints_json() -> None:
    page = FIXTURES / "legacy_booking" / "no_slot.html"
    result = CliRunner().invoke(app, ["classify", "--adapter", "legacy_booking", str(page)])
    assert result.exit_code == 0, result.output
    assert '"outcome": "no_slot"' in result.stdout


def test_classify_unknown_adapter_exits_2() -> None:
    page = FIXTURES / "legacy_booking" / "no_slot.html"
    result = CliRunner().invoke(app, ["classify", "--adapter", "nope", str(page)])
    assert result.exit_code == 2
