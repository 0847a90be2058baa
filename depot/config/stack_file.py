"""Read ``Pulumi.<stack>.yaml`` the way the Pulumi CLI hands it to a program.

Used where the CLI is not: tests, and tools that run the program under mocks. Values are encoded
as the engine encodes them (structured values as JSON, scalars as strings). A ``secure:`` value
can only be decrypted by the CLI with the stack's secrets provider, so it stays a secret of
unknown value: ``UNDECRYPTED`` stands in for it, and its key is marked secret.

A stack file is input from whoever can open a pull request, so reading one is bounded: its
size, how far YAML aliases may expand it, and which YAML it may use. Anything else is a
``ConfigError`` naming the file, and the line and column where YAML knows them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from depot.config.loader import ConfigError, RawConfig, decode_value
from depot.config.settings import UNDECRYPTED
from depot.paths import PROJECT_ROOT

MAX_FILE_BYTES = 1024 * 1024
# Values a document may hold once aliases are expanded; the shipped stacks hold about 100.
# Ten levels of `&a [*b, *b, …]` in 2.5 KB expand to billions: refused before they expand.
MAX_EXPANDED_NODES = 10_000
# Levels of lists and maps, the document's own map the first: the shipped stacks use 5. Each
# level is a few frames of recursion in the YAML composer and in every reader after it, and
# 400 of them were a RecursionError.
MAX_DEPTH = 32
# Characters in a number: a 40-digit commit fits. Python refuses to turn more than 4,300 digits
# into an int, and no setting is a number that long.
MAX_NUMBER_LENGTH = 64
# Pulumi's own rule for a stack name, which is also part of the file name.
STACK_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML that no stack file may hold (nested too deep, a number too long)."""


