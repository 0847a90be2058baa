"""Mutation run: do the tests notice a deliberate bug? Run with ``make mutation``; prints a report.

Each module below is mutated one small bug at a time (a comparison flipped or off by one,
``and``/``or`` swapped, an operand of ``and``/``or`` dropped, ``not`` removed, a number ±1, a
string dropped from a tuple or set, an alternative dropped from a regular expression, a name's
first character allowed to be ``-``, a branch never or always taken, a ``raise``, call or
``yield`` removed, ``return True``/``False`` swapped). The module's own unit tests run against
each mutant, stopping at the first failure: a failure *kills* the mutant, a pass lets it
*survive*, and every survivor is a bug the tests would let through.

Written here rather than taken from mutmut: mutmut 3 skips every decorated function (its
trampolines cannot wrap them), and every policy rule (``@workload_rule``) and settings
validator (``@model_validator``) here is decorated. It also leaves module-level constants
alone, where the sensitive paths, patterns and bounds live.

The run mutates a copy of the project in a temporary directory, never the working tree, with
bytecode caches off, and removes the copy however the run ends (Ctrl-C included). Sampling is
seeded: the same tree gives the same mutants, so two runs compare. A survivor that is no bug
(an *equivalent* mutant) is listed with the reason in ``scripts/mutation_equivalents.toml``;
the report names every survivor not listed there, and every listing that no longer survives.
"""

from __future__ import annotations

import argparse
import ast
import bisect
import copy
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import FrameType

PROJECT = Path(__file__).resolve().parent.parent
EQUIVALENTS = PROJECT / "scripts" / "mutation_equivalents.toml"

# Every test file that reads a diff or renders one: the review modules' mutants run against
# them all.
_REVIEW_TESTS = (
    "tests/test_review_markdown.py",
    "tests/test_review_risks.py",
    "tests/test_review.py",
    "tests/test_diff_review.py",
    "tests/test_swarm_review.py",
    "tests/test_registry_images.py",
    "tests/test_rotation.py",
    "tests/test_backup_service.py",
    "tests/test_backup_policy.py",
)
# Module → the unit tests that specify it, most specific first (a run stops at the first
# failure, so the likeliest killers go first). Every test file that imports from a module is
# listed for it (tests/test_mutation_run.py holds the map to that): a file left out would let
# its tests' mutants survive.
MODULE_TESTS: dict[str, tuple[str, ...]] = {
    "depot/policy/rules.py": (
        "tests/test_host_paths.py",
        "tests/test_backup_targets.py",
        "tests/test_policy_edges.py",
        "tests/test_policy.py",
        "tests/test_swarm_policy.py",
        "tests/test_backup_policy.py",
        "tests/test_docs_reference.py",
    ),
    "depot/types.py": (
        "tests/test_backup_targets.py",
        "tests/test_ssh_options.py",
        "tests/test_host_paths.py",
        "tests/test_types.py",
        "tests/test_settings_edges.py",
        "tests/test_config.py",
        "tests/test_hostile_config.py",
        "tests/test_backup_config.py",
        "tests/test_swarm.py",
        "tests/test_policy_edges.py",
        "tests/test_policy.py",
        "tests/test_backup_policy.py",
        "tests/test_catalog.py",
        "tests/test_graph.py",
        "tests/test_docs_reference.py",
    ),
    "depot/config/settings.py": (
        "tests/test_backup_targets.py",
        "tests/test_host_paths.py",
        "tests/test_ssh_options.py",
        "tests/test_settings_edges.py",
        "tests/test_config.py",
        "tests/test_hostile_config.py",
        "tests/test_backup_config.py",
        "tests/test_swarm.py",
        "tests/test_stacks.py",
        "tests/test_backup_service.py",
        "tests/test_services.py",
        "tests/test_catalog.py",
        "tests/test_policy_edges.py",
        "tests/test_policy.py",
        "tests/test_swarm_policy.py",
        "tests/test_backup_policy.py",
        "tests/test_workload.py",
        "tests/test_docs_reference.py",
        "tests/test_migrate.py",
    ),
    # Where a service is resolved (which run, their images, binds, node labels, the backup
    # service's environment): moved here from the settings, whose validators ask it too.
    "depot/model.py": (
        "tests/test_services.py",
        "tests/test_compose.py",
        "tests/test_catalog.py",
        "tests/test_settings_edges.py",
        "tests/test_swarm.py",
        "tests/test_secrets.py",
        "tests/test_backup_service.py",
        "tests/test_backup_config.py",
        "tests/test_config.py",
        "tests/test_stacks.py",  # which services are scraped (the labels)
        "tests/test_doctor.py",  # which built services have a crate
    ),
    "depot/review/diff.py": _REVIEW_TESTS,
    "depot/review/plan.py": (
        *_REVIEW_TESTS,
        "tests/test_host_paths.py",
        "tests/test_policy_edges.py",
        "tests/test_policy.py",
        "tests/test_swarm_policy.py",
        "tests/test_catalog.py",
        "tests/test_drift.py",
        "tests/test_drift_swarm.py",
        "tests/test_graph.py",
        "tests/test_workload.py",
    ),
    "depot/review/render.py": _REVIEW_TESTS,
}
DEFAULT_CAP = 100  # mutants per module in a sampled run: the six take ~20 min on two cores
DEFAULT_SEED = 19
# What a copy of the project leaves out: the venv (the run uses this one), git, caches.
_NOT_COPIED = shutil.ignore_patterns(
    ".venv", ".git", "__pycache__", "*.pyc", "*_cache", ".hypothesis", ".pulumi-state", "build"
)


