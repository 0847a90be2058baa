"""The ``depot`` command as its users meet it: ``--version``, each command's ``--help`` (a
summary, its exit statuses, an example last), and one table of exit statuses that every command
keeps to.
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator

import pytest

from depot import cli
from depot.cli import USAGE, Usage, _parser, allowed_statuses, main
from depot.exit_status import MEANINGS, ExitStatus
from tests.conftest import PROJECT_DIR


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    """Every command under ``parser``, as typed (``secrets init``), its summary and parser."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        summaries = {choice.dest: choice.help for choice in action._choices_actions}
        for name, sub in action.choices.items():
            typed = (*path, name)
            yield " ".join(typed), summaries.get(name) or "", sub
            yield from _commands(sub, typed)


COMMANDS = {typed: (summary, sub) for typed, summary, sub in _commands(_parser())}


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


# --- --version ----------------------------------------------------------------------------


def test_version_prints_the_installed_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    declared = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["project"]["version"]
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr() == (f"depot {declared}\n", "")
    assert importlib.metadata.version("depot-infra") == declared  # the installed metadata


def test_version_without_installed_metadata_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == "depot (not installed: no version)\n"


def test_version_from_the_installed_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "depot", "--version"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"depot {importlib.metadata.version('depot-infra')}\n"


# --- help: a summary, the exit statuses, an example last ----------------------------------


def test_the_probe_finds_every_command_and_the_nested_one() -> None:
    assert {"plan", "compose", "restore", "secrets", "secrets init"} <= set(COMMANDS)


