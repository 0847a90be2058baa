"""The ``depot`` command: a thin layer over the library.

It reviews a stack without the Pulumi engine (``plan``, ``diff``, ``check``, ``graph``), exports
it for Compose (``compose``, ``secrets init``) and does the day-two work on a live Docker host
(``doctor``, ``drift``, ``rotate``, ``backup``, ``backups``, ``restore``, ``migrate``).

Every command exits with an ``ExitStatus`` (``depot.exit_status``): 0 done, 1 done and
something needs you (what, per command: ``USAGE`` below), 2 error. ``depot --help`` prints that
table, and each command's ``--help`` its own line of it, then an example. Any error is one line
on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

# Each command imports what it runs, inside its handler: `depot compose` needs no Pulumi SDK
# and no provider, and a plan needs no policy. Process start is most of a command's time.
from depot.config.loader import ConfigError
from depot.exit_status import MEANINGS, ExitStatus
from depot.host.backup import DEFAULT_TIMEOUT, BackupError
from depot.host.docker import DockerError
from depot.outputs.secret_files import SECRETS_DIR, SecretsFolderError
from depot.paths import PROJECT_ROOT
from depot.rotations import ROTATIONS
from depot.types import PROFILES

if TYPE_CHECKING:
    from depot.config.settings import DepotSettings
    from depot.host.docker import DockerCli
    from depot.review.planned import Plan

# How `depot diff` hands its secret-fingerprint key to the `depot plan` it runs at the base ref:
# in that process's environment only, never on a command line (which `ps` shows to every user).
FINGERPRINT_KEY_VARIABLE = "DEPOT_DIFF_FINGERPRINT_KEY"


class UsageError(Exception):
    """A problem with what was asked (unknown ref, missing program at a ref)."""


@dataclass(frozen=True)
class Usage:
    """How a command's ``--help`` ends: what its exit status 1 says, then an example."""

    example: str  # shell lines, as typed; a comment after `#` says what a line does
    attention: str | None = None  # what exit status 1 says; None: it never exits 1


USAGE = {
    "plan": Usage("depot plan --stack prod --format markdown"),
    "diff": Usage(
        "depot diff --base origin/main --stack prod --format markdown",
        attention="the plans differ (as `git diff --exit-code`)",
    ),
    "check": Usage("depot check --stack prod", attention="a mandatory policy rule is violated"),
    "graph": Usage("depot graph --stack prod --format dot | dot -Tsvg -o depot.svg"),
    "compose": Usage("depot compose --stack dev -o compose.yaml"),
    "secrets": Usage("depot secrets init"),
    "secrets init": Usage(
        "depot secrets init  # then: docker compose up --detach --wait",
        attention="a file it keeps is out of date or unusable (empty, not UTF-8, a folder "
        "or symbolic link in its place)",
    ),
    "doctor": Usage(
        "depot doctor --stack prod", attention="the host is not ready: a problem is listed"
    ),
    "drift": Usage(
        "depot drift --stack prod",
        attention="the host's containers (a swarm's services) differ from the plan",
    ),
    "rotate": Usage(
        "depot rotate database-password --stack dev",
        attention="the service refused the new password, or the rotation stopped half-way "
        "(the message says which password works)",
    ),
    "backup": Usage(
        "depot backup --stack prod", attention="the backup failed (the backup container says why)"
    ),
    "backups": Usage(
        "depot backups --stack prod",
        attention="a place could not be listed (the others are), or a backup waited longer "
        "than one schedule interval to leave the host",
    ),
    "restore": Usage(
        "depot restore --stack prod --dry-run  # which backup, and what it would do\n"
        "depot restore --stack prod --from latest --identity ~/.config/depot/backup.agekey",
        attention="the restore failed; the database is as it was",
    ),
    "migrate": Usage(
        "depot migrate --stack dev --dry-run  # what it found, and the steps\n"
        "depot migrate --stack dev",
        attention="the switch failed and went back to the Compose depot (the message says how "
        "far it got); with --rollback: the way back did not finish",
    ),
}
"""Every command, as typed after ``depot``: a new command adds its line here (the parser
refuses a command without one)."""
HELP_WIDTH = 92  # the epilogs' lines, as wide as the description's

DESCRIPTION = """\
The depot's infrastructure without the Pulumi engine, and its day two on a Docker host.

Review a stack offline (plan, diff, check, graph), export it as a Compose or Swarm stack file
(compose, secrets init), and work on the live host it runs on (doctor, drift, rotate, backup,
backups, restore, migrate). `pulumi up` deploys; see README.md."""

