"""The ``depot`` command: a thin layer over ``depot.review``.

Exit status: ``plan`` and ``graph`` 0, or 2 on error; ``diff`` like ``git diff --exit-code``:
0 no changes, 1 changes, 2 error; ``check`` 1 when a mandatory rule is violated; ``compose`` 0,
or 2 on error; ``secrets init`` 1 when a file it keeps is out of date or unusable (empty, not
UTF-8, a folder or symbolic link in its place), 2 when the folder cannot be used (not a folder,
open to other users); ``doctor`` 0 ready, 1 not ready (a problem on the host), 2 error;
``drift`` 0 none, 1 drift, 2 error (no engine answers); ``rotate`` 0 rotated, 1 the service
refused it or it stopped half-way (the message says which password works), 2 error; ``backup``
and ``restore`` 0 done, 1 the backup or restore failed (the backup container says why; a failed
restore leaves the database as it was), 2 error (no backup container, an unusable identity
file); ``backups`` 0, 1 when a place could not be listed (the others are) or a backup has
waited longer than one schedule interval to leave the host, 2 error. Any error is one line on
stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

# Each command imports what it runs, inside its handler: `depot compose` needs no Pulumi SDK
# and no provider, and a plan needs no policy. Process start is most of a command's time.
from depot.config.loader import ConfigError
from depot.host.backup import DEFAULT_TIMEOUT, BackupError
from depot.host.docker import DockerError
from depot.outputs.secret_files import SECRETS_DIR, SecretsFolderError
from depot.paths import PROJECT_ROOT
from depot.types import PROFILES

if TYPE_CHECKING:
    from depot.config.settings import DepotSettings
    from depot.host.docker import DockerCli
    from depot.review.planned import Plan

EXIT_ERROR = 2
# How `depot diff` hands its secret-fingerprint key to the `depot plan` it runs at the base ref:
# in that process's environment only, never on a command line (which `ps` shows to every user).
FINGERPRINT_KEY_VARIABLE = "DEPOT_DIFF_FINGERPRINT_KEY"


class UsageError(Exception):
    """A problem with what was asked (unknown ref, missing program at a ref)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``depot``; returns the exit status."""
    args = _parser().parse_args(argv)
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
    return int(status)


def _unexpected(error: BaseException) -> str:
    """One line for an exception nothing expected: its type and the line of depot it left."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if Path(f.filename).resolve().is_relative_to(PROJECT_ROOT)]
    where = (
        f" at {Path(ours[-1].filename).relative_to(PROJECT_ROOT)}:{ours[-1].lineno}" if ours else ""
    )
    return f"failed: {type(error).__name__}{where} (a bug in depot: please report it)"


def _fail(args: argparse.Namespace, message: str) -> int:
    command = " ".join(filter(None, (args.command, getattr(args, "action", None))))
    print(f"depot {command}: {message}", file=sys.stderr)
    return EXIT_ERROR


def _os_error(error: OSError) -> str:
    """``path: reason`` of an OSError, without Python's ``[Errno 13]``."""
    reason = error.strerror or str(error)
    return f"{error.filename}: {reason}" if error.filename is not None else reason


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="depot", description="Review the depot's infrastructure without the Pulumi engine."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    plan = commands.add_parser("plan", help="every resource a stack registers")
    plan.add_argument("--stack", required=True)
    _profiles(plan)
    plan.add_argument("--format", choices=["text", "json", "markdown"], default="text")
    plan.set_defaults(run=_plan)

    diff = commands.add_parser("diff", help="what changes between two plans")
    which = diff.add_mutually_exclusive_group(required=True)
    which.add_argument("--stacks", nargs=2, metavar=("A", "B"), help="compare stack A with B")
    which.add_argument("--base", metavar="REF", help="compare --stack at a git ref with now")
    diff.add_argument("--stack", default="dev", help="the stack for --base (default dev)")
    _profiles(diff)
    diff.add_argument("--format", choices=["text", "json", "markdown"], default="text")
    diff.set_defaults(run=_diff)

    check = commands.add_parser("check", help="the policy rules on a stack's plan")
    check.add_argument("--stack", required=True)
    _profiles(check)
    check.set_defaults(run=_check)

    graph = commands.add_parser("graph", help="the dependency graph of a stack")
    graph.add_argument("--stack", required=True)
    _profiles(graph)
    graph.add_argument("--format", choices=["mermaid", "dot"], default="mermaid")
    graph.set_defaults(run=_graph)

    _compose_command(commands)

    secrets = commands.add_parser("secrets", help="the secret files the Compose file reads")
    actions = secrets.add_subparsers(dest="action", required=True)
    init = actions.add_parser("init", help="create missing ones (random, mode 0600); keep others")
    init.add_argument(
        "--dir",
        type=Path,
        default=PROJECT_ROOT / SECRETS_DIR,
        help="default: secrets/ in this project, where the Compose file looks",
    )
    init.set_defaults(run=_secrets_init)

    doctor = commands.add_parser("doctor", help="what the stack needs from its host, before up")
    doctor.add_argument("--stack", required=True)
    _engine_host(doctor)
    _profiles(doctor)
    doctor.set_defaults(run=_doctor)

    drift = commands.add_parser("drift", help="the live Docker host against the stack's plan")
    drift.add_argument("--stack", required=True)
    _engine_host(drift)
    _profiles(drift)
    drift.set_defaults(run=_drift)

    rotate = commands.add_parser(
        "rotate", help="a new password, told to the running service first (Compose depot)"
    )
    rotate.add_argument("secret", choices=["database-password", "grafana-admin-password"])
    rotate.add_argument("--stack", default="dev", help="whose Docker host (default dev)")
    rotate.add_argument(
        "--dir",
        type=Path,
        default=PROJECT_ROOT / SECRETS_DIR,
        help="the secret files the depot was started with (default: secrets/ here)",
    )
    rotate.add_argument(
        "--compose-file",
        dest="compose_files",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="the Compose file(s) it was started with (default: compose.yaml here, if any)",
    )
    rotate.add_argument("--project-name", help="its Compose project name, if not the file's")
    rotate.set_defaults(run=_rotate, profiles=[])
    _backup_commands(commands)
    return parser