# --- mutants ----------------------------------------------------------------------------------

Replacement = Callable[[ast.AST], ast.AST]


@dataclass(frozen=True)
class Candidate:
    """One mutation a node allows: what it does, and how to build the mutated node."""

    description: str
    replace: Replacement


@dataclass(frozen=True)
class Mutant:
    """One deliberate bug in ``module``: at ``line`` in ``scope``, ``description``."""

    module: str
    key: str  # scope and description: stable across edits elsewhere in the module
    line: int
    source: str  # the whole mutated module


def _text(node: ast.AST, limit: int = 60) -> str:
    text = ast.unparse(node)
    return text if len(text) <= limit else text[: limit - 1] + "…"


_COMPARISON_SWAPS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_ARITHMETIC_SWAPS: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
}
_SYMBOLS: dict[type[ast.operator], str] = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


def _compare_candidates(node: ast.Compare) -> Iterator[Candidate]:
    for index, operator in enumerate(node.ops):
        swapped = _COMPARISON_SWAPS.get(type(operator))
        if swapped is None:
            continue

        def replace(
            target: ast.AST, index: int = index, swapped: type[ast.cmpop] = swapped
        ) -> ast.AST:
            assert isinstance(target, ast.Compare)
            target.ops[index] = swapped()
            return target

        mutated = copy.deepcopy(node)
        yield Candidate(f"`{_text(node)}` → `{_text(replace(mutated))}`", replace)


def _bool_candidates(node: ast.BoolOp) -> Iterator[Candidate]:
    other: ast.boolop = ast.Or() if isinstance(node.op, ast.And) else ast.And()

    def swap(target: ast.AST) -> ast.AST:
        assert isinstance(target, ast.BoolOp)
        target.op = other
        return target

    names = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
    yield Candidate(f"`{_text(node)}`: {names[0]} → {names[1]}", swap)
    for index, operand in enumerate(node.values):

        def drop(target: ast.AST, index: int = index) -> ast.AST:
            assert isinstance(target, ast.BoolOp)
            kept = [v for i, v in enumerate(target.values) if i != index]
            return kept[0] if len(kept) == 1 else ast.BoolOp(op=target.op, values=kept)

        yield Candidate(f"`{_text(node)}`: operand `{_text(operand, 40)}` dropped", drop)


def _number_candidates(node: ast.Constant) -> Iterator[Candidate]:
    value = node.value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    for step in (1, -1):

        def shift(target: ast.AST, shifted: float = value + step) -> ast.AST:
            return ast.Constant(value=shifted)

        yield Candidate(f"{value!r} → {value + step!r}", shift)