EXAMPLES = """\
examples:
  depot plan --stack dev
  depot diff --base origin/main --stack prod
  depot compose --stack dev -o compose.yaml && depot secrets init
  depot doctor --stack prod
  depot <command> --help  # its options, exit statuses and an example"""


def allowed_statuses(command: str) -> frozenset[ExitStatus]:
    """The exit statuses ``command`` is documented to end with."""
    usage = USAGE[command]
    return frozenset(s for s in ExitStatus if s != ExitStatus.ATTENTION or usage.attention)


def exit_status_table() -> str:
    """Every status and what it says, 1 per command: the epilog of ``depot --help``."""
    width = max(len(command) for command in USAGE)
    lines = ["exit status:"]
    for status in ExitStatus:
        lines.append(_item(f"  {status.value}  ", MEANINGS[status]))
        if status == ExitStatus.ATTENTION:
            lines += [
                _item(f"       {command:<{width}}  ", usage.attention)
                for command, usage in USAGE.items()
                if usage.attention
            ]
    return "\n".join(lines)


def _epilog(command: str) -> str:
    """A command's exit statuses, then its example: last, where a reader of --help looks."""
    usage = USAGE[command]
    statuses = [_item("  0  ", MEANINGS[ExitStatus.OK])]
    if usage.attention:
        statuses.append(_item("  1  ", usage.attention))
    statuses.append(_item("  2  ", MEANINGS[ExitStatus.ERROR]))
    example = "\n".join(f"  {line}" for line in usage.example.splitlines())
    return "exit status:\n" + "\n".join(statuses) + "\n\nexample:\n" + example


