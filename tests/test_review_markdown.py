"""The PR comment is Markdown that no value can reshape: names, paths, values, reasons and refs
with ``|``, backticks, HTML, newlines, emphasis, links or mentions read as text, in their cell."""

from __future__ import annotations

import json
import re

import pytest

from depot.resource_types import BUILD, CONTAINER, VOLUME
from depot.review.diff import DataRisk, PlanDiff, diff_plans
from depot.review.planned import Plan, PlannedResource
from depot.review.render import diff_markdown, md, plan_markdown
from tests.conftest import PLAIN_OPTIONS, as_read

# A `distPath` (or any value) that tries every way out of its cell.
HOSTILE = (
    "/srv | forged | column `code` </code><details><summary>forged</summary> "
    "**bold** _em_ ~~gone~~ [link](https://example.com) ![img](x) @octo-org/team $x$ "
    "&lt; \\| end\n| forged | row |\r\n"
)


def _resource(type_: str, name: str, inputs: dict[str, object]) -> PlannedResource:
    return PlannedResource(type_, name, None, inputs, PLAIN_OPTIONS)


def _hostile_diff() -> tuple[PlanDiff, Plan]:
    """A diff whose every shown string carries HOSTILE: names, a path, values, a reason, refs."""
    name = f"console{HOSTILE}"
    base = Plan(
        "prod",
        (
            _resource(CONTAINER, name, {"mounts": [{"source": "./console/dist"}]}),
            _resource(VOLUME, f"old{HOSTILE}", {}),
        ),
    )
    head = Plan(
        "prod",
        (
            _resource(CONTAINER, name, {"mounts": [{"source": HOSTILE}], f"key{HOSTILE}": 1}),
            _resource(VOLUME, f"new{HOSTILE}", {}),
        ),
    )
    diff = diff_plans(base, head, base_label=f"prod@{HOSTILE}", head_label="prod")
    risk = DataRisk(f"{VOLUME}::old{HOSTILE}", f"because {HOSTILE}")
    return PlanDiff(**{**diff.__dict__, "backup_risks": (risk,)}), head


def _tables(markdown: str) -> list[list[str]]:
    """Runs of consecutive lines that start with ``|``."""
    tables: list[list[str]] = []
    previous = False
    for line in markdown.split("\n"):
        row = line.startswith("|")
        if row and not previous:
            tables.append([])
        if row:
            tables[-1].append(line)
        previous = row
    return tables


def _assert_inert(markdown: str) -> None:
    """No value added a column, a row, a tag, code, emphasis, a link or a mention."""
    for table in _tables(markdown):
        columns = {line.count("|") for line in table}
        assert len(columns) == 1, table
    assert "forged" not in "".join(re.findall(r"<[^>]*>", markdown))  # no tag of a value's
    assert markdown.count("<details>") == markdown.count("</details>")
    for raw in ("**bold**", "_em_", "~~gone~~", "[link]", "![img]", "@octo", "$x$", "\r"):
        assert raw not in markdown
    assert "`" not in markdown.replace("```mermaid", "").replace("```\n", "")
    assert all(not line.startswith("| forged") for line in markdown.split("\n"))


def test_hostile_values_stay_text_in_their_cell_in_a_diff() -> None:
    diff, head = _hostile_diff()
    markdown = diff_markdown(diff, head)
    _assert_inert(markdown)
    assert markdown.count("<details>") == 2  # the changed container's and the graph's
    read = as_read(markdown)
    # Each value reads as it is: the path as its JSON, the names and the reason whole.
    assert json.dumps([{"source": HOSTILE}]) in read
    assert f"because {HOSTILE}" in read
    assert f"new{HOSTILE}" in read
    assert f"`prod@{HOSTILE}`" in read


def test_hostile_values_stay_text_in_a_plan() -> None:
    plan = Plan(
        f"prod{HOSTILE}",
        (
            PlannedResource(
                CONTAINER, HOSTILE, HOSTILE, {}, {**PLAIN_OPTIONS, "dependsOn": [HOSTILE]}
            ),
        ),
    )
    markdown = plan_markdown(plan)
    _assert_inert(markdown)
    [row] = [line for line in markdown.splitlines() if line.startswith(f"| <code>{CONTAINER}")]
    assert row.count("|") == 5
    assert as_read(row).startswith(f"| `{CONTAINER}` | `{HOSTILE}` | {HOSTILE} |")


def test_hostile_build_names_stay_text_in_the_routine_line() -> None:
    name = f"discovery{HOSTILE}-image-build"
    base = Plan("prod", (_resource(BUILD, name, {"tags": ["r/discovery:" + "a" * 40]}),))
    head = Plan("prod", (_resource(BUILD, name, {"tags": ["r/discovery:" + "b" * 40]}),))
    diff = diff_plans(base, head, base_label=f"a{HOSTILE}", head_label="b")
    assert diff.only_routine
    markdown = diff_markdown(diff)
    _assert_inert(markdown)
    assert len(markdown.splitlines()) == 3  # heading, blank, the routine line
    assert f"only the images' commit tags moved: discovery{HOSTILE}" in as_read(markdown)


def test_hostile_names_stay_inside_their_graph_label() -> None:
    head = Plan("prod", (_resource(VOLUME, HOSTILE, {}),))
    markdown = diff_markdown(
        diff_plans(Plan("prod", ()), head, base_label="a", head_label="b"), head
    )
    lines = markdown.splitlines()
    opening = lines.index("```mermaid")
    closing = lines.index("```", opening + 1)
    assert lines[closing + 1 :] == ["", "</details>"]
    [node] = lines[opening + 2 : closing]
    assert re.fullmatch(r'  n0\[\("volume: [A-Za-z0-9 .:/#;-]*"\)\]', node), node
    assert "#124;" in node  # `|`, as Mermaid reads a character code


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("a|b", "a&#124;b"),
        ("`x`", "&#96;x&#96;"),
        ("<b>&", "&#60;b&#62;&#38;"),
        ("line\nbreak", "line&#10;break"),
        ("*_~[]!@$\\", "&#42;&#95;&#126;&#91;&#93;&#33;&#64;&#36;&#92;"),
        ("postgres:17.2-alpine (x) #3", "postgres:17.2-alpine (x) #3"),
    ],
)
def test_each_character_with_a_meaning_is_a_character_reference(value: str, escaped: str) -> None:
    assert md(value) == escaped
    assert md(md(value)) == escaped, "Markdown is never escaped twice"


@pytest.mark.parametrize("separator", ["\n", "\r", "\u2028", "\u2029", "\x85", "\x1b"])
def test_a_line_or_paragraph_separator_in_a_value_is_a_character_reference(separator: str) -> None:
    # A raw one would end a table row where a renderer reads it as a line break.
    assert md(f"a{separator}b") == f"a&#{ord(separator)};b"