def test_every_command_has_an_entry_in_the_usage_table_and_no_entry_is_stale() -> None:
    assert set(COMMANDS) == set(USAGE)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_a_summary_and_a_description(command: str) -> None:
    summary, parser = COMMANDS[command]
    assert summary.strip()
    assert parser.description is not None
    assert parser.description.lower().startswith(summary.lower())


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_commands_help_ends_with_its_example(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = _help(capsys, *command.split())
    example = "".join(f"  {line}\n" for line in USAGE[command].example.splitlines())
    assert text.endswith(f"\nexample:\n{example}")
    assert text.count("example:") == 1


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_commands_help_lists_the_statuses_it_ends_with(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    statuses = _help(capsys, *command.split()).split("\nexit status:\n")[1].split("\n\n")[0]
    listed = {int(line[2]) for line in statuses.splitlines() if line[2:3].isdigit()}
    assert listed == {int(s) for s in allowed_statuses(command)}
    attention = USAGE[command].attention
    assert (attention is not None) == (ExitStatus.ATTENTION in allowed_statuses(command))
    if attention is not None:
        assert f"  1  {attention.split()[0]}" in statuses


@pytest.mark.parametrize("command", sorted(USAGE))
def test_every_example_is_a_command_this_parser_accepts(command: str) -> None:
    for line in USAGE[command].example.splitlines():
        words = shlex.split(line, comments=True)
        for stop in ("|", "&&"):
            words = words[: words.index(stop)] if stop in words else words
        assert words[0] == "depot"
        assert " ".join(words[1:]).startswith(command)
        _parser().parse_args(words[1:])  # exits (SystemExit) on an unknown option


def test_the_top_level_help_says_what_depot_does_today(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(capsys)
    description = text.split("\n\n")[1:3]
    for command in ("plan", "diff", "check", "graph", "compose", "doctor", "drift", "rotate"):
        assert command in " ".join(description)
    for command in ("backup", "backups", "restore"):
        assert command in " ".join(description)
    assert "without the Pulumi engine" in description[0]


def test_the_top_level_help_ends_with_examples_after_the_exit_statuses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = _help(capsys)
    table = text.split("\nexit status:\n")[1].split("\n\nexamples:\n")[0]
    for status in ExitStatus:
        assert f"  {status.value}  {MEANINGS[status].split()[0]}" in table
    attention = [c for c, usage in USAGE.items() if usage.attention]
    assert attention  # the probe sees the per-command lines
    for command in attention:
        assert f"       {command} " in table
    assert text.rstrip("\n").splitlines()[-1].startswith("  depot ")


def test_a_new_command_without_an_example_is_refused_when_the_parser_is_built() -> None:
    commands = argparse.ArgumentParser().add_subparsers()
    with pytest.raises(KeyError, match=r"depot upgrade: add its example to depot\.cli\.USAGE"):
        cli._command(commands, "upgrade", "a command nobody wrote an example for")


def test_a_new_commands_example_is_one_line_in_the_usage_table(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(USAGE, "upgrade", Usage("depot upgrade --stack prod"))
    commands = argparse.ArgumentParser(prog="depot").add_subparsers()
    parser = cli._command(commands, "upgrade", "postgres to its next major")
    assert parser.format_help().endswith("example:\n  depot upgrade --stack prod\n")


# --- exit statuses: one table, kept ------------------------------------------------------


def test_the_exit_statuses_are_those_of_diff_and_grep() -> None:
    assert [(s.name, s.value) for s in ExitStatus] == [("OK", 0), ("ATTENTION", 1), ("ERROR", 2)]
    assert set(MEANINGS) == set(ExitStatus)


def test_a_usage_error_exits_with_the_error_status(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["plan", "--stack"])
    assert exited.value.code == ExitStatus.ERROR
    assert "expected one argument" in capsys.readouterr().err


def test_a_status_a_command_does_not_document_is_reported_as_a_bug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ExitStatus.ATTENTION not in allowed_statuses("plan")
    monkeypatch.setattr(cli, "_plan", lambda _args: ("planned\n", ExitStatus.ATTENTION))
    status, out, err = _run(capsys, "plan", "--stack", "dev")
    assert (status, out) == (ExitStatus.ERROR, "planned\n")
    assert err == "depot plan: failed: exit status 1 is not documented (a bug in depot)\n"


def test_a_documented_attention_status_passes_through(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "_check", lambda _args: ("1 violation\n", ExitStatus.ATTENTION))
    assert _run(capsys, "check", "--stack", "dev") == (ExitStatus.ATTENTION, "1 violation\n", "")


def test_diff_of_two_stacks_that_differ_needs_attention(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, err = _run(capsys, "diff", "--stacks", "dev", "prod")
    assert (status, err) == (ExitStatus.ATTENTION, "")
    assert out


STATUS_MODULES = ("depot/cli.py", "depot/policy/check.py", "depot/host/")


def _status_literals(tree: ast.AST) -> list[int]:
    """Lines returning ``(output, <int literal>)`` or a conditional of int literals."""

    def literal(node: ast.expr) -> bool:
        if isinstance(node, ast.IfExp):
            return literal(node.body) or literal(node.orelse)
        return isinstance(node, ast.Constant) and type(node.value) is int

    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Return)
        and isinstance(node.value, ast.Tuple)
        and node.value.elts
        and literal(node.value.elts[-1])
    ]


def _exits(tree: ast.AST) -> list[int]:
    """Lines calling ``sys.exit``, ``exit`` or raising ``SystemExit``, outside ``__main__``."""
    found = []
    for node in ast.walk(tree):
        call = node.exc if isinstance(node, ast.Raise) else node
        if isinstance(call, ast.Call):
            name = ast.unparse(call.func)
            if name in ("sys.exit", "exit", "SystemExit", "quit"):
                found.append(call.lineno)
    return found


def test_the_probes_see_a_bare_status_and_an_exit() -> None:
    tree = ast.parse("def f():\n    return '', 1 if x else 0\n\nsys.exit(3)\n")
    assert _status_literals(tree) == [2]
    assert _exits(tree) == [4]


def test_every_command_status_is_an_exit_status_never_a_bare_number() -> None:
    sources = sorted(
        path
        for path in (PROJECT_DIR / "depot").rglob("*.py")
        if path.relative_to(PROJECT_DIR).as_posix().startswith(STATUS_MODULES)
    )
    assert len(sources) > 5
    bare = {
        path.relative_to(PROJECT_DIR).as_posix(): lines
        for path in sources
        if (lines := _status_literals(ast.parse(path.read_text())))
    }
    assert bare == {}


def test_only_the_entry_points_of_depot_exit() -> None:
    # Every other path returns its status to main(), which checks it against the table.
    # depot/tools/ and depot/demo.py (make demo) are programs of their own (python -m …), not
    # depot commands: each exits once, in its own main block.
    exits = {
        path.relative_to(PROJECT_DIR).as_posix(): lines
        for path in sorted((PROJECT_DIR / "depot").rglob("*.py"))
        if "tools" not in path.relative_to(PROJECT_DIR).parts
        and (lines := _exits(ast.parse(path.read_text())))
    }

    def main_block(module: str) -> int:
        return len((PROJECT_DIR / "depot" / module).read_text().splitlines())

    assert exits == {
        "depot/__main__.py": [7],
        "depot/cli.py": [main_block("cli.py")],
        "depot/demo.py": [main_block("demo.py")],
    }
