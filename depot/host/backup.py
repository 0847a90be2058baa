"""``depot backup``, ``backups``, ``restore``: the backup service's own command, run for you.

The work is done in the backup container (``depot-backup``): it holds the stack's own
``pg_dump``/``pg_restore`` (its image is built on the stack's postgres image), ``age`` and
``rclone``, the rclone credentials and the database password. These commands find that container
on the stack's Docker host (``DOCKER_HOST``, as ``depot rotate``: see ``depot.host.docker``) and
run ``depot-backup run``, ``list``, ``waiting`` or ``restore`` in it with ``docker exec``.

The age identity (the private key a restore decrypts with) lives on the operator's machine, never
in the deployment. ``depot restore --identity FILE`` reads it here — from a file only its owner
can read, as ssh insists for its keys — and hands it to ``docker exec --interactive`` on stdin:
never on a command line (``ps`` shows those to every user), in an environment, a file on the
host or anything printed.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from depot.catalog import BACKUP
from depot.exit_status import ExitStatus
from depot.host.docker import DockerCli, DockerError, last_line
from depot.outputs.swarm_stack import STACK_NAME
from depot.types import Runtime

BACKUP_CONTAINER = BACKUP.container_name
"""The backup service's container (host runtime) and service (swarm runtime) name."""
SWARM_SERVICE_LABEL = "com.docker.swarm.service.name"
SWARM_SERVICES = (BACKUP_CONTAINER, f"{STACK_NAME}_{BACKUP.name}")
"""The backup's swarm service as ``pulumi up`` names it, and as ``docker stack deploy`` of the
exported stack file (``depot compose --stack S`` on a swarm stack) does: ``depot_backup``."""
BACKUP_COMMAND = "depot-backup"
LATEST = "latest"

DEFAULT_TIMEOUT = 3600.0
"""Seconds a backup or restore may take (``--timeout``); a listing gets the CLI's default."""

IDENTITY_LIMIT = 64 * 1024  # an age identity file is a few hundred bytes; a bigger one is not one
IDENTITY_MARK = "AGE-SECRET-KEY-1"
# What a backup name may be: the name `depot backups` lists (<stack>-<UTC stamp>.dump[.age]),
# or `latest`. Never a path, never an option, nothing a shell or rclone reads specially.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
_SIZE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


class BackupError(Exception):
    """Nothing was asked of the backup container (absent, stopped, not the backup image, a bad
    input); one line."""


class IdentityError(BackupError):
    """The identity file cannot be used; the message names it and never shows its content."""


@dataclass(frozen=True)
class Outcome:
    """What ``depot-backup`` said in the container, and whether it succeeded."""

    stdout: str
    stderr: str
    status: ExitStatus  # OK: it did what was asked; ATTENTION: it refused or failed (stderr: why)


@dataclass(frozen=True)
class Backup:
    """One line of ``depot-backup list``: a good backup in one place."""

    name: str
    time: str  # UTC, ISO 8601
    size: int  # bytes
    where: str  # "local" or the rclone remote


# --- finding the container ----------------------------------------------------------------


def backup_container(cli: DockerCli, runtime: Runtime) -> str:
    """The running backup container ``cli``'s engine has, by name or ID; else ``BackupError``."""
    if runtime == "swarm":
        return _swarm_task(cli)
    found = cli.inspect("container", BACKUP_CONTAINER)
    if not found or not found[0].get("State", {}).get("Running"):
        state = "stopped" if found else "not running"
        raise BackupError(
            f"{BACKUP_CONTAINER} is {state} at {cli.host}: deploy the stack (pulumi up, or "
            "docker compose up) and try again; nothing was done"
        )
    return BACKUP_CONTAINER


def _swarm_task(cli: DockerCli) -> str:
    """The container of the backup service's task on the node ``cli`` talks to."""
    result = cli.run(
        "container", "ls", "--no-trunc",
        "--format", f'{{{{.ID}}}} {{{{.Label "{SWARM_SERVICE_LABEL}"}}}}',
        "--filter", f"label={SWARM_SERVICE_LABEL}",
        "--filter", "status=running",
    )  # fmt: skip
    if result.returncode != 0:
        raise DockerError(f"docker container ls at {cli.host}: {last_line(result.stderr)}")
    for line in result.stdout.splitlines():
        container, _, service = line.partition(" ")
        if service.strip() in SWARM_SERVICES:
            return container
    raise BackupError(
        f"no task of the swarm service {' or '.join(SWARM_SERVICES)} runs on the node "
        f"{cli.host} names{_where_it_runs(cli)}: it runs beside postgres, on the data node; "
        "point --docker-host at that node; nothing was done"
    )