class _StackFileLoader(yaml.SafeLoader):
    """YAML as Pulumi's Go reader sees a stack file (YAML 1.2 core schema, no duplicate keys).

    PyYAML reads ``no``/``on`` as booleans and ``2026-01-01`` as a date (YAML 1.1); Pulumi
    reads both as strings. Without this, ``depot:restart: no`` would arrive as ``false``.
    Lists and maps nest at most ``MAX_DEPTH`` levels, refused before the composer recurses
    deeper; numbers are at most ``MAX_NUMBER_LENGTH`` characters.
    """

    _depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                # The event this node starts with: where the nesting goes too deep.
                event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in the stubs
                raise _Refused(problem=_too_deep(), problem_mark=event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _too_deep() -> str:
    return f"nests lists and maps more than {MAX_DEPTH} levels deep; stack settings need a few"


def _bounded_number(construct: Callable[[Any, ScalarNode], Any]) -> Callable[[Any, Node], Any]:
    """``construct`` for a number of at most ``MAX_NUMBER_LENGTH`` characters."""

    def construct_bounded(loader: Any, node: Node) -> Any:
        if not isinstance(node, ScalarNode):
            raise _Refused(problem="a number is a list or map", problem_mark=node.start_mark)
        if len(node.value) > MAX_NUMBER_LENGTH:
            raise _Refused(
                problem=f"is a number of {len(node.value)} characters; no setting holds one "
                f"longer than {MAX_NUMBER_LENGTH} (quote it if it is text)",
                problem_mark=node.start_mark,
            )
        return construct(loader, node)

    return construct_bounded


_StackFileLoader.add_constructor(
    "tag:yaml.org,2002:int", _bounded_number(yaml.SafeLoader.construct_yaml_int)
)
_StackFileLoader.add_constructor(
    "tag:yaml.org,2002:float", _bounded_number(yaml.SafeLoader.construct_yaml_float)
)


_StackFileLoader.yaml_implicit_resolvers = {
    first: [
        (tag, rx)
        for tag, rx in resolvers
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StackFileLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def encode(value: Any) -> str:
    """One config value as the engine passes it to the program."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def read_stack_file(stack: str, project_dir: Path) -> RawConfig:
    """The ``config:`` of ``Pulumi.<stack>.yaml`` in ``project_dir``."""
    if not STACK_NAME.fullmatch(stack):
        shown = stack if len(stack) <= 40 and stack.isprintable() else repr(stack[:40]) + "…"
        raise ConfigError(
            f"--stack {shown}: is not a stack name; use 1-100 letters, digits, '-', '_' or '.'"
        )
    path = project_dir / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = sorted(
            p.name.removeprefix("Pulumi.").removesuffix(".yaml")
            for p in project_dir.glob("Pulumi.*.yaml")
        )
        raise ConfigError(f"{path.name}: no such stack file; known stacks: {', '.join(known)}")
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise ConfigError(f"{path.name}: cannot be read: {error.strerror}") from None
    return parse_stack_file(data, path.name)


def stack_config(
    stack: str, profiles: Sequence[str] = (), project_dir: Path = PROJECT_ROOT
) -> RawConfig:
    """The stack file's config, with ``profiles`` enabled on top of the stack's own."""
    config = read_stack_file(stack, project_dir)
    current = decode_value(config.values.get("depot:profiles", "[]"))
    if not profiles or not isinstance(current, list):
        return config  # nothing to add, or a value the validation will refuse as it is
    # Enable, as `docker compose --profile` does: the stack's profiles stay on. Not validated
    # here: the caller validates the result, once.
    wanted = [*current, *(p for p in dict.fromkeys(profiles) if p not in current)]
    return RawConfig(
        {**config.values, "depot:profiles": encode(wanted)}, config.secret_keys, config.positions
    )


def parse_stack_file(data: bytes, source: str) -> RawConfig:
    """The ``config:`` of a stack file's bytes; ``source`` names the file in errors."""
    parsed = _parse_stack_file(data, source)
    # Each caller gets maps of its own: the cached result is never handed out to be changed.
    return RawConfig(dict(parsed.values), parsed.secret_keys, dict(parsed.positions))


# Parsing is pure in (data, source) and slow (YAML with positions: ~25 ms for a shipped stack).
# A command reads a file once or twice, but the test suite reads the same few stack files
# hundreds of times in one process. Errors are not cached: a bad file is parsed again, and fails
# the same way.
@functools.lru_cache(maxsize=16)
def _parse_stack_file(data: bytes, source: str) -> RawConfig:
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{source}: is larger than 1 MiB; a stack file holds settings only")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ConfigError(
            f"{source}:{line}: is not UTF-8 text (byte 0x{data[error.start]:02x}); "
            "save the file as UTF-8"
        ) from None
    try:
        loader = _StackFileLoader(text)
    except yaml.YAMLError as error:  # a character YAML does not allow, before any parsing
        raise ConfigError(f"{source}: is not valid YAML: {_one_line(str(error))}") from None
    try:
        root = loader.get_single_node()
        if root is None:
            return RawConfig({})
        mapping = _checked_document(root, source)
        document = loader.construct_document(mapping)
    except _Refused as error:
        raise ConfigError(f"{_at_mark(source, error.problem_mark)}: {error.problem}") from None
    except yaml.MarkedYAMLError as error:
        raise ConfigError(_yaml_problem(source, error)) from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: is not YAML: {_one_line(str(error))}") from None
    finally:
        loader.dispose()
    return _config_of(document, mapping, source)


def _config_of(document: dict[str, Any], root: MappingNode, source: str) -> RawConfig:
    config_node = _value_node(root, "config")
    config = document.get("config")
    if config_node is None or config is None:
        return RawConfig({})
    if not isinstance(config, dict) or not isinstance(config_node, MappingNode):
        raise ConfigError(f"{_at(source, config_node)}: config: is not a map of key: value")
    values: dict[str, str] = {}
    secret_keys: set[str] = set()
    positions: dict[str, tuple[int, int]] = {}
    problems: list[str] = []
    nodes = {str(k.value): v for k, v in config_node.value}  # merged (`<<`) keys included
    for key, value in config.items():
        value_node = nodes.get(str(key))
        if not isinstance(key, str):
            problems.append(f"{_at(source, value_node)}: {key!r}: a key is not text")
            continue
        kind = _unsupported_type(value)
        if kind is not None:
            problems.append(
                f"{_at(source, value_node)}: {key}: holds a YAML {kind}; stack config holds "
                "text, numbers, true/false, lists and maps"
            )
            continue
        if value_node is not None:
            positions.update(_positions(key, value_node))
        if value is None:
            problems.append(
                f"{_at(source, value_node)}: {key}: has no value; give it one or remove the key"
            )
            continue
        if _holds_secure(value):
            # Pulumi decrypts `secure:` values, nested ones too; here none can be. The stand-in
            # carries a digest of the ciphertext (public in the file already), so an edited
            # secret still reads as a different value in a diff.
            values[key] = encode(_undecrypted(value))
            secret_keys.add(key)
        else:
            values[key] = encode(value)
    if problems:
        raise ConfigError("\n".join(problems))
    return RawConfig(values, frozenset(secret_keys), positions)


def _checked_document(root: Node, source: str) -> MappingNode:
    """Refuse, before anything is built from it, a document that is not a bounded map."""
    if not isinstance(root, MappingNode):
        raise ConfigError(f"{_at(source, root)}: is not a stack file: expected a map with config:")
    _count_expanded(root, source, {}, set(), depth=1)
    for node in _mappings(root, set()):
        _check_keys(node, source)
    return root


def _count_expanded(
    node: Node,
    source: str,
    sizes: dict[int, tuple[int, int]],
    open_nodes: set[int],
    *,
    depth: int,
) -> tuple[int, int]:
    """(values, levels) ``node`` stands for once its aliases are expanded (memoised by node).

    ``depth``: the level ``node`` is at. Aliases can stack values deeper than the text nests
    them, so levels are counted here too, before any reader recurses into them.
    """
    if id(node) in sizes:
        total, levels = sizes[id(node)]
        if depth + levels - 1 > MAX_DEPTH:
            raise ConfigError(f"{_at(source, node)}: {_too_deep()} (through YAML aliases)")
        return total, levels
    if id(node) in open_nodes:
        raise ConfigError(f"{_at(source, node)}: an alias refers to a value that contains it")
    if depth > MAX_DEPTH:
        raise ConfigError(f"{_at(source, node)}: {_too_deep()} (through YAML aliases)")
    open_nodes.add(id(node))
    children: list[Node] = []
    if isinstance(node, SequenceNode):
        children = list(node.value)
    elif isinstance(node, MappingNode):
        children = [part for pair in node.value for part in pair]
    total, levels = 1, 1
    for child in children:
        size, child_levels = _count_expanded(child, source, sizes, open_nodes, depth=depth + 1)
        total, levels = total + size, max(levels, child_levels + 1)
        if total > MAX_EXPANDED_NODES:
            raise ConfigError(
                f"{_at(source, node)}: expands to more than {MAX_EXPANDED_NODES} values through "
                "YAML aliases; write the settings out"
            )
    open_nodes.discard(id(node))
    sizes[id(node)] = (total, levels)
    return total, levels


def _mappings(node: Node, seen: set[int]) -> Iterator[MappingNode]:
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, MappingNode):
        yield node
        for key, value in node.value:
            yield from _mappings(key, seen)
            yield from _mappings(value, seen)
    elif isinstance(node, SequenceNode):
        for item in node.value:
            yield from _mappings(item, seen)


def _check_keys(node: MappingNode, source: str) -> None:
    """Keys are plain scalars, each once: Pulumi's reader refuses duplicates, and so do we."""
    first: dict[str, Node] = {}
    for key, _ in node.value:
        if not isinstance(key, ScalarNode):
            raise ConfigError(f"{_at(source, key)}: a key is a list or map; keys are plain text")
        if key.tag == "tag:yaml.org,2002:merge":
            continue
        if key.value in first:
            line = first[key.value].start_mark.line + 1
            raise ConfigError(
                f"{_at(source, key)}: {_one_line(key.value)}: is set twice (first on line {line}); "
                "keep one"
            )
        first[key.value] = key


def _value_node(mapping: MappingNode, key: str) -> Node | None:
    return next((v for k, v in mapping.value if getattr(k, "value", None) == key), None)


def _positions(path: str, node: Node) -> Iterator[tuple[str, tuple[int, int]]]:
    """(key path, (line, column)) for ``node`` and everything in it, as errors name them."""
    yield path, (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if isinstance(key, ScalarNode):
                yield from _positions(f"{path}.{key.value}", value)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            yield from _positions(f"{path}[{index}]", item)


def _unsupported_type(value: Any) -> str | None:
    """The kind of a value no Pulumi config can hold (``!!binary``, ``!!set``, …), if any."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return None  # a non-finite float is the settings' to refuse, with the key's own rule
    if isinstance(value, list):
        return next((k for k in map(_unsupported_type, value) if k), None)
    if isinstance(value, dict):
        if any(not isinstance(k, (str, int, float, bool)) and k is not None for k in value):
            return "map with a key that is not text"
        return next((k for k in map(_unsupported_type, value.values()) if k), None)
    return f"{type(value).__name__} value"


def _holds_secure(value: Any) -> bool:
    if isinstance(value, dict):
        return set(value) == {"secure"} or any(_holds_secure(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_secure(v) for v in value)
    return False


def _undecrypted(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"secure"}:
        return f"{UNDECRYPTED} {_digest(value['secure'])}"
    if isinstance(value, dict):
        return {k: _undecrypted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_undecrypted(v) for v in value]
    return value


def _digest(ciphertext: object) -> str:
    return hashlib.sha256(str(ciphertext).encode()).hexdigest()[:16]


def _at(source: str, node: Node | None) -> str:
    if node is None:
        return source
    return f"{source}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"


def _at_mark(source: str, mark: yaml.Mark | None) -> str:
    return f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source


def _yaml_problem(source: str, error: yaml.MarkedYAMLError) -> str:
    mark = error.problem_mark or error.context_mark
    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
    problem = error.problem or error.context or "is not valid YAML"
    if "found character '\\t'" in problem:
        problem += " (YAML indents with spaces, never tabs)"
    return f"{where}: is not valid YAML: {_one_line(problem)}"


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= 120 else flat[:119] + "…"
