"""The mutation run (scripts/mutation.py, `make mutation`): what it mutates, that its sample
repeats, and that it works on a copy it always removes."""

from __future__ import annotations

import ast
import copy
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import PROJECT_DIR


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutation", PROJECT_DIR / "scripts/mutation.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutation"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


mutation = _load()

DECORATED = """
def rule(f):
    return f

LIMITS = ("/etc", "/proc")
PATTERN = r"PASSWORD|TOKEN"
HOST = r"^ssh://(?P<user>[a-z_][a-z0-9_-]*)@h$"

@rule
def check(value: int) -> bool:
    if value >= 30 and value not in (1, 2):
        return True
    return False
"""


def keys(source: str) -> list[str]:
    return [m.key for m in mutation.mutants("m.py", source)]


def test_decorated_functions_are_mutated() -> None:
    # mutmut 3 skips them, and every policy rule and settings validator here is one.
    found = keys(DECORATED)
    assert "check: `value >= 30` → `value > 30`" in found
    assert "check: 30 → 31" in found
    assert "check: `value >= 30 and value not in (1, 2)`: and → or" in found
    assert "check: `return True` → `return False`" in found
    assert "check: `if value >= 30 and value not in (1, 2)` never taken" in found


def test_module_constants_and_patterns_are_mutated() -> None:
    found = keys(DECORATED)
    assert "<module>: '/etc' dropped from tuple" in found
    assert "<module>: regex alternative 'PASSWORD' dropped" in found
    assert "<module>: regex alternative 'TOKEN' dropped" in found
    assert "<module>: regex class [a-z_] also takes a leading '-'" in found


CLASS = "\nclass Limits:\n    def within(self, n: int) -> bool:\n        return n < 3\n"


def _whole_copies(source: str) -> list[str]:
    """Each mutant of ``source`` made the slow way: the whole module copied, its node replaced,
    the whole copy unparsed (the mutants that change nothing left out)."""
    tree = ast.parse(source)
    walk = mutation._Walk(source)
    walk.visit(tree, "<module>", quiet=False, regex=False)
    whole_copies = [
        ast.unparse(
            ast.fix_missing_locations(
                mutation._Apply(index, candidate.replace).visit(copy.deepcopy(tree))
            )
        )
        for index, _, _, candidate in walk.found
    ]
    return [text for text in whole_copies if text != ast.unparse(tree)]


@pytest.mark.parametrize(
    "source",
    [
        DECORATED + CLASS,
        '"""A module\'s docstring, written first."""\n' + DECORATED + CLASS,
        "LIMIT = (3, 4)\n" + DECORATED,  # the first statement mutated too
    ],
    ids=["functions", "docstring", "constant-first"],
)
def test_each_mutant_is_the_whole_module_with_its_one_node_replaced(source: str) -> None:
    # mutants() copies only the top-level statement that holds the node, and unparses only
    # that statement: its text must be that of a copy of the whole module with that node
    # replaced, whether the module starts with a docstring, a definition or a mutated statement.
    expected = _whole_copies(source)
    assert len(expected) > 20
    assert [m.source for m in mutation.mutants("m.py", source)] == expected


def test_where_the_parts_do_not_make_the_module_each_mutant_is_unparsed_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mutation, "_statement_text", lambda *args: "")
    source = DECORATED + CLASS
    assert not mutation._Texts(ast.parse(source), ast.unparse(ast.parse(source))).exact
    assert [m.source for m in mutation.mutants("m.py", source)] == _whole_copies(source)


def test_alternatives_are_found_inside_groups_and_outside_classes() -> None:
    pattern = r"(?i)(proxycommand|match)[|]x|y"
    spans = mutation._alternatives(pattern)
    assert sorted(pattern[a:b].strip("|") for a, b in spans) == [
        "(?i)(proxycommand|match)[|]x",
        "match",
        "proxycommand",
        "y",
    ]
    assert mutation._alternatives("[a|b]") == []


RULES = "depot/policy/rules.py"


@pytest.fixture(scope="module")
def rules_mutants() -> list[Any]:
    """Every mutant of the rules, made once (seconds of work) for the tests that only read them."""
    return list(mutation.mutants(RULES, (PROJECT_DIR / RULES).read_text()))


# One group: the mutants are made once, on one worker, for both tests that read them.
@pytest.mark.xdist_group("rules_mutants")
def test_every_mutant_of_the_rules_is_a_valid_module_unlike_the_original(
    rules_mutants: list[Any],
) -> None:
    found = rules_mutants
    original = ast.unparse(ast.parse((PROJECT_DIR / RULES).read_text()))
    assert len(found) > 300
    assert len({m.key for m in found}) == len(found)
    for mutant in found:
        compile(mutant.source, "rules.py", "exec")
        assert mutant.source != original


@pytest.mark.xdist_group("rules_mutants")
def test_the_sample_repeats_and_keeps_source_order(rules_mutants: list[Any]) -> None:
    found = rules_mutants
    first = mutation.sample(found, 50, 19)
    assert [m.key for m in first] == [m.key for m in mutation.sample(found, 50, 19)]
    assert len(first) == 50
    assert [m.key for m in mutation.sample(found, 50, 20)] != [m.key for m in first]
    lines = [m.line for m in first]
    assert lines == sorted(lines)
    assert mutation.sample(found, None, 19) == found


@pytest.mark.xdist_group("rules_mutants")
def test_a_group_reaches_the_scheduler_as_one(request: pytest.FixtureRequest) -> None:
    """Under `--dist loadgroup` the controller groups by the "@<group>" suffix of the node ids
    (tests/conftest.py): without it a group is spread over the workers and nothing else fails."""
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not on an xdist worker of `--dist loadgroup`")
    assert request.node.nodeid.endswith("@rules_mutants")


def test_the_copy_is_removed_however_the_run_ends() -> None:
    seen: list[Path] = []

    def interrupted() -> None:
        with mutation._Copy() as copy:
            seen.append(copy.root)
            assert (copy.tree / "depot/policy/rules.py").is_file()
            assert not (copy.tree / ".venv").exists()
            assert not list(copy.tree.rglob("__pycache__"))
            raise KeyboardInterrupt  # Ctrl-C

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    [root] = seen
    assert not root.exists()


def test_equivalents_are_listed_with_a_reason() -> None:
    listed = mutation.load_equivalents()
    assert listed
    assert all(why.strip() for why in listed.values())
    assert {module for module, _ in listed} <= set(mutation.MODULE_TESTS)


@pytest.mark.parametrize("module", sorted(mutation.MODULE_TESTS))
def test_every_test_file_that_imports_a_module_runs_against_its_mutants(module: str) -> None:
    dotted = module.removesuffix(".py").replace("/", ".")
    importing = re.compile(
        rf"^(from {re.escape(dotted)} import|import {re.escape(dotted)}\b)", re.M
    )
    importers = {
        f"tests/{path.name}"
        for path in (PROJECT_DIR / "tests").glob("test_*.py")
        if importing.search(path.read_text())
    }
    mapped = set(mutation.MODULE_TESTS[module])
    assert importers <= mapped
    assert all((PROJECT_DIR / test).is_file() for test in mapped)