def _compose_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    compose = commands.add_parser(
        "compose", help="a stack as a Compose file (a swarm stack: a stack file)"
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
    backup = commands.add_parser("backup", help="take a backup now, as the schedule does")
    _backup_target(backup)
    _backup_timeout(backup)
    backup.set_defaults(run=_backup)

    backups = commands.add_parser("backups", help="the good backups, newest first, and where")
    _backup_target(backups)
    backups.set_defaults(run=_backups)

    restore = commands.add_parser(
        "restore", help="a backup into a fresh database, checked, then swapped in"
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


def _plan(args: argparse.Namespace) -> tuple[str, int]:
    from depot.review.plan import plan_stack
    from depot.review.render import dumps, plan_markdown, plan_text

    plan = plan_stack(args.stack, args.profiles, fingerprint_key=_fingerprint_key_given())
    render = {"json": lambda p: dumps(p.to_json()), "markdown": plan_markdown, "text": plan_text}
    return render[args.format](plan), 0


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


def _diff(args: argparse.Namespace) -> tuple[str, int]:
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
    return output, 0 if diff.empty else 1


def _check(args: argparse.Namespace) -> tuple[str, int]:
    from depot.config.loader import load_settings
    from depot.config.stack_file import stack_config
    from depot.policy.check import check_plan, report
    from depot.review.plan import plan_config

    config = stack_config(args.stack, args.profiles)  # read once: for the policy and the plan
    settings = load_settings(args.stack, config)
    plan = plan_config(args.stack, config, settings=settings)
    violations = check_plan(plan, settings.policy, postgres_major=settings.data.postgres_major)
    return report(violations, args.stack)


def _graph(args: argparse.Namespace) -> tuple[str, int]:
    # From the model, not the plan: the same graph (tests/test_graph.py holds them equal)
    # without the Pulumi SDK, whose imports would be most of the command's time.
    from depot.review.graph import to_dot, to_mermaid
    from depot.review.model_graph import model_graph

    graph = model_graph(_settings(args))
    return (to_dot(graph) if args.format == "dot" else to_mermaid(graph)), 0


def _compose(args: argparse.Namespace) -> tuple[str, int]:
    from depot.config.loader import load_settings
    from depot.config.stack_file import stack_config
    from depot.outputs.export import export_yaml

    text = export_yaml(load_settings(args.stack, stack_config(args.stack, args.profiles)))
    if args.output is None:
        return text, 0
    _write_export(args.output, text, force=args.force)
    where = args.output.resolve().parent
    note = "" if where == PROJECT_ROOT else f"; its relative paths start at {PROJECT_ROOT}"
    return f"wrote {args.output} (stack {args.stack}){note}\n", 0


def _write_export(output: Path, text: str, *, force: bool) -> None:
    """Write the Compose file to ``output``, or say in one line why it cannot be there."""
    from depot.outputs.output_file import OutputFileError, write_output

    try:
        write_output(output, text, force=force)
    except OutputFileError as error:
        raise UsageError(f"-o {output}: {error}") from None


def _secrets_init(args: argparse.Namespace) -> tuple[str, int]:
    from depot.outputs.compose import project_path
    from depot.outputs.secret_files import init_secret_files

    lines, status = [], 0
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
            status = 1
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


def _doctor(args: argparse.Namespace) -> tuple[str, int]:
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


def _drift(args: argparse.Namespace) -> tuple[str, int]:
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


def _rotate(args: argparse.Namespace) -> tuple[str, int]:
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
        return "", 1
    lines.append(f"depot rotate: {args.secret} rotated")
    return "".join(f"{line}\n" for line in lines), 0


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


def _relay(command: str, stdout: str, stderr: str, status: int) -> tuple[str, int]:
    """What the backup container said, in its order: its report on stdout, its complaint on
    stderr, then whether it failed."""
    sys.stdout.write(stdout)
    sys.stdout.flush()
    if stderr.strip():
        sys.stderr.write(stderr if stderr.endswith("\n") else stderr + "\n")
    if status != 0:
        why = " (see above)" if stderr.strip() else " without saying why"
        print(f"depot {command}: failed{why}", file=sys.stderr)
    return "", status


def _backup(args: argparse.Namespace) -> tuple[str, int]:
    from depot.host.backup import run_backup

    timeout = _timeout(args)
    cli, container = _backup_cli(args)
    outcome = run_backup(cli, container, timeout=timeout)
    return _relay("backup", outcome.stdout, outcome.stderr, outcome.status)


def _backups(args: argparse.Namespace) -> tuple[str, int]:
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
    return "", 1 if listing.problem is not None or overdue else 0


def _restore(args: argparse.Namespace) -> tuple[str, int]:
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
