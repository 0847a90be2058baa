"""``depot rotate``: a new password for a running Compose depot, told to the service first.

postgres reads ``POSTGRES_PASSWORD_FILE`` and grafana its admin password only when they first
initialise their data, so new files alone lock the depot out. Here the running service takes the
new password first, and the files change only once it has:

1. the new password is staged in ``<secret>.txt.next`` (mode 0600);
2. the service is told, over ``docker exec`` with the value on stdin: postgres gets
   ``ALTER ROLE … PASSWORD 'SCRAM-SHA-256$…'`` over its local socket — a verifier computed here,
   so not even the server sees the password, and statement logging is off for the session —,
   grafana ``grafana cli admin reset-admin-password --password-from-stdin``;
3. only then each ``<service>.env`` built from it (dispatch's ``DATABASE_URL``) is rewritten,
   then ``<secret>.txt`` (both by rename: a reader sees the old file or the new one);
4. the services that hold the value in their environment are recreated (``docker compose up
   --no-deps --force-recreate --wait``, together), and so are those that read its file (the backup
   service): Compose bind-mounts the file, and a file replaced by rename is one a running
   container no longer sees.

The password is never on a command line, in a long-lived process's environment or in a log.
Interrupted before step 2 ends, the depot keeps the old password and works; after it, postgres
has the new one while ``.next`` says so: running ``depot rotate`` again resumes with it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from depot.catalog import SERVICES, ServiceSpec
from depot.host.docker import DockerCli, DockerError, last_line
from depot.outputs.secret_files import (
    create_secret_file,
    env_file_name,
    new_password,
    read_secret,
    secret_env_content,
    secret_file_name,
)
from depot.rotations import ROTATIONS, alter_role_statement

STAGED_SUFFIX = ".next"
RECREATE_SECONDS = 60  # stopping the old container (its grace period) and creating the new one


class RotationError(Exception):
    """Nothing was rotated (or a rotation stopped); the message says in which state."""


@dataclass(frozen=True)
class ComposeProject:
    """The Compose files and project name the depot was started with (``docker compose -f``)."""

    files: tuple[Path, ...]
    name: str | None = None

    def command(self, cli: DockerCli) -> list[str]:
        """``docker-compose`` (the venv's or PATH's), else the docker CLI's ``compose`` plugin."""
        beside = Path(sys.executable).parent / "docker-compose"
        found = str(beside) if beside.is_file() else shutil.which("docker-compose")
        command = [found] if found else ["docker", "compose"]
        for file in self.files:
            command += ["--file", str(file)]
        if self.name:
            command += ["--project-name", self.name]
        return command


def rotate(
    which: str,
    secrets_dir: Path,
    cli: DockerCli,
    compose: ComposeProject | None,
    services: Sequence[ServiceSpec] = SERVICES,
) -> list[str]:
    """Rotate ``which`` (a key of ``ROTATIONS``); the lines to print. Raises ``RotationError``.

    ``services``: those the depot runs (the stack's), whose readers of the secret are recreated.
    """
    rotation = ROTATIONS[which]
    current = secrets_dir / secret_file_name(rotation.secret)
    staged = current.with_name(current.name + STAGED_SUFFIX)
    old, problem = read_secret(current)
    if old is None:
        raise RotationError(f"{current}: {problem}; nothing changed")
    _running(cli, rotation.holder)
    lines = []
    new, resumed = _staged_password(staged)
    if resumed:
        lines.append(f"resuming the rotation {staged.name} records (it was interrupted)")
    try:
        if rotation.holder.name == "postgres":
            _alter_postgres_role(cli, rotation.holder, new)
        else:
            _reset_grafana_admin(cli, rotation.holder, new)
    except RotationError:
        if not resumed:
            staged.unlink()
        raise
    holder = rotation.holder.name
    lines.append(f"{holder}: took the new password; the old one no longer works")
    dependents = [
        spec for spec in services if any(e.secret == rotation.secret for e in spec.secret_env)
    ]
    readers = [
        spec
        for spec in services
        if spec.name != holder
        and spec not in dependents
        and any(f.secret == rotation.secret for f in spec.secret_files)
    ]
    for spec in dependents:
        _replace(
            secrets_dir / env_file_name(spec.name), secret_env_content(spec, {rotation.secret: new})
        )
        lines.append(f"wrote {secrets_dir / env_file_name(spec.name)}")
    keep_access(of=current, on=staged)
    os.replace(staged, current)
    lines.append(f"wrote {current}")
    lines += _recreate(cli, compose, [*dependents, *readers])
    return lines


