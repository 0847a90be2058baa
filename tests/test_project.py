"""Project files: what `pulumi` reads at the root, and what the package does on import."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from pulumi.runtime import resource as sdk_resource
from pulumi.runtime.proto import source_pb2

import depot
from depot.program import deploy
from depot.recording import Recording, record
from depot.tools.check_project_schema import problems
from tests.conftest import PROJECT_DIR, stack_config


def _project() -> dict[str, object]:
    document: dict[str, object] = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())
    return document


SCHEMA = PROJECT_DIR / "schemas" / "pulumi-project.json"


def test_pulumi_yaml_is_valid_against_pulumis_project_schema() -> None:
    assert problems(PROJECT_DIR / "Pulumi.yaml", SCHEMA) == []


def test_the_schema_check_rejects_a_broken_project_file(tmp_path: Path) -> None:
    broken = tmp_path / "Pulumi.yaml"
    broken.write_text("name: depot\nruntime:\n  name: python\n  options: [not, a, map]\n")
    assert any("runtime" in problem for problem in problems(broken, SCHEMA))


def test_project_is_depot_on_python_with_the_venv_at_dot_venv() -> None:
    project = _project()
    assert project["name"] == "depot"
    assert project["runtime"] == {
        "name": "python",
        "options": {"toolchain": "pip", "virtualenv": ".venv"},
    }


def test_main_only_loads_builds_and_exports() -> None:
    tree = ast.parse((PROJECT_DIR / "__main__.py").read_text())
    statements = [
        node
        for node in tree.body
        if not isinstance(node, ast.Expr) or not isinstance(node.value, ast.Constant)
    ]
    assert len(statements) <= 3
    assert ast.unparse(statements[-1]) == "deploy()"


def test_dependencies_have_bounded_version_ranges() -> None:
    pyproject = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())
    requirements = [
        *pyproject["project"]["dependencies"],
        *pyproject["project"]["optional-dependencies"]["dev"],
    ]
    for requirement in requirements:
        assert re.search(r">=[\d.]+,<[\d.]+", requirement), requirement


def test_the_lock_pins_every_package_exactly() -> None:
    lines = [
        line.strip()
        for line in (PROJECT_DIR / "requirements.lock").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert len(lines) > 20
    for line in lines:
        assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[\w.+!-]+", line), line
    pinned = {line.split("==")[0].lower().replace("_", "-") for line in lines}
    providers = {"pulumi-command", "pulumi-docker", "pulumi-docker-build", "pulumi-random"}
    assert {"pulumi", *providers} <= pinned


def test_both_stack_files_exist_and_load() -> None:
    for stack in ("dev", "prod"):
        assert (PROJECT_DIR / f"Pulumi.{stack}.yaml").is_file()
        assert stack_config(stack).values


def test_importing_the_package_registers_nothing() -> None:
    recording = Recording(stack="dev")

    modules = pkgutil.walk_packages(depot.__path__, "depot.")
    # depot.__main__ is `python -m depot`: running is its purpose, importing it is not.
    names = ["depot", *(m.name for m in modules if not m.name.endswith("__main__"))]
    assert "depot.program" in names
    originals = {name: sys.modules.pop(name) for name in names if name in sys.modules}

    def import_everything() -> None:
        for name in names:
            importlib.import_module(name)

    try:
        record(import_everything, stack="dev", config=stack_config("dev"), into=recording)
    finally:
        sys.modules.update(originals)  # later tests keep the classes they imported
    assert recording.registrations == []


def test_the_import_check_would_see_a_registration() -> None:
    recording = Recording(stack="dev")
    record(deploy, stack="dev", config=stack_config("dev"), into=recording)
    assert recording.registrations


def test_a_run_under_mocks_skips_the_sdks_source_positions_and_restores_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # record() leaves out the stack walk the SDK makes at each registration for the engine's
    # source positions (no engine reads them under mocks); the SDK's own is back after the run.
    walks: list[source_pb2.StackTrace] = []

    def walk() -> source_pb2.StackTrace:
        walks.append(source_pb2.StackTrace())
        return walks[-1]

    monkeypatch.setattr(sdk_resource, "_get_stack_trace", walk)  # fails if the SDK renames it
    assert record(deploy, stack="dev", config=stack_config("dev")).registrations
    assert walks == []
    assert sdk_resource._get_stack_trace is walk
