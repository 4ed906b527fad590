"""Load YAML while remembering the line of every value, so config errors can name it.

PyYAML's composed node tree carries marks; we build plain Python data from it and a
side table from each path (tuple of keys/indexes) to its 1-based line. Duplicate keys,
which PyYAML silently accepts, are reported as errors.

A targets file is operator input, and may come from a careless copy or a hostile
contributor: before anything is expanded we bound the nesting depth (PyYAML composes
recursively, so `[[[…]]]` 20 000 deep would end in a RecursionError), the number of
aliases and the size of the tree once every alias is expanded (a 289-byte "billion
laughs" would otherwise take minutes and gigabytes), and we report control characters
(a NUL byte, say) with their line instead of PyYAML's stream offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

Path_ = tuple[str | int, ...]

#: Far beyond any real targets file (whose depth is about 6 and which uses no alias).
MAX_DEPTH = 64
MAX_ALIASES = 500
#: Nodes once every alias is expanded: prefectures.yaml has about 3 000.
MAX_NODES = 200_000


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


class _BoundedLoader(yaml.SafeLoader):
    """A SafeLoader whose composer refuses too deep a tree or too many aliases as it
    reads them, before any alias is expanded and before Python's stack runs out."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    # PyYAML passes `index` as None (the root, a mapping's key), an int (a sequence's
    # item) or the key's node (a mapping's value): types-PyYAML declares int, hence the
    # ignore on the call below.
    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                # A SafeLoader's pure-Python parser makes yaml.error.Mark marks (the C
                # parser's yaml._yaml.Mark never reach it).
                mark = event.start_mark
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"more than {MAX_ALIASES} aliases (*name)",
                    mark if isinstance(mark, yaml.error.Mark) else None,
                )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_DEPTH} levels deep", event.start_mark
                )
            return super().compose_node(parent, index)  # type: ignore[arg-type]
        finally:
            self._depth -= 1


def _control_characters(text: str) -> list[YamlProblem]:
    """Characters YAML forbids (NUL and the other C0/C1 controls, except tab and line
    breaks), each with its line and column: PyYAML only gives a stream offset."""
    problems = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        for col, char in enumerate(line, start=1):
            code = ord(char)
            if (code < 0x20 and char not in "\t\r") or 0x7F <= code <= 0x9F and code != 0x85:
                problems.append(
                    YamlProblem(
                        lineno,
                        (),
                        f"control character U+{code:04X} at column {col} is not allowed",
                    )
                )
                break
            if 0xD800 <= code <= 0xDFFF or code in (0xFFFE, 0xFFFF):
                message = f"character U+{code:04X} at column {col} is not allowed"
                problems.append(YamlProblem(lineno, (), message))
                break
        if len(problems) >= 20:
            break
    return problems


def _expanded_shape(root: yaml.Node) -> tuple[int, int]:
    """Nodes and depth of the tree once every alias is expanded, computed on the
    composed graph (an alias shares its node, so this is linear in the file, not in the
    expansion). Raises on an alias that refers to its own ancestor (an infinite tree)."""
    shapes: dict[int, tuple[int, int]] = {}
    open_nodes: set[int] = set()

    def shape(node: yaml.Node) -> tuple[int, int]:
        key = id(node)
        if key in shapes:
            return shapes[key]
        if key in open_nodes:
            raise yaml.composer.ComposerError(
                None, None, "an alias refers to its own ancestor (infinite tree)", node.start_mark
            )
        open_nodes.add(key)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        total, depth = 1, 1
        for child in children:
            count, below = shape(child)
            total, depth = total + count, max(depth, below + 1)
            if total > MAX_NODES or depth > MAX_DEPTH:
                break  # already too big: stop before the stack or the count grows further
        open_nodes.discard(key)
        shapes[key] = (total, depth)
        return total, depth

    return shape(root)


def load_located(text: str) -> LocatedYaml:
    control = _control_characters(text)
    if control:
        raise YamlLoadError(control)
    loader = _BoundedLoader(text)
    try:
        root = loader.get_single_node()
        if root is not None:
            nodes, depth = _expanded_shape(root)
            if nodes > MAX_NODES or depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"more than {MAX_NODES} values or {MAX_DEPTH} levels once aliases are "
                    "expanded (an alias bomb?)",
                    root.start_mark,
                )
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