def _string_collection_candidates(node: ast.Tuple | ast.Set | ast.List) -> Iterator[Candidate]:
    # Only collections of strings alone (a set of names, paths, options): a pair such as
    # ("KEY", value) would only fail to unpack.
    strings = [e.value for e in node.elts if isinstance(e, ast.Constant)]
    if (
        len(strings) < 2
        or len(strings) != len(node.elts)
        or not all(isinstance(s, str) for s in strings)
    ):
        return
    for index, dropped in enumerate(strings):

        def drop(target: ast.AST, index: int = index) -> ast.AST:
            assert isinstance(target, (ast.Tuple, ast.Set, ast.List))
            del target.elts[index]
            return target

        yield Candidate(f"{dropped!r} dropped from {type(node).__name__.lower()}", drop)


def _alternatives(pattern: str) -> list[tuple[int, int]]:
    """Spans of each ``|`` alternative in ``pattern``, in groups of two or more."""
    spans: list[tuple[int, int]] = []
    starts, bars = [0], [list[int]()]  # per open group: where it starts, where its bars are
    position, in_class = 0, False
    while position < len(pattern):
        char = pattern[position]
        if char == "\\":
            position += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            body = position + 1
            if pattern.startswith("?", body):  # (?:…), (?P<name>…), (?i)
                close = pattern.find(">", body) if pattern.startswith("?P<", body) else body + 1
                body = close + 1
            starts.append(body)
            bars.append([])
        elif char == ")" and len(starts) > 1:
            spans.extend(_between(starts.pop(), bars.pop(), position))
        elif char == "|":
            bars[-1].append(position)
        position += 1
    spans.extend(_between(starts[0], bars[0], len(pattern)))
    return spans


def _between(start: int, bars: list[int], end: int) -> list[tuple[int, int]]:
    if not bars:
        return []
    edges = [start, *bars, end]
    # Each alternative with the bar before it (or, for the first, after it).
    return [
        (edges[0], edges[1] + 1) if i == 0 else (edges[i], edges[i + 1])
        for i in range(len(edges) - 1)
    ]


# A class that opens a name (after the start, a group, `//` or `@`): where a leading `-` would
# turn the name into an option of the program it reaches (ssh, rclone, the docker CLI).
_LEADING_CLASS = re.compile(r"(?:^\^?|\(\?P<\w+>|//|@)(\[(?!\^)(?:\\.|[^\]\\])+\])")


def _regex_candidates(pattern: str, whole: bool) -> Iterator[tuple[str, str]]:
    """(description, mutated pattern): alternatives dropped, a leading class taking ``-``."""
    if whole:
        for start, end in _alternatives(pattern):
            mutated = pattern[:start] + pattern[end:]
            if _compiles(mutated) and mutated != pattern:
                yield f"regex alternative {pattern[start:end].strip('|')!r} dropped", mutated
    for match in _LEADING_CLASS.finditer(pattern):
        klass = match.group(1)
        if not _compiles(klass) or re.fullmatch(klass, "-"):
            continue
        mutated = pattern[: match.end(1) - 1] + "-" + pattern[match.end(1) - 1 :]
        if not whole or _compiles(mutated):
            yield f"regex class {klass} also takes a leading '-'", mutated


