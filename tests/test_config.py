"""The targets file: the shipped files are valid, and every kind of mistake is reported
with file, line and field, exit code 2 and no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from observatoire.cli import app
from observatoire.config import ConfigError, load_config, reference_departments

from .conftest import DEMO_CONFIG, REPO
from .factories import VALID_TARGETS


def mutate(old: str, new: str) -> str:
    assert old in VALID_TARGETS, old
    return VALID_TARGETS.replace(old, new, 1)


# (name, file text, expected line, expected field fragment, expected message fragment)
CASES = [
    (
        "bad_yaml_indent",
        mutate("    prefecture: Nanterre\n", "   prefecture: Nanterre\n"),
        10,
        "",
        "invalid YAML",
    ),
    (
        "bad_yaml_unclosed",
        mutate("options: {planning: 15538}", "options: {planning: 15538"),
        18,
        "",
        "invalid YAML",
    ),
    (
        "tab_indent",
        mutate("    name: Hauts-de-Seine\n", "\tname: Hauts-de-Seine\n"),
        9,
        "",
        "invalid YAML",
    ),
    ("not_a_mapping", "- just\n- a list\n", 1, "", "expected a mapping"),
    ("empty_file", "", 1, "", "expected a mapping"),
    (
        "unknown_platform",
        mutate(
            "platform: legacy_booking\n        url: https://www.hauts-de-seine"
            ".gouv.fr/booking/create/12249",
            "platform: doctolib\n        url: https://www.hauts-de-seine"
            ".gouv.fr/booking/create/12249",
        ),
        15,
        "departments[0].targets[0].platform",
        "unknown platform 'doctolib'",
    ),
    (
        "duplicate_id",
        mutate("id: 92-naturalisation-2", "id: 92-renouvellement-1"),
        18,
        "departments[0].targets[1].id",
        "duplicate target id",
    ),
    (
        "bad_department_code",
        mutate('code: "2A"', 'code: "20"'),
        23,
        "departments[1].code",
        "unknown department code",
    ),
    (
        "department_name_mismatch",
        mutate("name: Corse-du-Sud", "name: Corse"),
        24,
        "departments[1].name",
        "is named 'Corse-du-Sud'",
    ),
    (
        "duplicate_department",
        mutate('code: "2A"\n    name: Corse-du-Sud', 'code: "92"\n    name: Hauts-de-Seine'),
        23,
        "departments[1].code",
        "listed twice",
    ),
    (
        "bad_url_scheme",
        mutate(
            "url: https://www.hauts-de-seine.gouv.fr/booking/create/13525",
            "url: ftp://www.hauts-de-seine.gouv.fr/booking/create/13525",
        ),
        22,
        "departments[0].targets[1].url",
        "not an http(s) URL",
    ),
    (
        "url_wrong_platform_shape",
        mutate(
            "url: https://www.hauts-de-seine.gouv.fr/booking/create/13525",
            "url: https://www.hauts-de-seine.gouv.fr/rendez-vous",
        ),
        22,
        "departments[0].targets[1].url",
        "not a legacy_booking URL",
    ),
    (
        "negative_interval",
        mutate("interval_minutes: 60", "interval_minutes: -5"),
        3,
        "defaults.interval_minutes",
        "greater than 0",
    ),
    (
        "target_negative_interval",
        mutate("label: Naturalisation\n", "label: Naturalisation\n        interval_minutes: 0\n"),
        21,
        "departments[0].targets[1].interval_minutes",
        "greater than 0",
    ),
    (
        "missing_url",
        mutate("        url: https://www.hauts-de-seine.gouv.fr/booking/create/13525\n", ""),
        18,
        "departments[0].targets[1].url",
        "required field is missing",
    ),
    ("missing_version", mutate("version: 1\n", ""), 1, "version", "required field is missing"),
    ("wrong_version", mutate("version: 1", "version: 2"), 1, "version", "Input should be 1"),
    (
        "unknown_field",
        mutate("label: Naturalisation\n", "label: Naturalisation\n        urll: x\n"),
        21,
        "departments[0].targets[1].urll",
        "unknown field",
    ),
    (
        "unknown_procedure",
        mutate("procedure: naturalisation", "procedure: asile"),
        19,
        "departments[0].targets[1].procedure",
        "unknown procedure 'asile'",
    ),
    (
        "id_without_department_prefix",
        mutate("id: 92-naturalisation-2", "id: 93-naturalisation-2"),
        18,
        "departments[0].targets[1].id",
        "must start with the department code",
    ),
    (
        "id_not_slug",
        mutate("id: 92-naturalisation-2", "id: 92 Naturalisation"),
        18,
        "departments[0].targets[1].id",
        "should match pattern",
    ),
    (
        "enabled_not_bool",
        mutate("label: Naturalisation\n", "label: Naturalisation\n        enabled: peut-être\n"),
        21,
        "departments[0].targets[1].enabled",
        "valid boolean",
    ),
    (
        "bad_option",
        mutate("options: {planning: 15538}", "options: {planning: -1}"),
        17,
        "departments[0].targets[0].options.planning",
        "greater than 0",
    ),
    (
        "unknown_option",
        mutate("options: {planning: 15538}", "options: {guichet: 4}"),
        17,
        "departments[0].targets[0].options.guichet",
        "unknown field",
    ),
    (
        "duplicate_yaml_key",
        mutate("label: Naturalisation\n", "label: Naturalisation\n        label: Autre\n"),
        21,
        "departments[0].targets[1].label",
        "duplicate key",
    ),
    (
        "targets_not_a_list",
        mutate("targets: []", "targets: aucun"),
        26,
        "departments[1].targets",
        "valid list",
    ),
    (
        "simulator_placeholder",
        mutate(
            "url: https://www.hauts-de-seine.gouv.fr/booking/create/13525",
            'url: "{simulator}/www.hauts-de-seine.gouv.fr/booking/create/13525"',
        ),
        22,
        "departments[0].targets[1].url",
        "{simulator}",
    ),
]


def test_the_cases_are_many_and_distinct() -> None:
    assert len(CASES) >= 20
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(
    ("name", "text", "line", "field", "message"), CASES, ids=[c[0] for c in CASES]
)
def test_malformed_file_is_reported_with_line_and_field(
    tmp_path: Path, name: str, text: str, line: int, field: str, message: str
) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    issues = caught.value.issues
    matching = [i for i in issues if message in i.message]
    assert matching, f"no issue mentions {message!r}: {[str(i) for i in issues]}"
    issue = matching[0]
    assert issue.file == str(path)
    assert issue.line == line, str(issue)
    if field:
        assert issue.field == field, str(issue)

    if name == "simulator_placeholder":
        return  # `targets check` sends no request: it accepts a {simulator} file offline
    result = CliRunner().invoke(app, ["targets", "check", "--config", str(path)])
    assert result.exit_code == 2
    assert f"{path}:{line}:" in result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_the_valid_example_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(VALID_TARGETS, encoding="utf-8")
    cfg = load_config(path)
    assert [t.id for t in cfg.targets] == ["92-renouvellement-1", "92-naturalisation-2"]
    assert cfg.targets[0].options["planning"] == 15538
    assert cfg.targets[1].interval_minutes == 60


def test_all_problems_are_listed_at_once(tmp_path: Path) -> None:
    text = mutate("procedure: naturalisation", "procedure: asile").replace(
        'code: "2A"', 'code: "2C"'
    )
    path = tmp_path / "two.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert len(caught.value.issues) == 2


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["targets", "check", "--config", str(tmp_path / "no.yaml")])
    assert result.exit_code == 2
    assert "file not found" in result.stderr


def test_no_traceback_from_the_real_command(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(mutate("version: 1", "version: [1"), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "observatoire.cli", "targets", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 2
    assert f"{path}:2:" in proc.stderr  # the parser notices on line 2
    assert "Traceback" not in proc.stderr


def test_shipped_config_lists_all_101_departments_and_known_targets() -> None:
    cfg = load_config(REPO / "config" / "prefectures.yaml")
    assert {d.code for d in cfg.departments} == set(reference_departments())
    assert len(reference_departments()) == 101
    platforms = {t.platform for t in cfg.targets}
    assert {"legacy_booking", "rdv_prefecture", "eappointment"} <= platforms
    # Historical booking/create links are shipped disabled.
    assert not any(t.enabled for t in cfg.targets if t.platform == "legacy_booking")
    assert any(d.targets == [] for d in cfg.departments)


def test_demo_config_needs_the_simulator_url() -> None:
    with pytest.raises(ConfigError):
        load_config(DEMO_CONFIG)
    cfg = load_config(DEMO_CONFIG, simulator_url="http://127.0.0.1:9999")
    assert len(cfg.enabled_targets) >= 12
    assert all(t.url.startswith("http://127.0.0.1:9999/") for t in cfg.targets)
