"""Small stack files that once ended in a traceback: one line naming the file, exit 2.

400 nested `[` was a RecursionError in PyYAML's composer; a 5,000-digit integer a ValueError
(Python's limit on int-string conversion) in `plan`, `compose` and `graph`. The class: a few
bytes of valid YAML that no reader after the parser expects — nesting (in the text, or stacked
up through aliases), and numbers longer than any setting.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from depot.config import ConfigError, RawConfig, load_settings
from depot.config.stack_file import MAX_DEPTH, parse_stack_file
from tests.conftest import PROJECT_DIR, run_depot
from tests.test_review import main_in_project

DEEP = f"nests lists and maps more than {MAX_DEPTH} levels deep"
LONG_NUMBER = r"is a number of \d+ characters; no setting holds one longer than 64"

PATHOLOGICAL: dict[str, tuple[str, str]] = {
    "nested-lists": ("  depot:restart: " + "[" * 400 + "]" * 400, DEEP),
    "nested-lists-unclosed": ("  depot:restart: " + "[" * 400, DEEP),
    "nested-maps": ("  depot:restart: " + "{a: " * 400 + "}" * 400, DEEP),
    "nested-blocks": (
        "  depot:limits:\n" + "".join(" " * (4 + 2 * i) + f"k{i}:\n" for i in range(60)) + "x",
        DEEP,
    ),
    "nested-through-aliases": (
        "  depot:a0: &a0 " + "[" * 10 + "x" + "]" * 10 + "\n"
        + "".join(
            f"  depot:a{i}: &a{i} " + "[" * 10 + f"*a{i - 1}" + "]" * 10 + "\n" for i in range(1, 6)
        ),
        DEEP + r".* \(through YAML aliases\)",
    ),
    "long-integer": ("  depot:restart: " + "9" * 5000, LONG_NUMBER),
    "long-integer-in-a-map": (
        "  depot:limits: {discovery: {memory: 256m, cpus: " + "9" * 5000 + "}}",
        LONG_NUMBER,
    ),
    "long-integer-key": ("  depot:publish:\n    ? " + "9" * 5000 + "\n    : 1", LONG_NUMBER),
    "long-integer-tagged": ("  depot:restart: !!int '" + "9" * 5000 + "'", LONG_NUMBER),
    "long-hex": ("  depot:restart: 0x" + "f" * 5000, LONG_NUMBER),
    "long-float": ("  depot:restart: " + "9" * 4000 + ".5", LONG_NUMBER),
}  # fmt: skip


def document(body: str) -> bytes:
    return f"config:\n{body}\n".encode()


@pytest.mark.parametrize(("body", "message"), PATHOLOGICAL.values(), ids=PATHOLOGICAL.keys())
def test_a_pathological_file_is_one_line_naming_it(body: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings("x", parse_stack_file(document(body), "Pulumi.x.yaml"))
    found = str(error.value)
    assert len(found.splitlines()) == 1
    assert re.match(rf"Pulumi\.x\.yaml:\d+:\d+: {message}", found), found


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("  depot:restart: 1.5e+999999", r"depot:restart: 'inf' is not a restart policy"),
        ("  depot:restart: -.inf", r"depot:restart: '-inf' is not a restart policy"),
        ("  depot:limits: {discovery: {memory: 256m, cpus: 1e400}}", r"is not a number of CPUs"),
        ("  depot:logLevel: " + "9" * 64, r"depot:logLevel: '9{64}' should be"),
        # A key as long as a file can hold: shortened where it is shown.
        ("  ? depot:" + "k" * 100_000 + "\n  : 1", r"depot:kkkk.*…: is not a known setting"),
        ("  depot:" + "k" * 1000 + ": 1", r"depot:kkkk.*…: is not a known setting"),
    ],
    ids=["huge-float", "negative-infinity", "cpus-overflow", "64-digits", "long-key", "key-1000"],
)
def test_numbers_and_keys_at_their_bounds_are_the_settings_to_judge(
    body: str, message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings("x", parse_stack_file(document(body), "Pulumi.x.yaml"))
    found = str(error.value)
    assert len(found.splitlines()) == 1
    assert len(found) < 400
    assert re.search(message, found), found


def test_nesting_up_to_the_bound_is_read() -> None:
    # The document's map and `config:` are two levels; the value may use the rest.
    depth = MAX_DEPTH - 2
    raw = parse_stack_file(document("  depot:x: " + "[" * depth + "]" * depth), "Pulumi.x.yaml")
    assert raw.values["depot:x"] == "[" * depth + "]" * depth
    with pytest.raises(ConfigError, match=DEEP):
        parse_stack_file(document("  depot:x: " + "[" * (depth + 1) + "]" * (depth + 1)), "P")


def test_a_long_number_from_the_engine_is_text_to_the_settings() -> None:
    # Under `pulumi up` the engine hands structured values as JSON: no stack file reader
    # stands between a 5,000-digit number and json.loads.
    raw = RawConfig(
        {"depot:limits": '{"discovery": {"memory": "256m", "cpus": ' + "9" * 5000 + "}}"}
    )
    with pytest.raises(ConfigError) as error:
        load_settings("dev", raw)
    assert str(error.value).startswith('Pulumi.dev.yaml: depot:limits: \'{"discovery"')


# --- through the real command line --------------------------------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The program (not its venv or tests) with a stack file for each pathological case."""
    root = tmp_path_factory.mktemp("project")
    shutil.copytree(PROJECT_DIR / "depot", root / "depot", ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(PROJECT_DIR / "Pulumi.yaml", root)
    for name, (body, _) in PATHOLOGICAL.items():
        (root / f"Pulumi.{name}.yaml").write_bytes(document(body))
    return root


CLI_CASES = [("plan", name) for name in PATHOLOGICAL] + [
    (command, name) for command in ("compose", "graph") for name in ("nested-lists", "long-integer")
]
# Each command's first case runs as `python -m depot`, a process of its own; the others run by
# `depot.cli.main` one after another in one interpreter in the same project copy (the real entry
# point only calls `sys.exit(main())`): one Pulumi import instead of one per case.
REAL_PROCESS = {("plan", "nested-lists"), ("compose", "nested-lists"), ("graph", "nested-lists")}


@pytest.fixture(scope="module")
def in_one_interpreter(project: Path) -> dict[tuple[str, str], tuple[int, str, str]]:
    """(exit status, stdout, stderr) of every case not run as a process of its own."""
    cases = [case for case in CLI_CASES if case not in REAL_PROCESS]
    runs = main_in_project(project, *([command, "--stack", stack] for command, stack in cases))
    return dict(zip(cases, runs, strict=True))


# One group: the interpreter that runs the cases in turn is started once, on one worker.
@pytest.mark.xdist_group("pathological-cli")
@pytest.mark.parametrize(("command", "stack"), CLI_CASES)
def test_the_cli_says_one_line_and_exits_2(
    project: Path,
    in_one_interpreter: dict[tuple[str, str], tuple[int, str, str]],
    command: str,
    stack: str,
) -> None:
    """Exit 2, nothing on stdout, one line on stderr naming the file. A case in
    ``in_one_interpreter`` shows what ``main`` returned and printed; that the process exits
    with it and prints nothing more is shown by its command's case in ``REAL_PROCESS``."""
    if (command, stack) in REAL_PROCESS:
        completed = run_depot(
            command, "--stack", stack, cwd=project, env={**os.environ, "PYTHONPATH": str(project)}
        )
        status, stdout, stderr = completed.returncode, completed.stdout, completed.stderr
    else:
        status, stdout, stderr = in_one_interpreter[(command, stack)]
    assert status == 2, stderr
    assert stdout == ""
    assert len(stderr.splitlines()) == 1, stderr
    message = PATHOLOGICAL[stack][1]
    assert re.match(rf"depot {command}: Pulumi\.{stack}\.yaml:\d+:\d+: {message}", stderr)


def test_every_command_has_a_case_run_as_a_process_of_its_own() -> None:
    assert {command for command, _ in REAL_PROCESS} == {command for command, _ in CLI_CASES}
    assert set(CLI_CASES) >= REAL_PROCESS