def _item(label: str, text: str) -> str:
    """``label`` then ``text``, wrapped under itself (the raw epilog is not wrapped for us)."""
    return textwrap.fill(
        text, width=HELP_WIDTH, initial_indent=label, subsequent_indent=" " * len(label)
    )


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], command: str, summary: str
) -> argparse.ArgumentParser:
    """The parser of ``command`` (as typed: ``secrets init``), its help ending with its example."""
    if command not in USAGE:
        raise KeyError(f"depot {command}: add its example to depot.cli.USAGE")
    return commands.add_parser(
        command.rsplit(maxsplit=1)[-1],
        help=summary,
        description=f"{summary[0].upper()}{summary[1:]}.",
        epilog=_epilog(command),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


class _Version(argparse.Action):
    """``--version``: the installed package's version, looked up only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print depot's version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> NoReturn:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("depot-infra")
        except PackageNotFoundError:  # a source tree run with PYTHONPATH, never installed
            found = "(not installed: no version)"
        print(f"depot {found}")
        parser.exit()


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``depot``; returns the exit status (an ``ExitStatus``)."""
    args = _parser().parse_args(argv)  # a usage error exits 2 (ERROR) here, as argparse does
    try:
        output, status = args.run(args)
        sys.stdout.write(output)
    except (ConfigError, UsageError, SecretsFolderError, DockerError, BackupError) as error:
        return _fail(args, str(error))
    except OSError as error:  # a file in the way, a full disk: one line, never a traceback
        return _fail(args, _os_error(error))
    except Exception as error:  # a bug must not read as an exit status
        # Python's own exit for an uncaught exception is 1, which `diff` (changes), `check`
        # (a violation) and `drift` give a meaning: a crash must say error, in one line. Its
        # message is left out: it may quote a value (a secret) that no line here may print.
        return _fail(args, _unexpected(error))
    if status not in allowed_statuses(_command_of(args)):
        # --help documents every status a command ends with: one it does not list is a bug.
        return _fail(args, f"failed: exit status {status} is not documented (a bug in depot)")
    return int(status)


def _command_of(args: argparse.Namespace) -> str:
    """The command as typed after ``depot``: ``plan``, ``secrets init``."""
    return " ".join(filter(None, (args.command, getattr(args, "action", None))))


def _unexpected(error: BaseException) -> str:
    """One line for an exception nothing expected: its type and the line of depot it left."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if Path(f.filename).resolve().is_relative_to(PROJECT_ROOT)]
    where = (
        f" at {Path(ours[-1].filename).relative_to(PROJECT_ROOT)}:{ours[-1].lineno}" if ours else ""
    )
    return f"failed: {type(error).__name__}{where} (a bug in depot: please report it)"


def _fail(args: argparse.Namespace, message: str) -> int:
    print(f"depot {_command_of(args)}: {message}", file=sys.stderr)
    return ExitStatus.ERROR


def _os_error(error: OSError) -> str:
    """``path: reason`` of an OSError, without Python's ``[Errno 13]``."""
    reason = error.strerror or str(error)
    return f"{error.filename}: {reason}" if error.filename is not None else reason


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="depot",
        description=DESCRIPTION,
        epilog=f"{exit_status_table()}\n\n{EXAMPLES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_Version)
    commands = parser.add_subparsers(dest="command", required=True, metavar="<command>")

    plan = _command(commands, "plan", "every resource a stack registers")
    plan.add_argument("--stack", required=True)
    _profiles(plan)
    plan.add_argument("--format", choices=["text", "json", "markdown"], default="text")
    plan.set_defaults(run=_plan)

    diff = _command(commands, "diff", "what changes between two plans")
    which = diff.add_mutually_exclusive_group(required=True)
    which.add_argument("--stacks", nargs=2, metavar=("A", "B"), help="compare stack A with B")
    which.add_argument("--base", metavar="REF", help="compare --stack at a git ref with now")
    diff.add_argument("--stack", default="dev", help="the stack for --base (default dev)")
    _profiles(diff)
    diff.add_argument("--format", choices=["text", "json", "markdown"], default="text")
    diff.set_defaults(run=_diff)

    check = _command(commands, "check", "the policy rules on a stack's plan")
    check.add_argument("--stack", required=True)
    _profiles(check)
    check.set_defaults(run=_check)

    graph = _command(commands, "graph", "the dependency graph of a stack")
    graph.add_argument("--stack", required=True)
    _profiles(graph)
    graph.add_argument("--format", choices=["mermaid", "dot"], default="mermaid")
    graph.set_defaults(run=_graph)

    _compose_command(commands)

    secrets = _command(commands, "secrets", "the secret files the Compose file reads")
    actions = secrets.add_subparsers(dest="action", required=True, metavar="<action>")
    init = _command(
        actions,
        "secrets init",
        "create the missing secret files (random, mode 0600); keep the others",
    )
    init.add_argument(
        "--dir",
        type=Path,
        default=PROJECT_ROOT / SECRETS_DIR,
        help="default: secrets/ in this project, where the Compose file looks",
    )
    init.set_defaults(run=_secrets_init)

    doctor = _command(commands, "doctor", "what the stack needs from its host, before up")
    doctor.add_argument("--stack", required=True)
    _engine_host(doctor)
    _profiles(doctor)
    doctor.set_defaults(run=_doctor)

    drift = _command(commands, "drift", "the live Docker host against the stack's plan")
    drift.add_argument("--stack", required=True)
    _engine_host(drift)
    _profiles(drift)
    drift.set_defaults(run=_drift)

    rotate = _command(
        commands, "rotate", "a new password, told to the running service first (Compose depot)"
    )
    rotate.add_argument("secret", choices=list(ROTATIONS))
    rotate.add_argument("--stack", default="dev", help="whose Docker host (default dev)")
    rotate.add_argument(
        "--dir",
        type=Path,
        default=PROJECT_ROOT / SECRETS_DIR,
        help="the secret files the depot was started with (default: secrets/ here)",
    )
    _compose_files(
        rotate, "the Compose file(s) it was started with (default: compose.yaml here, if any)"
    )
    rotate.add_argument("--project-name", help="its Compose project name, if not the file's")
    rotate.set_defaults(run=_rotate, profiles=[])
    _backup_commands(commands)
    _migrate_command(commands)
    return parser


def _compose_files(command: argparse.ArgumentParser, what: str) -> None:
    """``--compose-file FILE``, repeatable, in the order Compose merges them."""
    command.add_argument(
        "--compose-file",
        dest="compose_files",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help=what,
    )


def _migrate_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    migrate = _command(
        commands, "migrate", "from the running Compose depot to the stack, its data checked"
    )
    migrate.add_argument("--stack", required=True)
    migrate.add_argument(
        "--from-compose",
        action="store_true",
        help="from a Compose deployment (the only source there is; the default)",
    )
    migrate.add_argument(
        "--project", help="its Compose project (default: the one running postgres)"
    )
    _compose_files(
        migrate, "the new deployment's Compose file(s) (default: compose.yaml here, the export)"
    )
    migrate.add_argument(
        "--dir",
        type=Path,
        default=PROJECT_ROOT / SECRETS_DIR,
        help="the new deployment's secrets folder (default: secrets/ here)",
    )
    which = migrate.add_mutually_exclusive_group()
    which.add_argument("--dry-run", action="store_true", help="print the steps; change nothing")
    which.add_argument(
        "--rollback", action="store_true", help="back to the Compose depot the record names"
    )
    which.add_argument(
        "--set-pulumi-secret",
        action="store_true",
        help="only hand the Compose depot's password to `pulumi config set --secret` (stdin)",
    )
    migrate.set_defaults(run=_migrate, profiles=[])


def _compose_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    compose = _command(
        commands, "compose", "a stack as a Compose file (a swarm stack: a stack file)"
    )
    compose.add_argument("--stack", required=True)
    _profiles(compose)
    compose.add_argument(
        "-o", "--output", type=Path, help="write it to this new file (default: stdout)"
    )
    compose.add_argument(
        "--force",
        action="store_true",
        help="with -o: replace the file if it exists (never a symbolic link, never through one)",
    )
    compose.set_defaults(run=_compose)


def _backup_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backup = _command(commands, "backup", "take a backup now, as the schedule does")
    _backup_target(backup)
    _backup_timeout(backup)
    backup.set_defaults(run=_backup)

    backups = _command(commands, "backups", "the good backups, newest first, and where")
    _backup_target(backups)
    backups.set_defaults(run=_backups)

    restore = _command(
        commands, "restore", "a backup into a fresh database, checked, then swapped in"
    )
    _backup_target(restore)
    restore.add_argument(
        "--from",
        dest="name",
        default="latest",
        metavar="NAME",
        help="the backup, as `depot backups` names it (default: latest, the newest good one)",
    )
    restore.add_argument(
        "--identity",
        type=Path,
        metavar="FILE",
        help="the age identity (private key) of an encrypted backup; mode 0600 or stricter",
    )
    restore.add_argument(
        "--dry-run", action="store_true", help="say what it would do; change nothing"
    )
    _backup_timeout(restore)
    restore.set_defaults(run=_restore)


def _backup_target(command: argparse.ArgumentParser) -> None:
    command.add_argument("--stack", required=True)
    command.add_argument(
        "--docker-host",
        metavar="HOST",
        help="the engine that runs the backup container (default: the stack's depot:docker.host; "
        "on a swarm, the data node)",
    )
    command.set_defaults(profiles=[])


def _engine_host(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--docker-host",
        metavar="HOST",
        help="the engine to ask (default: the stack's depot:docker.host; on a swarm, a manager)",
    )


def _backup_timeout(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"stop waiting after this long (default {DEFAULT_TIMEOUT:g})",
    )


def _profiles(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--profile",
        dest="profiles",
        action="append",
        default=[],
        metavar="P",
        choices=PROFILES,
        help="enable an optional profile (gpu, rtk) on top of the stack's; repeatable",
    )


def _plan(args: argparse.Namespace) -> tuple[str, ExitStatus]:
    from depot.review.plan import plan_stack
    from depot.review.render import dumps, plan_markdown, plan_text

    plan = plan_stack(args.stack, args.profiles, fingerprint_key=_fingerprint_key_given())
    render = {"json": lambda p: dumps(p.to_json()), "markdown": plan_markdown, "text": plan_text}
    return render[args.format](plan), ExitStatus.OK


def _fingerprint_key_given() -> bytes | None:
    """The key a `depot diff` passed to this `depot plan`, if any (see ``plan_at_ref``)."""
    from depot.review.plan import FINGERPRINT_KEY_BYTES

    given = os.environ.get(FINGERPRINT_KEY_VARIABLE)
    if given is None:
        return None
    try:
        key = bytes.fromhex(given)
    except ValueError:
        key = b""
    if len(key) != FINGERPRINT_KEY_BYTES:
        raise UsageError(
            f"{FINGERPRINT_KEY_VARIABLE} is set but is not {FINGERPRINT_KEY_BYTES * 2} hex "
            "digits; it is for `depot diff` only: unset it"
        )
    return key


def _diff(args: argparse.Namespace) -> tuple[str, ExitStatus]:
    from depot.review.diff import diff_plans
    from depot.review.plan import new_fingerprint_key, plan_stack
    from depot.review.render import diff_markdown, diff_text, dumps

    # One key for both sides: their secrets' fingerprints compare, and no other run's do.
    key = new_fingerprint_key()
    if args.stacks:
        first, second = args.stacks
        base = plan_stack(first, args.profiles, fingerprint_key=key)
        head = plan_stack(second, args.profiles, fingerprint_key=key)
        labels = (first, second)
    else:
        base = plan_at_ref(args.base, args.stack, args.profiles, fingerprint_key=key)
        head = plan_stack(args.stack, args.profiles, fingerprint_key=key)
        labels = (f"{args.stack}@{args.base}", f"{args.stack} (working tree)")
    diff = diff_plans(base, head, base_label=labels[0], head_label=labels[1])
    if args.format == "json":
        output = dumps(diff.to_json())
    elif args.format == "markdown":
        output = diff_markdown(diff, head)
    else:
        output = diff_text(diff)
    return output, ExitStatus.OK if diff.empty else ExitStatus.ATTENTION


def _check(args: argparse.Namespace) -> tuple[str, ExitStatus]:
    from depot.config.loader import load_settings
    from depot.config.stack_file import stack_config
    from depot.policy.check import check_plan, report
    from depot.review.plan import plan_config

    config = stack_config(args.stack, args.profiles)  # read once: for the policy and the plan
    settings = load_settings(args.stack, config)
    plan = plan_config(args.stack, config, settings=settings)
    violations = check_plan(plan, settings.policy, postgres_major=settings.data.postgres_major)
    return report(violations, args.stack)


def _graph(args: argparse.Namespace) -> tuple[str, ExitStatus]:
    # From the model, not the plan: the same graph (tests/test_graph.py holds them equal)
    # without the Pulumi SDK, whose imports would be most of the command's time.
    from depot.review.graph import to_dot, to_mermaid
    from depot.review.model_graph import model_graph

    graph = model_graph(_settings(args))
    return (to_dot(graph) if args.format == "dot" else to_mermaid(graph)), ExitStatus.OK


def _compose(args: argparse.Namespace) -> tuple[str, ExitStatus]:
    from depot.config.loader import load_settings
    from depot.config.stack_file import stack_config
    from depot.outputs.export import export_yaml

    text = export_yaml(load_settings(args.stack, stack_config(args.stack, args.profiles)))
    if args.output is None:
        return text, ExitStatus.OK
    _write_export(args.output, text, force=args.force)
    where = args.output.resolve().parent
    note = "" if where == PROJECT_ROOT else f"; its relative paths start at {PROJECT_ROOT}"
    return f"wrote {args.output} (stack {args.stack}){note}\n", ExitStatus.OK


def _write_export(output: Path, text: str, *, force: bool) -> None:
    """Write the Compose file to ``output``, or say in one line why it cannot be there."""
    from depot.outputs.output_file import OutputFileError, write_output

    try:
        write_output(output, text, force=force)
    except OutputFileError as error:
        raise UsageError(f"-o {output}: {error}") from None


def _secrets_init(args: argparse.Namespace) -> tuple[str, ExitStatus]:
    from depot.outputs.compose import project_path
    from depot.outputs.secret_files import init_secret_files

    lines, status = [], ExitStatus.OK
    for result in init_secret_files(args.dir):
        path = project_path(os.path.abspath(args.dir / result.name))
        if result.created:
            line = f"created {path}"
        elif result.skipped:
            line = f"skipped {path}: {result.problem}"
        elif result.problem:
            line = f"kept    {path}: {result.problem}"
        else:
            line = f"kept    {path} (exists)"
        if result.problem:
            status = ExitStatus.ATTENTION
        lines.append(line if result.warning is None else f"{line}; warning: {result.warning}")
    return "".join(f"{line}\n" for line in lines), status


def _settings(args: argparse.Namespace) -> DepotSettings:
    from depot.config.loader import load_settings
    from depot.config.stack_file import stack_config

    return load_settings(args.stack, stack_config(args.stack, args.profiles))


def _docker_cli(settings: DepotSettings, host: str | None = None) -> DockerCli:
    """The docker CLI against the stack's host (or ``host``), with the stack's ssh options."""
    from depot.host.docker import DockerCli

    return DockerCli(host or settings.docker.host, ssh_options=settings.docker.ssh_opts)


def _doctor(args: argparse.Namespace) -> tuple[str, ExitStatus]:
    from depot.host.doctor import diagnose, report

    settings = _settings(args)
    cli = _docker_cli(settings, _given_host(args))
    if settings.runtime == "swarm":
        _require_leader(cli)
    return report(args.stack, diagnose(settings, cli))


def _given_host(args: argparse.Namespace) -> str | None:
    return None if args.docker_host is None else _docker_host(args.docker_host)


def _require_leader(cli: DockerCli) -> None:
    """A swarm without a leader is said in one line within a bound, before anything hangs
    (``docker info`` itself waits 20 s on such a swarm). An engine that is no manager, or in no
    swarm, is left for the command to report."""
    from depot.host.cluster import NoLeaderError, require_leader

    try:
        require_leader(cli)
    except NoLeaderError:
        raise
    except DockerError:
        return


def _drift(args: argparse.Namespace) -> tuple[str, ExitStatus]:
    from depot.config.stack_file import stack_config
    from depot.host.drift import expected_from_plan, find_drift, find_swarm_drift, report
    from depot.review.plan import plan_config

    config = stack_config(args.stack, args.profiles)
    settings = _settings(args)
    cli = _docker_cli(settings, _given_host(args))
    if settings.runtime == "swarm":
        _require_leader(cli)
    expected = expected_from_plan(plan_config(args.stack, config, settings=settings), settings)
    if settings.runtime == "swarm":
        return report(args.stack, find_swarm_drift(expected, cli), expected)
    return report(args.stack, find_drift(expected, cli), expected)


def _rotate(args: argparse.Namespace) -> tuple[str, ExitStatus]:
    from depot.host.rotate import ComposeProject, RotationError, rotate
    from depot.model import deployments

    settings = _settings(args)
    files = tuple(args.compose_files)
    if not files and (PROJECT_ROOT / "compose.yaml").is_file():
        files = (PROJECT_ROOT / "compose.yaml",)
    for file in files:
        if not file.is_file():
            raise UsageError(f"--compose-file {file}: no such file")
    compose = ComposeProject(files, args.project_name) if files else None
    try:
        lines = rotate(
            args.secret,
            args.dir,
            _docker_cli(settings),
            compose,
            [deployment.spec for deployment in deployments(settings)],
        )
    except RotationError as error:
        print(f"depot rotate: {error}", file=sys.stderr)
        return "", ExitStatus.ATTENTION
    lines.append(f"depot rotate: {args.secret} rotated")
    return "".join(f"{line}\n" for line in lines), ExitStatus.OK


def _migrate(args: argparse.Namespace) -> tuple[str, int]:
    from depot.host import migrate

    settings = _settings(args)
    if settings.runtime == "swarm":
        raise UsageError(
            f"stack {args.stack} runs on a swarm; depot migrate moves a Compose depot to one "
            "Docker host (a host stack)"
        )
    cli = _docker_cli(settings)
    timeout = migrate.wait_timeout(settings)
    try:
        if args.rollback:
            record = migrate.Record.load(args.dir)
            said = migrate.go_back(cli, record, args.dir, wait_timeout=timeout)
            went_back = said.startswith("went back:")
            return f"depot migrate: {said}\n", ExitStatus.OK if went_back else ExitStatus.ATTENTION
        files = _migration_files(args, settings)
        new = migrate.new_deployment(files, args.dir)
        depot = migrate.find_compose_depot(cli, args.project, files)
        password, problem = _read_password(depot.password_file)
        if password is None:
            raise migrate.MigrationError(
                f"{depot.password_file}: {problem}: the password postgres was initialised with "
                "cannot be read there; put it in that file (mode 0600), then migrate"
            )
        if args.set_pulumi_secret:
            why = migrate.password_opens(cli, depot.postgres.id, depot.database, password)
            if why is not None:
                raise migrate.MigrationError(
                    f"the password in {depot.password_file} does not open {depot.database} "
                    f"({why}): put the one the Compose depot runs with there"
                )
            failed = migrate.set_pulumi_secret(args.stack, password)
            if failed is not None:
                raise UsageError(f"pulumi config set --secret failed: {failed}")
            return (
                f"depot migrate: depot:databasePassword of stack {args.stack} set\n",
                ExitStatus.OK,
            )
        plan = migrate.plan_migration(cli, settings, depot, new, password)
        sys.stdout.write(plan.text())
        sys.stdout.flush()
        if args.dry_run:
            return "depot migrate: dry run; nothing was changed\n", ExitStatus.OK
        try:
            outcome = migrate.switch(cli, plan, password, wait_timeout=timeout)
        except migrate.SwitchError as error:
            print(f"depot migrate: {error}", file=sys.stderr)
            return "", ExitStatus.ATTENTION
    except migrate.MigrationError as error:
        raise UsageError(str(error)) from None
    lines = [*outcome.lines, f"depot migrate: stack {args.stack} runs the depot now"]
    return "".join(f"{line}\n" for line in lines), ExitStatus.OK


def _migration_files(args: argparse.Namespace, settings: DepotSettings) -> list[Path]:
    """The new deployment's Compose files; the export written to compose.yaml when none is
    given and it is not there yet (a generated file: `depot compose` writes the same)."""
    from depot.outputs.export import export_yaml

    files = list(args.compose_files)
    for file in files:
        if not file.is_file():
            raise UsageError(f"--compose-file {file}: no such file")
    if files:
        return files
    default = PROJECT_ROOT / "compose.yaml"
    if not default.is_file():
        _write_export(default, export_yaml(settings), force=False)
    return [default]


def _read_password(path: Path) -> tuple[str | None, str | None]:
    from depot.outputs.secret_files import read_secret

    if not os.path.lexists(path):
        return None, "does not exist"
    try:
        return read_secret(path)
    except OSError as error:
        return None, _os_error(error)


def _backup_cli(args: argparse.Namespace) -> tuple[DockerCli, str]:
    """The engine of the stack's backup container, and that container."""
    from depot.host.backup import backup_container

    settings = _settings(args)
    if not settings.backup.enabled:
        raise UsageError(
            f"stack {args.stack} takes no backups: set depot:backup.enabled: true in "
            f'Pulumi.{args.stack}.yaml and deploy it (README "Backups and restore"); nothing '
            "was done"
        )
    host = settings.docker.host if args.docker_host is None else _docker_host(args.docker_host)
    cli = _docker_cli(settings, host)
    return cli, backup_container(cli, settings.runtime)


def _docker_host(value: str) -> str:
    from pydantic import TypeAdapter, ValidationError

    from depot.types import DockerHost

    try:
        return TypeAdapter(DockerHost).validate_python(value)
    except ValidationError as error:
        raise UsageError(f"--docker-host {value!r}: {error.errors()[0]['msg']}") from None


def _relay(command: str, stdout: str, stderr: str, status: ExitStatus) -> tuple[str, ExitStatus]:
    """What the backup container said, in its order: its report on stdout, its complaint on
    stderr, then whether it failed."""
    sys.stdout.write(stdout)
    sys.stdout.flush()
    if stderr.strip():
        sys.stderr.write(stderr if stderr.endswith("\n") else stderr + "\n")
    if status != ExitStatus.OK:
        why = " (see above)" if stderr.strip() else " without saying why"
        print(f"depot {command}: failed{why}", file=sys.stderr)
    return "", status


def _backup(args: argparse.Namespace) -> tuple[str, ExitStatus]:
    from depot.host.backup import run_backup

    timeout = _timeout(args)
    cli, container = _backup_cli(args)
    outcome = run_backup(cli, container, timeout=timeout)
    return _relay("backup", outcome.stdout, outcome.stderr, outcome.status)


def _backups(args: argparse.Namespace) -> tuple[str, ExitStatus]:
    from depot.host.backup import backups_table, list_backups, waiting_backups, waiting_report

    cli, container = _backup_cli(args)
    listing = list_backups(cli, container)
    waiting = waiting_backups(cli, container)
    if listing.backups:
        output = backups_table(listing.backups)
    else:
        output = f"depot backups: stack {args.stack} has no good backup yet\n"
    if waiting.problem is None:
        output += waiting_report(waiting.backups)
    sys.stdout.write(output)
    sys.stdout.flush()
    complaints = []
    if listing.problem is not None:
        complaints.append(f"{listing.problem}\ndepot backups: not every place could be listed")
    if waiting.problem is not None:
        complaints.append(
            f"{waiting.problem}\ndepot backups: cannot say which backups wait to leave the host "
            "(a backup image older than this depot has no `depot-backup waiting`: deploy it)"
        )
    overdue = [w for w in waiting.backups if w.overdue]
    if overdue:
        complaints.append(
            f"depot backups: {len(overdue)} backup{'s' if len(overdue) > 1 else ''} waited "
            "longer than the schedule to leave the host: a target is failing (its last failure: "
            f"docker logs {container}); the host keeps them until it is fixed, and its volume "
            "grows by one backup a run"
        )
    for complaint in complaints:
        print(complaint, file=sys.stderr)
    return "", ExitStatus.ATTENTION if listing.problem is not None or overdue else ExitStatus.OK


def _restore(args: argparse.Namespace) -> tuple[str, ExitStatus]:
    from depot.host.backup import check_backup_name, read_identity
    from depot.host.backup import restore as restore_backup

    name = check_backup_name(args.name)
    timeout = _timeout(args)
    identity = None if args.identity is None else read_identity(args.identity)
    if identity is None and name.endswith(".age") and not args.dry_run:
        raise UsageError(f"--from {name}: is encrypted; give its age identity with --identity FILE")
    cli, container = _backup_cli(args)
    outcome = restore_backup(cli, container, name, identity, dry_run=args.dry_run, timeout=timeout)
    return _relay("restore", outcome.stdout, outcome.stderr, outcome.status)


def _timeout(args: argparse.Namespace) -> float:
    timeout = float(args.timeout)
    if not 1 <= timeout <= 7 * 24 * 3600:
        raise UsageError(f"--timeout {args.timeout:g}: use 1 to 604800 seconds")
    return timeout


def plan_at_ref(
    ref: str, stack: str, profiles: Sequence[str], *, fingerprint_key: bytes | None = None
) -> Plan:
    """The plan of ``stack`` as the project was at git ``ref``; the working tree is untouched.

    The ref's tree is exported with ``git archive`` into a temporary directory and its own
    ``depot plan`` runs there, so the base is planned with the base's code and config. With
    ``fingerprint_key``, that plan's secrets carry fingerprints under it (if the ref's code
    knows how; an older one shows plain ``[secret]`` and the diff says it could not compare).
    """
    if ref.startswith("-"):  # git would read it as an option
        raise UsageError(f"{ref!r} is not a git ref")
    commit = _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if commit.returncode != 0:
        raise UsageError(f"unknown git ref {ref!r}")
    sha = commit.stdout.decode().strip()
    archive = _git("archive", "--format=tar", sha)
    if archive.returncode != 0:
        raise UsageError(f"git archive {ref}: {_last_line(archive.stderr)}")
    from depot.review.base_tree import BaseTreeError, materialise

    with tempfile.TemporaryDirectory(prefix="depot-base-") as directory:
        tree = Path(directory)
        try:
            materialise(archive.stdout, tree)
        except BaseTreeError as error:
            raise UsageError(f"at {ref}: {error}") from None
        if not (tree / "depot" / "review" / "plan.py").is_file():
            raise UsageError(f"{ref} has no depot plan to compare with")
        command = [sys.executable, "-m", "depot", "plan", "--stack", stack, "--format", "json"]
        for profile in profiles:
            command += ["--profile", profile]
        result = subprocess.run(  # noqa: S603 - our own interpreter and module
            command,
            cwd=tree,
            env=_env_for(tree, sha, fingerprint_key),
            capture_output=True,
            check=False,
        )
    if result.returncode != 0:
        # One line, whatever the ref's code printed (an older depot's traceback included):
        # its last line says what went wrong.
        message = _last_line(result.stderr).removeprefix("depot plan: ")
        raise UsageError(f"at {ref}: {message}")
    from depot.review.planned import Plan

    try:
        return Plan.from_json(json.loads(result.stdout))
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"at {ref}: depot plan printed no plan that this depot reads") from None


def _last_line(output: bytes) -> str:
    """The last line of a program's output, printable and short: for a one-line error."""
    lines = output.decode(errors="replace").strip().splitlines() or ["(no message)"]
    line = "".join(c if c.isprintable() else "?" for c in lines[-1])
    return line if len(line) <= 300 else line[:299] + "…"


def _env_for(tree: Path, commit: str, fingerprint_key: bytes | None) -> dict[str, str]:
    # The ref's own `depot` package must shadow the installed one; the tree has no .git, so
    # pushed images are tagged with the ref's commit, as a deploy of that commit would.
    env = {**os.environ, "PYTHONPATH": str(tree), "DEPOT_RELEASE_COMMIT": commit}
    env.pop(FINGERPRINT_KEY_VARIABLE, None)
    if fingerprint_key is not None:
        env[FINGERPRINT_KEY_VARIABLE] = fingerprint_key.hex()
    return env


def _git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(  # noqa: S603 - fixed git subcommands
        ["git", *args],  # noqa: S607 - git from PATH, as a developer runs it
        cwd=PROJECT_ROOT,
        capture_output=True,
        check=False,
    )


if __name__ == "__main__":
    sys.exit(main())
