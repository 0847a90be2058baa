"""What each layer loads: the rules and the pack never load the program, and only the CLI loads
the day-two modules.

Each import runs in a fresh interpreter, so what another test imported first cannot hide one.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import PROJECT_DIR

PROGRAM = (
    "pulumi_command",
    "pulumi_docker",
    "pulumi_docker_build",
    "pulumi_random",
    "depot.program",
    "depot.recording",
)
"""The providers and the program: what makes a plan, not what reads one."""


def _loaded_after(code: str) -> set[str]:
    """The modules of interest in ``sys.modules`` after ``code`` ran in a fresh interpreter."""
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))\n"
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_DIR, capture_output=True, text=True, check=True
    )
    loaded: set[str] = set(json.loads(result.stdout.splitlines()[-1]))
    return loaded


@pytest.mark.parametrize(
    "module",
    [
        "depot.policy.rules",
        "depot.policy.check",
        "depot.review.diff",
        "depot.review.graph",
        "depot.review.render",
        "depot.review.planned",
        "depot.review.workload",
        "depot.resource_types",
    ],
)
def test_reading_a_plan_loads_no_pulumi_and_not_the_program(module: str) -> None:
    loaded = _loaded_after(f"import {module}")
    assert module in loaded  # the probe itself works
    assert loaded.isdisjoint(PROGRAM), loaded & set(PROGRAM)


def test_the_crossguard_pack_loads_its_rules_without_a_provider() -> None:
    # Run the pack's entry point as `pulumi preview --policy-pack` does, with PolicyPack (which
    # would start the analyzer's gRPC server and wait) replaced by a stand-in that keeps the
    # policies it is given.
    loaded = _loaded_after(
        "import runpy, pulumi_policy\n"
        "built = []\n"
        "pulumi_policy.PolicyPack = lambda **pack: built.append(pack)\n"
        "runpy.run_path('policy/__main__.py', run_name='__main__')\n"
        "assert len(built) == 1 and len(built[0]['policies']) == 27, built"
    )
    assert "depot.policy.rules" in loaded
    assert "pulumi_policy" in loaded
    assert loaded.isdisjoint(PROGRAM), loaded & set(PROGRAM)


def _third_party(loaded: frozenset[str]) -> set[str]:
    """The installed packages among ``loaded``: neither the standard library nor the depot."""
    tops = {name.split(".")[0] for name in loaded}
    return {t for t in tops - set(sys.stdlib_module_names) if not t.startswith(("_", "depot"))}


@cache
def _loaded_by_command(*argv: str) -> frozenset[str]:
    """What one command loads, probed once per test process: the probe runs in an interpreter
    of its own, so a second probe of the same command would see the same modules."""
    return frozenset(
        _loaded_after(
            "import contextlib, io\n"
            "from depot.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    assert main({list(argv)!r}) == 0\n"
        )
    )


# `depot graph` and `depot compose` must each take under 0.5 s as a whole process. Importing the
# Pulumi SDK and its providers alone takes about 0.5 s on the project's machine; without them a
# command takes about 0.35 s. So the unit tier holds the cause, which is deterministic: neither
# command loads the SDK, a provider, gRPC, protobuf or the program, and `depot graph` loads no
# installed package that `depot compose` does not. The wall-clock bound itself is checked by
# `make bench` (median of alternated whole-process runs): a timing assertion here would fail
# whenever another job shares the two cores, and prove nothing about the code when it passed.
HEAVY = ("pulumi", "grpc", "google")
"""Packages whose import alone costs more than a command's whole budget."""


# One group (`--dist loadgroup`): a single worker probes each command once for both tests.
COMMAND_PROBES = pytest.mark.xdist_group("command-imports")


@COMMAND_PROBES
@pytest.mark.parametrize(
    "argv",
    [
        ("graph", "--stack", "prod"),
        ("graph", "--stack", "cluster", "--format", "dot"),
        ("graph", "--stack", "dev", "--profile", "gpu"),
        ("compose", "--stack", "prod"),
        ("compose", "--stack", "cluster"),
    ],
    ids=" ".join,
)
def test_graph_and_compose_load_no_pulumi_sdk_and_not_the_program(argv: tuple[str, ...]) -> None:
    loaded = _loaded_by_command(*argv)
    assert "depot.cli" in loaded  # the probe itself works
    assert loaded.isdisjoint(PROGRAM), loaded & set(PROGRAM)
    assert "depot.review.plan" not in loaded
    assert not {name for name in loaded if name.startswith(HEAVY)}


@COMMAND_PROBES
def test_graph_loads_no_package_that_compose_does_not() -> None:
    graph = _third_party(_loaded_by_command("graph", "--stack", "prod"))
    compose = _third_party(_loaded_by_command("compose", "--stack", "prod"))
    assert {"pydantic", "yaml"} <= compose  # the probe sees installed packages
    assert graph <= compose, graph - compose


@pytest.mark.parametrize("command", ["backup", "backups", "restore"])
def test_the_backup_commands_load_no_pulumi(command: str) -> None:
    # Run as far as the (absent) engine: settings read, the container looked for, no SDK.
    loaded = _loaded_after(
        "from depot.cli import main\n"
        "import os\n"
        "os.environ['PATH'] = ''\n"
        f"main([{command!r}, '--stack', 'dev'])"
    )
    assert "depot.host.backup" in loaded
    assert "depot.config.settings" in loaded
    assert loaded.isdisjoint(PROGRAM), loaded & set(PROGRAM)


def _imported_by(path: Path) -> set[str]:
    """Every module ``path`` imports, at its top or inside a function (where commands import)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(path, node.module or "", node.level)
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _absolute(path: Path, module: str, level: int) -> str:
    """``from ..host import x`` in depot/review/y.py is ``depot.host``."""
    if level == 0:
        return module
    package = path.relative_to(PROJECT_DIR).with_suffix("").parts[:-level]
    return ".".join([*package, module] if module else package)


DAY_TWO = "depot.host"
"""Day two on a live host (doctor, drift, rotate, backups): for the `depot` command alone."""
DAY_TWO_USERS = ("depot/cli.py", "depot/host/")


def _is_day_two(module: str) -> bool:
    return module == DAY_TWO or module.startswith(f"{DAY_TWO}.")


def test_the_imports_probe_sees_a_lazy_import() -> None:
    assert _is_day_two("depot.host.backup")
    assert not _is_day_two("depot.hostname")
    assert {"depot.host.rotate", "depot.host.rotate.rotate"} <= _imported_by(
        PROJECT_DIR / "depot" / "cli.py"
    )


def test_only_the_cli_imports_the_day_two_modules() -> None:
    # The program, its components, the outputs, review and policy sit below the day-two
    # commands: what both need (the rotation catalogue) lives in depot/rotations.py.
    sources = sorted(
        path
        for folder in ("depot", "policy")
        for path in (PROJECT_DIR / folder).rglob("*.py")
        if not path.relative_to(PROJECT_DIR).as_posix().startswith(DAY_TWO_USERS)
    )
    assert len(sources) > 40  # the probe reads the tree
    upward = {
        path.relative_to(PROJECT_DIR).as_posix(): sorted(filter(_is_day_two, _imported_by(path)))
        for path in sources
    }
    assert {path: found for path, found in upward.items() if found} == {}


def test_the_program_loads_no_day_two_module() -> None:
    loaded = _loaded_after("import depot.program, depot.review.model_graph, depot.outputs.export")
    assert "depot.program" in loaded  # the probe itself works
    assert not {name for name in loaded if _is_day_two(name)}