def _where_it_runs(cli: DockerCli) -> str:
    """`` (it runs on NODE)`` when this node is a manager that knows; else nothing."""
    for service in SWARM_SERVICES:
        try:
            result = cli.run(
                "service", "ps", "--filter", "desired-state=running", "--format", "{{.Node}}",
                "--", service,
            )  # fmt: skip
        except DockerError:
            return ""  # this node cannot say (not a manager, or it did not answer)
        nodes = sorted(set(result.stdout.split())) if result.returncode == 0 else []
        if nodes:
            return f" (its task runs on {', '.join(nodes)})"
    return ""


# --- the commands --------------------------------------------------------------------------


def run_backup(cli: DockerCli, container: str, timeout: float = DEFAULT_TIMEOUT) -> Outcome:
    """One backup now, as the schedule takes them (dump, verify, encrypt, copy, prune)."""
    return _exec(cli, container, ("run",), timeout=timeout)


@dataclass(frozen=True)
class Listing:
    """The good backups, newest first, one entry per place that holds one; ``problem``: what
    could not be listed (a target that did not answer), the rest being listed still."""

    backups: list[Backup]
    problem: str | None = None


def list_backups(cli: DockerCli, container: str) -> Listing:
    """What ``depot-backup list`` finds in every place: the local volume and each target."""
    outcome = _exec(cli, container, ("list",), timeout=None)
    backups = [parse_backup(line) for line in outcome.stdout.splitlines() if line.strip()]
    if outcome.status == 0:
        return Listing(backups)
    return Listing(backups, outcome.stderr.strip() or f"{BACKUP_COMMAND} list failed")


@dataclass(frozen=True)
class Waiting:
    """One line of ``depot-backup waiting``: a backup on the host that some target has no
    verified copy of yet. The agent never prunes it from the host until every target has one."""

    name: str
    time: str  # UTC, ISO 8601: when it was taken
    size: int  # bytes
    waited: int  # seconds since it was taken
    overdue: bool  # it has waited longer than one schedule interval (the agent is unhealthy)
    targets: tuple[str, ...]  # the targets without a verified copy


@dataclass(frozen=True)
class WaitingList:
    """The backups waiting to leave the host, oldest first; ``problem``: why the container
    could not say (then ``backups`` is empty and means nothing)."""

    backups: list[Waiting]
    problem: str | None = None


def waiting_backups(cli: DockerCli, container: str) -> WaitingList:
    """What ``depot-backup waiting`` finds: the host's backups not yet verified on every
    target. Reads the backup volume only (no target is asked)."""
    outcome = _exec(cli, container, ("waiting",), timeout=None)
    if outcome.status != 0:
        said = last_line(outcome.stderr) if outcome.stderr.strip() else "no reason given"
        return WaitingList([], f"{BACKUP_COMMAND} waiting failed: {said}")
    return WaitingList([parse_waiting(line) for line in outcome.stdout.splitlines() if line])


