"""The simulator and the adapters are written independently from the reference
(platforms.md): if both read one constant, a wrong message would pass every test and
fail on the real site. This test reads the source of both packages and fails when

- a module of one package imports the other package (or production code imports the
  simulator);
- a message-like string literal (20 characters or more, three words or more) appears in
  both packages (compared after folding spaces, apostrophes and case, so a copy cannot
  hide behind typography), unless it is one of the platforms' own texts quoted in
  platforms.md, which both sides must transcribe — each listed below, with its section.
"""

from __future__ import annotations

import ast
import re
import unicodedata
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "observatoire"
ADAPTERS = PACKAGE / "adapters"
SIMULATOR = PACKAGE / "simulator"
#: Modules outside the simulator allowed to import it: the demo and the simulated release
#: month (the release test and benchmark) start it; the robot never does.
MAY_IMPORT_SIMULATOR = {"demo.py", "release_month.py"}
MIN_LENGTH = 20
REFERENCE = PACKAGE.parents[1] / "shared" / "reference" / "platforms.md"
#: The platforms' own words (platforms.md), which the simulator must show and the
#: adapters must recognise: the only long literals both packages may contain.
PLATFORM_TEXTS = {
    # §1 legacy module: the result page's message and the second no-slot message.
    "Il n'existe plus de plage horaire libre pour votre demande de rendez-vous. "
    "Veuillez recommencer ultérieurement.",
    "Il n'y a pas calendrier disponible pour effectuer une demande de rendez-vous",
    # §2 RDV-Préfecture: the slot page's title and the landing page's button.
    "Choisissez votre créneau",
    "Prendre un rendez-vous",
    # §3 eAppointment: the rejected postal code alert.
    "Veuillez saisir un code postal valide.",
    # §4 démarche numérique: the absent démarche's flash.
    "La démarche n’existe pas",
}


def _modules(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFC", text).replace("\u2019", "'").replace("&#039;", "'")
    return re.sub(r"\s+", " ", text).strip().lower()


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes (a docstring explains; it is not a shared constant)."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _literals(folder: Path) -> dict[str, str]:
    """Folded long literals of a package -> where one of them is."""
    found: dict[str, str] = {}
    for path in _modules(folder):
        tree = ast.parse(path.read_text("utf-8"), filename=str(path))
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in skip
                and len(node.value.strip()) >= MIN_LENGTH
                and len(node.value.split()) >= 3
            ):
                found.setdefault(_fold(node.value), f"{path.name}:{node.lineno}")
    return found


def test_adapters_never_import_the_simulator() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in _modules(ADAPTERS)
        for name in _imports(path)
        if name.startswith("observatoire.simulator")
    ]
    assert offenders == []


def test_the_simulator_never_imports_an_adapter() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in _modules(SIMULATOR)
        for name in _imports(path)
        if name.startswith("observatoire.adapters")
    ]
    assert offenders == []


def test_production_code_never_imports_the_simulator() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in _modules(PACKAGE)
        if SIMULATOR not in path.parents and path.name not in MAY_IMPORT_SIMULATOR
        for name in _imports(path)
        if name.startswith("observatoire.simulator")
        and not (path.name == "cli.py" and name in _LAZY_CLI_IMPORTS)
    ]
    assert offenders == []


#: The CLI's `simulate` and `demo` commands start the simulator (lazily, inside the
#: command): they are test and demo tools, not the robot.
_LAZY_CLI_IMPORTS = {
    "observatoire.simulator",
    "observatoire.simulator.start_simulator",
    "observatoire.simulator.scenario",
    "observatoire.simulator.scenario.load_scenario",
}


def _shared() -> dict[str, str]:
    adapters = _literals(ADAPTERS)
    simulator = _literals(SIMULATOR)
    return {k: f"{adapters[k]} / {simulator[k]}" for k in adapters.keys() & simulator}


def test_no_long_literal_in_both_packages() -> None:
    allowed = {_fold(t) for t in PLATFORM_TEXTS}
    shared = sorted(
        f"{where}: {text!r}" for text, where in _shared().items() if text not in allowed
    )
    assert shared == []


def test_the_platform_texts_list_stays_minimal() -> None:
    """Every allowed text is really shared (an entry no longer needed must go) and, when
    the reference is at hand, is quoted in it."""
    shared = _shared()
    unused = sorted(t for t in PLATFORM_TEXTS if _fold(t) not in shared)
    assert unused == []
    if REFERENCE.exists():
        reference = _fold(REFERENCE.read_text("utf-8").replace("**", ""))
        missing = sorted(t for t in PLATFORM_TEXTS if _fold(t).rstrip(".") not in reference)
        assert missing == []


def test_the_check_sees_a_shared_literal(tmp_path: Path) -> None:
    """The literal comparison must catch a copy, whatever its spacing or apostrophe."""
    a = tmp_path / "a"
    b = tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "m.py").write_text('X = "Il n\'existe plus de plage  horaire libre"\n', "utf-8")
    (b / "m.py").write_text('Y = ("Il n\u2019existe plus de plage "\n "horaire libre")\n', "utf-8")
    assert _literals(a).keys() & _literals(b).keys()
