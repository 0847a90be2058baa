"""The manual's reference pages: generated from the code, complete, and never written by hand.

The whole site is built by the gate (``make docs-build``, ``mkdocs build --strict``); these tests
hold what the generator reads — every setting, rule and command has a description — and what it
writes, without building the site.
"""

from __future__ import annotations

import re
from typing import get_args

import pytest
import yaml
from pydantic import Field

from depot.cli import main
from depot.config.settings import DepotSettings, SettingsModel
from depot.policy.rules import RULES
from depot.tools.reference_docs import (
    GENERATED,
    PAGES,
    Setting,
    commands,
    commands_page,
    rules_page,
    settings,
    settings_page,
    shipped_stacks,
    show_value,
    topology,
    topology_page,
)
from depot.types import PolicyRuleId
from tests.conftest import PROJECT_DIR


def _undocumented(rows: list[Setting]) -> list[str]:
    return [row.field_of for row in rows if not row.description]


def test_every_setting_has_a_description() -> None:
    rows = list(settings())
    assert rows
    assert _undocumented(rows) == []


def test_a_setting_without_a_docstring_is_found() -> None:
    class Documented(SettingsModel):
        said: int = 1
        """What it is."""
        unsaid: int = 2

    class Holder(SettingsModel):
        inner: Documented = Documented()
        """The inner one."""

    assert _undocumented(list(settings(Holder))) == ["Documented.unsaid"]


def test_every_key_of_a_nested_model_is_listed_under_its_parent() -> None:
    names = {row.name for row in settings()}
    assert {
        "depot:backup.retention.daily",
        "depot:limits.<service>.memoryReservation",
        "depot:swarm.gpu.kind",
        "depot:registry.address",
    } <= names
    # The stack's name is no setting; a policy is written as text, not as its fields.
    assert not {"depot:stack", "depot:restart.name"} & names


def test_every_key_the_shipped_stacks_write_is_documented() -> None:
    documented = {row.name for row in settings()}
    for stack in shipped_stacks():
        config = yaml.safe_load((PROJECT_DIR / f"Pulumi.{stack}.yaml").read_text())["config"]
        written = {key for key in config if key.startswith("depot:")}
        assert written <= documented, stack


def test_the_settings_page_shows_defaults_and_each_stacks_values() -> None:
    page = settings_page()
    restart = page[page.index("## `depot:restart`") :].split("\n## ")[0]
    assert "| default | `unless-stopped` |" in restart
    assert "| dev | `unless-stopped` |" in restart
    assert "| prod | `always` |" in restart
    daily = page[page.index("## `depot:backup.retention.daily`") :].split("\n## ")[0]
    assert "| default | `7`; `0` in a parent written without it |" in daily


def test_a_secure_value_is_never_shown() -> None:
    canary = "v1:CANARY-7f3a"
    assert canary not in show_value({"secure": canary})


def test_every_rule_has_a_description_a_fix_and_a_source() -> None:
    missing = [r.id for r in RULES if not (r.description and r.fix and r.source)]
    assert missing == []


def test_the_rules_page_has_each_rule_with_its_level_in_each_stack() -> None:
    page = rules_page()
    for rule in RULES:
        assert f"## `{rule.id}`" in page
    assert {r.id for r in RULES} == set(get_args(PolicyRuleId))
    levels = page[page.index("## `limits`") :].split("\n## ")[0]
    assert "**Level:** dev advisory, prod mandatory, cluster mandatory." in levels


def test_every_command_has_a_description() -> None:
    found = commands()
    assert {" ".join(c.words) for c in found} >= {"plan", "diff", "graph", "secrets init"}
    assert [" ".join(c.words) for c in found if not c.help] == []


def test_the_commands_page_has_each_command_and_no_machine_path() -> None:
    page = commands_page()
    for command in commands():
        assert f"## `depot {' '.join(command.words)}`" in page
    assert str(PROJECT_DIR) not in page  # defaults shown project-relative


@pytest.mark.parametrize("stack", ["dev", "prod", "cluster"])
def test_the_topology_page_draws_what_depot_graph_prints(
    capsys: pytest.CaptureFixture[str], stack: str
) -> None:
    assert main(["graph", "--stack", stack]) == 0
    printed = capsys.readouterr().out
    assert printed == topology(stack)
    assert f"## {stack}\n\n```mermaid\n{printed}```" in topology_page()


def test_generated_pages_are_never_committed() -> None:
    for path, render in PAGES.items():
        assert not (PROJECT_DIR / "docs" / path).exists(), path
        assert render().startswith(GENERATED + "\n# ")


def test_the_manual_links_each_reference_page_from_its_nav() -> None:
    nav = (PROJECT_DIR / "mkdocs.yml").read_text()
    for path in PAGES:
        assert re.search(rf":\s+{re.escape(path)}\n", nav), path
    assert "docs/hooks/reference.py" in nav


def test_a_settings_description_is_the_docstring_under_its_field() -> None:
    class Parent(SettingsModel):
        kept: int = 1
        """Said  in the parent,
        over two lines."""
        redeclared: int = 2
        """The parent's."""
        given: int = Field(3, description="Given.")
        """Not this one: a description given wins, as in pydantic."""

    class Child(Parent):
        redeclared: int = 5
        """The child's."""

    assert {row.name: row.description for row in settings(Child)} == {
        "depot:kept": "Said in the parent, over two lines.",
        "depot:redeclared": "The child's.",
        "depot:given": "Given.",
    }
    restart = next(row for row in settings() if row.name == "depot:restart")
    assert restart.description.startswith("The restart policy of every container, written as")


def test_only_the_manual_reads_the_settings_docstrings() -> None:
    # pydantic's use_attribute_docstrings would read and parse depot/config/settings.py again for
    # each model on every start of every command; the generator reads them instead (above).
    assert "use_attribute_docstrings" not in DepotSettings.model_config


def test_the_readmes_links_into_the_repository_reach_files() -> None:
    # The README is not part of the site, so mkdocs' strict build does not check its links.
    readme = (PROJECT_DIR / "README.md").read_text()
    local = [
        target.split("#")[0]
        for target in re.findall(r"\]\(([^)]+)\)", readme)
        if not re.match(r"[a-z]+:", target) and not target.startswith("../")
    ]
    assert "docs/first-deploy.md" in local
    assert [t for t in local if not (PROJECT_DIR / t).exists()] == []