def _compiles(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


def _string_regex_candidates(node: ast.Constant, whole: bool) -> Iterator[Candidate]:
    if not isinstance(node.value, str):
        return
    for description, mutated in _regex_candidates(node.value, whole):

        def replace(target: ast.AST, mutated: str = mutated) -> ast.AST:
            return ast.Constant(value=mutated)

        yield Candidate(description, replace)


def _statement_candidates(node: ast.stmt) -> Iterator[Candidate]:
    def to_pass(target: ast.AST) -> ast.AST:
        return ast.copy_location(ast.Pass(), target)

    if isinstance(node, ast.If):
        for taken in (True, False):

            def branch(target: ast.AST, taken: bool = taken) -> ast.AST:
                assert isinstance(target, ast.If)
                target.test = ast.Constant(value=taken)
                return target

            when = "always" if taken else "never"
            yield Candidate(f"`if {_text(node.test)}` {when} taken", branch)
    elif isinstance(node, ast.Raise):
        yield Candidate(f"`raise {_text(node.exc or ast.Constant(None), 40)}` removed", to_pass)
    elif isinstance(node, (ast.Continue, ast.Break)):
        yield Candidate(f"`{_text(node)}` removed", to_pass)
    elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        yield Candidate(f"call `{_text(node.value, 50)}` removed", to_pass)
    elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Yield):

        def no_yield(target: ast.AST) -> ast.AST:
            # `yield from ()`: still a generator, one that yields nothing here.
            return ast.copy_location(ast.Expr(ast.YieldFrom(ast.Tuple([], ast.Load()))), target)

        yield Candidate(f"`{_text(node.value, 50)}` removed", no_yield)
    elif (
        isinstance(node, ast.Return)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, bool)
    ):
        flipped = not node.value.value

        def other(target: ast.AST, flipped: bool = flipped) -> ast.AST:
            return ast.copy_location(ast.Return(ast.Constant(flipped)), target)

        yield Candidate(f"`return {node.value.value}` → `return {flipped}`", other)


def _expression_candidates(node: ast.AST) -> Iterator[Candidate]:
    if isinstance(node, ast.Compare):
        yield from _compare_candidates(node)
    elif isinstance(node, ast.BoolOp):
        yield from _bool_candidates(node)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):

        def operand(target: ast.AST) -> ast.AST:
            assert isinstance(target, ast.UnaryOp)
            return target.operand

        yield Candidate(f"`{_text(node)}`: `not` removed", operand)
    elif isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC_SWAPS:
        swapped = _ARITHMETIC_SWAPS[type(node.op)]

        def arithmetic(target: ast.AST) -> ast.AST:
            assert isinstance(target, ast.BinOp)
            target.op = swapped()
            return target

        change = f"{_SYMBOLS[type(node.op)]} → {_SYMBOLS[swapped]}"
        yield Candidate(f"`{_text(node)}`: {change}", arithmetic)
    elif isinstance(node, ast.Constant):
        yield from _number_candidates(node)
    elif isinstance(node, (ast.Tuple, ast.Set, ast.List)):
        yield from _string_collection_candidates(node)