def restore(
    cli: DockerCli,
    container: str,
    name: str,
    identity: str | None,
    *,
    dry_run: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> Outcome:
    """Restore backup ``name`` (or ``latest``) into a fresh database and swap it in.

    ``identity`` (the age identity file's text) goes to the container on stdin only. Whatever
    the container says is returned with every identity line in it masked, in case a tool there
    ever echoes its input.
    """
    check_backup_name(name)
    command = ("restore", name, *(("--dry-run",) if dry_run else ()))
    outcome = _exec(cli, container, command, stdin=identity, timeout=timeout)
    if identity is None:
        return outcome
    return Outcome(_mask(outcome.stdout, identity), _mask(outcome.stderr, identity), outcome.status)


def _exec(
    cli: DockerCli,
    container: str,
    command: tuple[str, ...],
    *,
    stdin: str | None = None,
    timeout: float | None,
) -> Outcome:
    interactive = ("--interactive",) if stdin is not None else ()
    try:
        result = cli.run(
            "exec", *interactive, container, BACKUP_COMMAND, *command, stdin=stdin, timeout=timeout
        )
    except DockerError as error:
        if command[0] == "list":
            raise
        # The docker client gave up; the command goes on in the container until it ends.
        raise BackupError(
            f"{error}; {BACKUP_COMMAND} {command[0]} may still be running in {container}: see "
            "`depot backups` before starting another"
        ) from None
    said = result.stderr + result.stdout
    if result.returncode in (126, 127) and ("executable file not found" in said or not said):
        raise BackupError(
            f"{container} has no {BACKUP_COMMAND} command: it is not the depot's backup image"
        )
    status = ExitStatus.OK if result.returncode == 0 else ExitStatus.ATTENTION
    return Outcome(result.stdout, result.stderr, status)


def _mask(text: str, identity: str) -> str:
    for line in identity.splitlines():
        secret = line.strip()
        if secret and not secret.startswith("#"):
            text = text.replace(secret, "[identity]")
    return text


# --- inputs --------------------------------------------------------------------------------


def check_backup_name(name: str) -> str:
    """``name`` when it can name a backup; else ``BackupError`` saying what can."""
    if not _NAME.fullmatch(name):
        raise BackupError(
            f"--from {name!r}: is not a backup name; use one `depot backups` lists "
            "(e.g. prod-20250101T000000Z.dump.age) or latest"
        )
    return name


def read_identity(path: Path) -> str:
    """The text of the age identity file ``path``, refused unless only its owner can read it.

    Opened once and checked through that descriptor, so what is checked is what is read (and
    without waiting: a named pipe in its place is refused, not read from).
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as error:
        raise IdentityError(f"--identity {path}: {_os_reason(error)}") from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise IdentityError(f"--identity {path}: is not a file; give the age identity file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise IdentityError(
                f"--identity {path}: is open to other users (mode {mode:04o}); a private key must "
                f"be readable by its owner only: chmod 600 {path}"
            )
        if info.st_size > IDENTITY_LIMIT:
            raise IdentityError(
                f"--identity {path}: is {info.st_size} bytes, not an age identity file "
                f"(at most {IDENTITY_LIMIT})"
            )
        content = os.read(descriptor, IDENTITY_LIMIT + 1)
    finally:
        os.close(descriptor)
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if IDENTITY_MARK not in text.upper():
        raise IdentityError(
            f"--identity {path}: holds no age identity (a line {IDENTITY_MARK}…, as "
            "`age-keygen` writes it)"
        )
    return text


def _os_reason(error: OSError) -> str:
    if error.errno == errno.ENOENT:
        return "no such file"
    return error.strerror or str(error)


# --- output --------------------------------------------------------------------------------


def parse_backup(line: str) -> Backup:
    """One ``depot-backup list`` line: name, UTC time, size in bytes, where (tab-separated)."""
    fields = line.rstrip("\n").split("\t")
    if len(fields) != 4 or not fields[2].isdigit():
        raise BackupError(f"{BACKUP_COMMAND} list printed a line this depot cannot read: {line!r}")
    name, time, size, where = fields
    return Backup(name, time, int(size), where)


def parse_waiting(line: str) -> Waiting:
    """One ``depot-backup waiting`` line: name, UTC time, size, seconds waited,
    ``overdue``/``recent``, the targets without a copy (space-separated), tab-separated."""
    fields = line.split("\t")
    if (
        len(fields) != 6
        or not fields[2].isdigit()
        or not fields[3].isdigit()
        or fields[4] not in ("overdue", "recent")
        or not fields[5].split()
    ):
        raise BackupError(
            f"{BACKUP_COMMAND} waiting printed a line this depot cannot read: {line!r}"
        )
    name, time, size, waited, state, targets = fields
    return Waiting(name, time, int(size), int(waited), state == "overdue", tuple(targets.split()))


def waiting_report(waiting: list[Waiting]) -> str:
    """How many backups wait to leave the host, then one line each, oldest first."""
    if not waiting:
        return "backups waiting to leave the host: 0\n"
    lines = [
        f"backups waiting to leave the host: {len(waiting)} (kept here, never pruned, until "
        "every target holds a verified copy)\n"
    ]
    width = max(len(w.name) for w in waiting)
    for w in waiting:
        late = ", longer than the schedule" if w.overdue else ""
        lines.append(
            f"  {w.name:<{width}}  taken {w.time}, waiting {human_duration(w.waited)}{late}; "
            f"not yet on: {' '.join(w.targets)}\n"
        )
    return "".join(lines)


def human_duration(seconds: int) -> str:
    """``seconds`` in its largest unit and the next one (``3d 4h``, ``2h 5m``, ``40s``)."""
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    for index, (unit, size) in enumerate(units):
        if seconds >= size or unit == "s":
            text = f"{seconds // size}{unit}"
            if index + 1 < len(units):
                smaller, smaller_size = units[index + 1]
                rest = seconds % size // smaller_size
                text += f" {rest}{smaller}" if rest else ""
            return text
    raise AssertionError("unreachable: the loop ends on seconds")


def backups_table(backups: list[Backup]) -> str:
    """The listing as aligned columns, newest first, with sizes a person reads."""
    rows = [("NAME", "TAKEN (UTC)", "SIZE", "WHERE")]
    rows += [(b.name, b.time, human_size(b.size), b.where) for b in backups]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    return "".join(
        f"{name:<{widths[0]}}  {time:<{widths[1]}}  {size:>{widths[2]}}  {where}\n"
        for name, time, size, where in rows
    )


def human_size(size: int) -> str:
    """``size`` bytes in the largest binary unit that keeps it at least 1 (``1.4 MiB``)."""
    value, unit = float(size), 0
    while value >= 1024 and unit < len(_SIZE_UNITS) - 1:
        value, unit = value / 1024, unit + 1
    return f"{size} B" if unit == 0 else f"{value:.1f} {_SIZE_UNITS[unit]}"
