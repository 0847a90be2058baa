"""What the policy and review modules load: the rules and the pack never load the program.

Each import runs in a fresh interpreter, so what another test imported first cannot hide one.
"""

from __future__ import annotations

import json
import subprocess
import sys

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


def _third_party(loaded: set[str]) -> set[str]:
    """The installed packages among ``loaded``: neither the standard library nor the depot."""
    tops = {name.split(".")[0] for name in loaded}
    return {t for t in tops - set(sys.stdlib_module_names) if not t.startswith(("_", "depot"))}


def _loaded_by_command(*argv: str) -> set[str]:
    return _loaded_after(
        "import contextlib, io\n"
        "from depot.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main({list(argv)!r}) == 0\n"
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