@dataclass
class _Walk:
    """Numbers every node in one fixed order, so a node is found again in a fresh copy."""

    source: str
    found: list[tuple[int, str, int, Candidate]] = field(default_factory=list)
    count: int = 0
    # The source's lines as UTF-8 (the unit of a node's column), split where
    # ast.get_source_segment splits them: it splits the whole source again on every call.
    lines: list[bytes] = field(init=False)

    def __post_init__(self) -> None:
        self.lines = re.findall(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$", self.source.encode())

    def visit(self, node: ast.AST, scope: str, quiet: bool, regex: bool) -> None:
        index = self.count
        self.count += 1
        if not quiet:
            line = getattr(node, "lineno", 0)
            for candidate in self._candidates(node, regex):
                self.found.append((index, scope, line, candidate))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            scope = node.name if scope == "<module>" else f"{scope}.{node.name}"
        for name, value in ast.iter_fields(node):
            children = value if isinstance(value, list) else [value]
            for child in children:
                if isinstance(child, ast.AST):
                    self.visit(child, scope, quiet or self._quiet(node, name), self._raw(child))

    def _candidates(self, node: ast.AST, regex: bool) -> Iterator[Candidate]:
        if isinstance(node, ast.stmt):
            yield from _statement_candidates(node)
        else:
            yield from _expression_candidates(node)
        if regex and isinstance(node, ast.Constant):
            yield from _string_regex_candidates(node, whole=True)
        elif isinstance(node, ast.JoinedStr) and self._raw(node):
            # The text between an r-f-string's fields: a class may open a name there too.
            for part in node.values:
                if isinstance(part, ast.Constant):
                    yield from self._part_candidates(node, part)

    def _part_candidates(self, node: ast.JoinedStr, part: ast.Constant) -> Iterator[Candidate]:
        at = node.values.index(part)
        for candidate in _string_regex_candidates(part, whole=False):

            def replace(
                target: ast.AST, at: int = at, make: Replacement = candidate.replace
            ) -> ast.AST:
                assert isinstance(target, ast.JoinedStr)
                made = make(target.values[at])
                assert isinstance(made, ast.expr)
                target.values[at] = made
                return target

            yield Candidate(candidate.description, replace)

    @staticmethod
    def _quiet(parent: ast.AST, name: str) -> bool:
        """True for parts that are not behaviour: annotations, docstrings, f-string text,
        ``__all__``, ``Literal[...]`` (mypy holds those to their uses)."""
        if name in ("annotation", "returns", "type_comment"):
            return True
        if isinstance(parent, ast.Assign) and any(  # `__all__` only shapes `import *`
            isinstance(t, ast.Name) and t.id == "__all__" for t in parent.targets
        ):
            return True
        if isinstance(parent, ast.JoinedStr):
            return True
        if isinstance(parent, ast.Expr) and isinstance(parent.value, ast.Constant):
            return True
        return (
            isinstance(parent, ast.Subscript)
            and isinstance(parent.value, ast.Name)
            and parent.value.id == "Literal"
        )

    def _raw(self, node: ast.AST) -> bool:
        """True for a raw string literal (``r"…"``): the project's regular expressions."""
        if not isinstance(node, (ast.Constant, ast.JoinedStr)):
            return False
        if node.end_lineno is None or node.end_col_offset is None:
            return False  # no source position: as ast.get_source_segment, no text
        # The literal's prefix letters are where it starts, on its first line.
        prefix = re.match(rb"[A-Za-z]*", self.lines[node.lineno - 1][node.col_offset :])
        return prefix is not None and b"r" in prefix.group().lower()


class _Apply(ast.NodeTransformer):
    """Replaces the node numbered ``target`` (in ``_Walk``'s order) with ``replace(node)``."""

    def __init__(self, target: int, replace: Replacement) -> None:
        self.target, self.replace, self.count = target, replace, -1

    def visit(self, node: ast.AST) -> ast.AST:
        self.count += 1
        if self.count == self.target:
            return self.replace(node)
        return self.generic_visit(node)


def _statement_starts(tree: ast.Module) -> list[int]:
    """The number (in ``_Walk``'s order; the module is 0) of each top-level statement."""
    starts, number = [], 1
    for statement in tree.body:
        starts.append(number)
        number += sum(1 for _ in ast.walk(statement))  # every node, as often as _Walk meets it
    return starts


def _statement_text(statement: ast.stmt, first: bool, type_ignores: list[ast.TypeIgnore]) -> str:
    """``statement``'s part of its module's text as ``ast.unparse`` writes the whole module.

    A top-level statement's text depends on nothing around it but whether it comes first (the
    blank lines before a ``def`` or ``class``, a docstring): after the first, it is what
    follows a ``pass`` put in front of it."""
    if first:
        return ast.unparse(ast.Module(body=[statement], type_ignores=type_ignores))
    body: list[ast.stmt] = [ast.Pass(), statement]
    return ast.unparse(ast.Module(body=body, type_ignores=type_ignores)).removeprefix("pass")


class _Texts:
    """The module's text, one part per top-level statement: a mutant's text is the parts with
    its one mutated statement unparsed again (unparsing the whole module for each mutant took
    most of the run). Where the parts do not add up to ``ast.unparse`` of the whole module,
    every mutant is unparsed whole, as before."""

    def __init__(self, tree: ast.Module, unmutated: str) -> None:
        self.tree = tree
        self.parts = [
            _statement_text(statement, index == 0, tree.type_ignores)
            for index, statement in enumerate(tree.body)
        ]
        self.exact = "".join(self.parts) == unmutated

    def with_statement(self, at: int, statement: ast.stmt) -> str:
        tree = self.tree
        if not self.exact:
            body = [*tree.body[:at], statement, *tree.body[at + 1 :]]
            return ast.unparse(ast.Module(body=body, type_ignores=tree.type_ignores))
        text = _statement_text(statement, at == 0, tree.type_ignores)
        return "".join([*self.parts[:at], text, *self.parts[at + 1 :]])


def _with_mutation(texts: _Texts, starts: list[int], index: int, replace: Replacement) -> str:
    """The module's text with node ``index`` replaced. Only the top-level statement holding it
    is copied and mutated (copying the whole tree for each mutant took most of the run); the
    other statements are the unchanged originals (see ``_Texts``)."""
    at = bisect.bisect_right(starts, index) - 1
    statement = _Apply(index - starts[at], replace).visit(copy.deepcopy(texts.tree.body[at]))
    assert isinstance(statement, ast.stmt)  # a statement's mutant is a statement
    return texts.with_statement(at, ast.fix_missing_locations(statement))


def mutants(module: str, source: str) -> list[Mutant]:
    """Every mutant of ``module`` (whose text is ``source``), in source order."""
    tree = ast.parse(source)
    walk = _Walk(source)
    walk.visit(tree, "<module>", quiet=False, regex=False)
    found, seen, unmutated = [], Counter[str](), ast.unparse(tree)
    starts = _statement_starts(tree)
    texts = _Texts(tree, unmutated)
    for index, scope, line, candidate in walk.found:
        if index == 0:  # the module itself: no candidate mutates it, but copy it all if one did
            mutated = _Apply(index, candidate.replace).visit(copy.deepcopy(tree))
            text = ast.unparse(ast.fix_missing_locations(mutated))
        else:
            text = _with_mutation(texts, starts, index, candidate.replace)
        if text == unmutated:
            continue  # the mutation changed nothing
        key = f"{scope}: {candidate.description}"
        seen[key] += 1
        if seen[key] > 1:
            key = f"{key} (#{seen[key]})"
        found.append(Mutant(module, key, line, text))
    return found


def sample(found: list[Mutant], cap: int | None, seed: int) -> list[Mutant]:
    """At most ``cap`` of ``found``, the same ones for the same tree and seed, in source order."""
    if cap is None or len(found) <= cap:
        return found
    # Not for secrets: a seeded, repeatable choice is the point.
    chosen = set(random.Random(f"{seed}:{found[0].module}").sample(range(len(found)), cap))  # noqa: S311
    return [m for i, m in enumerate(found) if i in chosen]


# --- running ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    mutant: Mutant
    killed: bool
    how: str  # the failing test, "timeout", or "survived"


_STOP = threading.Event()  # set when the run is interrupted: every job stops


class _Copy:
    """A copy of the project to mutate, removed on exit whatever ends the run."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="depot-mutation-"))
        self.tree = self.root / "project"
        shutil.copytree(PROJECT, self.tree, ignore=_NOT_COPIED, symlinks=True)
        # A repository of its own (some review tests diff against HEAD), unrelated to ours.
        git = ["git", "-c", "user.name=mutation", "-c", "user.email=mutation@localhost"]
        for step in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "unmutated"]):
            subprocess.run([*git, *step], cwd=self.tree, check=True, capture_output=True)  # noqa: S603

    def __enter__(self) -> _Copy:
        return self

    def __exit__(self, *_: object) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _environment(tree: Path) -> dict[str, str]:
    environment = dict(os.environ)
    environment.update(
        PYTHONPATH=str(tree),  # the copy's depot before the venv's editable one
        PYTHONDONTWRITEBYTECODE="1",  # no cache to outlive a mutant
        PYTHONHASHSEED="0",
    )
    return environment


def _pytest(tree: Path, tests: Sequence[str], timeout: float) -> tuple[int | None, str]:
    command = [
        str(PROJECT / ".venv" / "bin" / "python"), "-m", "pytest", "-x", "-q", "-p",
        "no:cacheprovider", "-p", "no:randomly", "-m", "not engine", "--no-header", "-rf",
        *tests,
    ]  # fmt: skip
    try:
        done = subprocess.run(  # noqa: S603 - our own venv's pytest on our own tests
            command,
            cwd=tree,
            env=_environment(tree),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, "timeout"
    return done.returncode, done.stdout


def _first_failure(output: str) -> str:
    found = re.search(r"^(?:FAILED|ERROR) (\S+)", output, re.MULTILINE)
    return found.group(1) if found else "error"


def _check_baseline(copy_: _Copy, module: str, tests: Sequence[str]) -> float:
    """Seconds the tests take on the unmutated module, written as mutants are (unparsed)."""
    target = copy_.tree / module
    original = target.read_text()
    probe = subprocess.run(  # noqa: S603 - our own venv's python
        [str(PROJECT / ".venv" / "bin" / "python"), "-c", "import depot; print(depot.__file__)"],
        cwd=copy_.tree,
        env=_environment(copy_.tree),
        capture_output=True,
        text=True,
        check=True,
    )
    if not probe.stdout.strip().startswith(str(copy_.tree)):
        raise SystemExit(f"the copy's depot is not the one imported ({probe.stdout.strip()})")
    try:
        target.write_text(ast.unparse(ast.parse(original)))
        started = time.monotonic()
        code, output = _pytest(copy_.tree, tests, timeout=1800)
    finally:
        target.write_text(original)
    if code != 0:
        raise SystemExit(f"{module}: the tests fail without a mutant:\n{output[-3000:]}")
    return time.monotonic() - started


def run_module(
    copy_: _Copy, chosen: list[Mutant], *, module: str, report: Callable[[Outcome], None]
) -> list[Outcome]:
    tests = [t for t in MODULE_TESTS[module] if (copy_.tree / t).exists()]
    baseline = _check_baseline(copy_, module, tests)
    timeout = max(60.0, 3 * baseline)
    target = copy_.tree / module
    original = target.read_text()
    outcomes = []
    try:
        for mutant in chosen:
            if _STOP.is_set():
                break
            target.write_text(mutant.source)
            code, output = _pytest(copy_.tree, tests, timeout)
            if code is None:
                outcome = Outcome(mutant, killed=True, how="timeout")
            elif code == 0:
                outcome = Outcome(mutant, killed=False, how="survived")
            else:
                outcome = Outcome(mutant, killed=True, how=_first_failure(output))
            outcomes.append(outcome)
            report(outcome)
    finally:
        target.write_text(original)
    return outcomes


# --- equivalents and the report -----------------------------------------------------------


def load_equivalents(path: Path = EQUIVALENTS) -> dict[tuple[str, str], str]:
    """(module, mutant key) → why the mutant is no bug."""
    if not path.exists():
        return {}
    listed = tomllib.loads(path.read_text()).get("equivalent", [])
    return {(entry["module"], entry["mutant"]): entry["why"] for entry in listed}


@dataclass(frozen=True)
class ModuleResult:
    module: str
    generated: int
    outcomes: list[Outcome]
    equivalents: dict[tuple[str, str], str]

    @property
    def survivors(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.killed and not self._listed(o)]

    @property
    def equivalent(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.killed and self._listed(o)]

    @property
    def killed_but_listed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.killed and self._listed(o)]

    @property
    def killed(self) -> int:
        return sum(o.killed for o in self.outcomes)

    @property
    def kill_rate(self) -> float:
        counted = len(self.outcomes) - len(self.equivalent)
        return 100.0 * self.killed / counted if counted else 100.0

    def stale(self, full: bool) -> list[str]:
        """Listed equivalents no longer generated (known only when every mutant ran)."""
        if not full:
            return []
        keys = {o.mutant.key for o in self.outcomes}
        return [k for m, k in self.equivalents if m == self.module and k not in keys]

    def _listed(self, outcome: Outcome) -> bool:
        return (self.module, outcome.mutant.key) in self.equivalents


def print_report(results: list[ModuleResult], full: bool) -> None:
    print("\nmodule                      mutants  ran  killed  equivalent  survived  kill rate")
    for r in results:
        print(
            f"{r.module:<27} {r.generated:>7} {len(r.outcomes):>4} {r.killed:>7} "
            f"{len(r.equivalent):>11} {len(r.survivors):>9} {r.kill_rate:>9.1f}%"
        )
    for r in results:
        for o in r.survivors:
            print(f"SURVIVED  {r.module}:{o.mutant.line}  {o.mutant.key}")
        for o in r.killed_but_listed:
            print(f"LISTED BUT KILLED  {r.module}:{o.mutant.line}  {o.mutant.key}")
        for key in r.stale(full):
            print(f"LISTED BUT NOT GENERATED  {r.module}  {key}")
    print(
        "\nkill rate = killed / (ran - equivalent). Kill a survivor with a test, or list it in "
        "scripts/mutation_equivalents.toml with why it is no bug."
    )


def _interrupt_as_exit(signum: int, frame: FrameType | None) -> None:
    del frame
    raise SystemExit(128 + signum)  # unwinds through every `finally`: the copy is removed


def _progress(outcome: Outcome) -> None:
    if outcome.killed:
        print(".", end="", flush=True)
    else:  # at once: a long run that is stopped still tells what it found
        print(f"\n  survived {outcome.mutant.line}: {outcome.mutant.key}", flush=True)


def run_all(
    plans: list[tuple[str, int, list[Mutant]]],
    jobs: int,
    equivalents: dict[tuple[str, str], str],
) -> list[ModuleResult]:
    """Each module's mutants, shared between ``jobs`` copies of the project."""
    results = []
    with ExitStack() as cleanup:
        copies = [cleanup.enter_context(_Copy()) for _ in range(jobs)]
        for module, generated, chosen in plans:
            print(f"{module}: {len(chosen)} of {generated} mutants", flush=True)
            shares = [chosen[i :: len(copies)] for i in range(len(copies))]
            with ThreadPoolExecutor(len(copies)) as pool:
                try:
                    parts = list(
                        pool.map(
                            partial(run_module, module=module, report=_progress), copies, shares
                        )
                    )
                except BaseException:
                    _STOP.set()  # the other jobs stop after their current mutant
                    raise
            print(flush=True)
            order = {m.key: i for i, m in enumerate(chosen)}
            outcomes = sorted((o for p in parts for o in p), key=lambda o: order[o.mutant.key])
            results.append(ModuleResult(module, generated, outcomes, equivalents))
    return results


def write_json(results: list[ModuleResult], path: Path) -> None:
    document = {
        r.module: {
            "generated": r.generated,
            "kill_rate": round(r.kill_rate, 1),
            "outcomes": [
                {"line": o.mutant.line, "mutant": o.mutant.key, "killed": o.killed, "how": o.how}
                for o in r.outcomes
            ],
        }
        for r in results
    }
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")


def survivors_of(path: Path) -> set[tuple[str, str]]:
    """(module, mutant key) of every survivor in an earlier run's ``--json`` report."""
    document = json.loads(path.read_text())
    return {
        (module, outcome["mutant"])
        for module, result in document.items()
        for outcome in result["outcomes"]
        if not outcome["killed"]
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("modules", nargs="*", default=list(MODULE_TESTS), metavar="MODULE")
    parser.add_argument("--all", action="store_true", help="every mutant, no sampling")
    parser.add_argument("--cap", type=int, default=DEFAULT_CAP, help="mutants per module")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once (one core each)")
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    parser.add_argument("--json", type=Path, help="also write the outcomes to this file")
    parser.add_argument(
        "--survivors-of", type=Path, metavar="JSON", help="run only an earlier run's survivors"
    )
    parser.add_argument("--fail-under", type=float, default=None, metavar="PERCENT")
    args = parser.parse_args(argv)
    unknown = [m for m in args.modules if m not in MODULE_TESTS]
    if unknown:
        parser.error(f"no tests mapped for {', '.join(unknown)}; known: {', '.join(MODULE_TESTS)}")
    signal.signal(signal.SIGTERM, _interrupt_as_exit)
    only = survivors_of(args.survivors_of) if args.survivors_of else None
    plans = []
    for module in args.modules:
        found = mutants(module, (PROJECT / module).read_text())
        chosen = sample(found, None if args.all or only else args.cap, args.seed)
        if only is not None:
            chosen = [m for m in chosen if (module, m.key) in only]
        plans.append((module, len(found), chosen))
    if args.list:
        for module, _, chosen in plans:
            for m in chosen:
                print(f"{module}:{m.line}  {m.key}")
        return 0
    results = run_all(plans, max(1, args.jobs), load_equivalents())
    print_report(results, full=args.all)
    if args.json:
        write_json(results, args.json)
    if args.fail_under is not None and any(r.kill_rate < args.fail_under for r in results):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
