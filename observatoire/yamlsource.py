"""Load YAML while remembering the line of every value, so config errors can name it.

PyYAML's composed node tree carries marks; we build plain Python data from it and a
side table from each path (tuple of keys/indexes) to its 1-based line. Duplicate keys,
which PyYAML silently accepts, are reported as errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class YamlProblem:
    line: int
    path: Path_
    message: str


class YamlLoadError(Exception):
    def __init__(self, problems: list[YamlProblem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


@dataclass
class LocatedYaml:
    data: Any
    lines: dict[Path_, int]

    def line_of(self, path: Path_) -> int:
        """Line of `path`, or of its nearest located ancestor (for missing fields)."""
        for cut in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:cut]))
            if line is not None:
                return line
        return 1


def load_located(text: str) -> LocatedYaml:
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        message = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise YamlLoadError([YamlProblem(line, (), f"invalid YAML: {message}")]) from None
    except yaml.YAMLError as exc:
        raise YamlLoadError([YamlProblem(1, (), f"invalid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    if root is None:
        return LocatedYaml(None, {(): 1})
    lines: dict[Path_, int] = {}
    problems: list[YamlProblem] = []
    data = _build(loader, root, (), lines, problems)
    if problems:
        raise YamlLoadError(problems)
    return LocatedYaml(data, lines)


def _build(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    path: Path_,
    lines: dict[Path_, int],
    problems: list[YamlProblem],
) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int):
                problems.append(
                    YamlProblem(key_node.start_mark.line + 1, path, f"unsupported key {key!r}")
                )
                continue
            child = (*path, key)
            if key in result:
                problems.append(
                    YamlProblem(
                        key_node.start_mark.line + 1,
                        child,
                        f"duplicate key {key!r} (first on line {lines[child]})",
                    )
                )
                continue
            lines[child] = key_node.start_mark.line + 1
            result[key] = _build(loader, value_node, child, lines, problems)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _build(loader, item, (*path, index), lines, problems)
            for index, item in enumerate(node.value)
        ]
    return loader.construct_object(node, deep=True)