def _staged_password(staged: Path) -> tuple[str, bool]:
    """The staged new password: one left by an interrupted rotation, else a new one."""
    if os.path.lexists(staged):
        value, problem = read_secret(staged)
        if value is None:
            raise RotationError(f"{staged}: {problem}; remove it and run again; nothing changed")
        return value, True
    password = new_password()
    if not create_secret_file(staged, password + "\n"):
        raise RotationError(f"{staged}: appeared while rotating; run again; nothing changed")
    return password, False


def _running(cli: DockerCli, spec: ServiceSpec) -> None:
    found = cli.inspect("container", spec.container_name)
    if not found or not found[0].get("State", {}).get("Running"):
        raise RotationError(
            f"{spec.container_name} is not running at {cli.host}: the new password must be told "
            "to it first; start the depot, then rotate; nothing changed"
        )


def _alter_postgres_role(cli: DockerCli, spec: ServiceSpec, password: str) -> None:
    result = cli.run(
        "exec", "--interactive", "--user", "postgres", spec.container_name,
        "psql", "--no-psqlrc", "--quiet", "--no-password", "--set", "ON_ERROR_STOP=1",
        "--username", "postgres", "--dbname", "postgres",
        stdin=alter_role_statement(password),
    )  # fmt: skip
    if result.returncode != 0:
        raise RotationError(
            f"postgres refused the new password ({_why(result)}); nothing changed: the depot "
            "keeps the old one"
        )


def _reset_grafana_admin(cli: DockerCli, spec: ServiceSpec, password: str) -> None:
    result = cli.run(
        "exec", "--interactive", spec.container_name,
        "grafana", "cli", "admin", "reset-admin-password", "--password-from-stdin",
        stdin=password + "\n",
    )  # fmt: skip
    if result.returncode != 0:
        raise RotationError(
            f"grafana refused the new admin password ({_why(result)}); nothing changed: grafana "
            "keeps the old one"
        )


def _why(result: subprocess.CompletedProcess[str]) -> str:
    """What a failed ``docker exec`` said, else its exit status (127: no such program)."""
    said = last_line(result.stderr + "\n" + result.stdout)
    return said if said != "no output" else f"exit status {result.returncode}"


def keep_access(*, of: Path, on: Path) -> None:
    """Give ``on`` the mode and owner of ``of``, the file it replaces (if any).

    A new file is 0600 and the writer's; the file it replaces may have been opened up on
    purpose (README's Compose workaround: 0644, so uid 70 and 472 read the bind-mounted file).
    A reader of the replaced file that reads it again (the backup service, each run) must still
    be able to read the new one.
    """
    try:
        before = os.lstat(of)
    except FileNotFoundError:
        return
    if os.geteuid() == 0:
        os.chown(on, before.st_uid, before.st_gid, follow_symlinks=False)
    os.chmod(on, stat.S_IMODE(before.st_mode))


def _replace(path: Path, content: str) -> None:
    """Write ``path`` anew by rename: 0600, never through a link, never half-written."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    if not create_secret_file(temporary, content):
        raise RotationError(f"{temporary}: in the way; remove it and run again")
    os.replace(temporary, path)


def _recreate(
    cli: DockerCli, compose: ComposeProject | None, specs: Sequence[ServiceSpec]
) -> list[str]:
    """Recreate ``specs`` together and wait for them healthy: none depends on another (each
    depends on the holder, which took the new value already), so one after another the second
    would wait for nothing but the first's health check."""
    if not specs:
        return []
    names = [spec.name for spec in specs]
    manual = "docker compose up --detach --no-deps --force-recreate"
    if compose is None:
        return [f"{name}: recreate it to read the new value: {manual} {name}" for name in names]
    command = [*compose.command(cli), "up", "--detach", "--no-deps", "--force-recreate", "--wait"]
    # Each may take its healthcheck's worst case (the backup's start period covers its first
    # backup: 5 min), plus a minute to stop the old container and create the new one.
    waits = max(spec.healthcheck.wait_timeout for spec in specs) + RECREATE_SECONDS
    result = _compose_run(cli, [*command, *names], timeout=waits)
    if result is not None:
        raise RotationError(
            f"{', '.join(names)}: not all recreated healthy ({result}); the password is rotated "
            f"and the files hold it: run `{manual} {' '.join(names)}`"
        )
    return [f"recreated {name}: healthy, with the new value" for name in names]


def _compose_run(cli: DockerCli, command: Sequence[str], timeout: float) -> str | None:
    """Run a Compose command against ``cli``'s host; None when it succeeded, else why not."""
    try:
        with cli.environment() as env:  # the stack's host, and its ssh options
            result = subprocess.run(  # noqa: S603 - fixed subcommand; files and names as values
                list(command), capture_output=True, text=True, check=False, env=env, timeout=timeout
            )
    except (OSError, subprocess.TimeoutExpired, DockerError) as error:
        return str(error)
    return None if result.returncode == 0 else last_line(result.stderr)
