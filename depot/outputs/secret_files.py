"""The files a Compose run of the depot reads its secrets from, and ``depot secrets init``.

The Compose export names these files (``./secrets/database_password.txt``,
``./secrets/dispatch.env``) and never holds a value. ``init_secret_files`` creates the missing ones
with random values, mode 0600, and never touches a file that exists: a password postgres already
initialised its data with must not change under it. What is in the way is reported, never
followed or replaced: a folder or symbolic link where a file goes, an empty or non-UTF-8
password, modes that let other users in.
"""

from __future__ import annotations

import os
import secrets
import stat
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from depot.catalog import SECRETS, SERVICES, SecretEnv, ServiceSpec

SECRETS_DIR = "secrets"  # beside the Compose file, at the project root; git-ignored
PASSWORD_LENGTH = 32
# Letters and digits, as the program's RandomPassword (special=False): nothing to escape anywhere.
_ALPHABET = string.ascii_letters + string.digits


def secret_file_name(secret: str) -> str:
    """The file holding ``secret``: ``database_password.txt``."""
    return f"{secret}.txt"


def env_file_name(service: str) -> str:
    """The env file of values Compose cannot build from a file secret: ``dispatch.env``."""
    return f"{service}.env"


def new_password() -> str:
    """A random password of 32 letters and digits (about 190 bits)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(PASSWORD_LENGTH))


class SecretsFolderError(Exception):
    """The secrets folder cannot be used at all: nothing was written (``depot secrets init``: 2)."""


@dataclass(frozen=True)
class SecretFileResult:
    """What ``init_secret_files`` did with one file; never its content.

    ``problem`` needs the user (the file is unusable or out of date, ``depot secrets init``
    exits 1); ``warning`` is said and changes nothing.
    """

    name: str
    created: bool
    problem: str | None = None
    warning: str | None = None
    skipped: bool = False  # neither there nor written


def init_secret_files(
    directory: Path,
    *,
    services: Sequence[ServiceSpec] = SERVICES,
    password: Callable[[], str] = new_password,
) -> list[SecretFileResult]:
    """Create every missing secret file the services need in ``directory``; keep existing ones.

    One ``<secret>.txt`` per secret a service reads from /run/secrets, and one ``<service>.env``
    per service that needs ``DATABASE_URL``, built from the database password file as the
    program builds it. The directory is created mode 0700, each file mode 0600. A secret that is
    given and never generated (``backup_rclone_config.txt``: rclone's configuration, with its
    credentials) is never made up: an existing one is checked like the others, a missing one is
    left to the Compose file that reads it, whose header says so. Raises ``SecretsFolderError``
    when ``directory`` is not a folder or other users can enter it.
    """
    _private_folder(directory)
    results: list[SecretFileResult] = []
    names = dict.fromkeys(secret.secret for spec in services for secret in spec.secret_files)
    given_only = {secret.name for secret in SECRETS if not secret.generated}
    for secret in names:
        name = secret_file_name(secret)
        if secret in given_only and not os.path.lexists(directory / name):
            continue  # optional: only a stack that names an rclone remote reads it
        if secret not in given_only and _create(directory / name, password()):
            results.append(SecretFileResult(name, created=True))
        else:
            _, problem, warning = _read_secret(directory / name)
            results.append(SecretFileResult(name, False, problem, warning))
    for spec in services:
        if spec.secret_env:
            results.append(_secret_env_file(directory, spec))
    return results


def _private_folder(directory: Path) -> None:
    """Make ``directory`` (0700), or accept an existing one only if no other user can enter it.

    Refused rather than tightened: a folder others could write may already hold a password
    file someone else planted, and a changed mode under the user's feet surprises. ssh refuses
    keys in the same situation.
    """
    try:
        directory.mkdir(mode=0o700, parents=True)
        directory.chmod(0o700)  # exact, whatever the umask
    except FileExistsError:
        if not directory.is_dir():
            raise SecretsFolderError(f"{directory}: is not a folder; --dir takes one") from None
    mode = stat.S_IMODE(directory.stat().st_mode)
    if mode & 0o077:
        raise SecretsFolderError(
            f"{directory}: mode {mode:04o} lets other users in (it must be 0700): refused, "
            f"nothing written; run `chmod 700 {directory}` and again"
        )


def _secret_env_file(directory: Path, spec: ServiceSpec) -> SecretFileResult:
    """``<service>.env``: the variables the service builds from secrets (``DATABASE_URL``)."""
    name = env_file_name(spec.name)
    expected: dict[str, tuple[str, Path]] = {}  # line → (variable, the file it comes from)
    for env in spec.secret_env:
        secret_file = directory / secret_file_name(env.secret)
        value, problem, _ = _read_secret(secret_file)
        if value is None:
            # Never build a variable from an empty or unreadable secret: say why, write nothing.
            why = f"cannot be built: {secret_file.name} {problem}"
            if os.path.lexists(directory / name):
                return SecretFileResult(name, created=False, problem=why)
            return SecretFileResult(name, created=False, problem=why, skipped=True)
        expected[_secret_env_line(env, value)] = (env.name, secret_file)
    if _create(directory / name, "".join(f"{line}\n" for line in expected)):
        return SecretFileResult(name, created=True)
    content, problem, warning = _read_secret(directory / name)
    if content is None:
        return SecretFileResult(name, False, problem, warning)
    stale = [source for line, source in expected.items() if line not in content.splitlines()]
    if not stale:
        return SecretFileResult(name, created=False, warning=warning)
    variable, secret_file = stale[0]
    return SecretFileResult(
        name,
        created=False,
        problem=f"its {variable} does not match {secret_file.name}; "
        "remove it and run again to rebuild it",
        warning=warning,
    )


def _read_secret(path: Path) -> tuple[str | None, str | None, str | None]:
    """``(content, problem, warning)`` of an existing secret file; content None when unusable.

    Only a regular file is read, never through a symbolic link; the content is what postgres'
    entrypoint reads of a ``*_FILE`` (``$(< file)``: without trailing newlines), and it must be
    UTF-8 text and not empty. No message carries any of it.
    """
    kind = _not_a_regular_file(path)
    if kind:
        return None, f"{kind}; remove it and run again", None
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        return None, f"cannot be read ({error.strerror})", None
    with os.fdopen(descriptor, "rb") as file:
        mode = stat.S_IMODE(os.fstat(descriptor).st_mode)
        raw = file.read()
    warning = None
    if mode & 0o077:
        warning = (
            f"mode {mode:04o} is looser than 0600; only the 0700 folder keeps other users out "
            "(as README's Compose workaround intends; otherwise `chmod 600` it)"
        )
    try:
        content = raw.decode("utf-8").rstrip("\n")
    except UnicodeDecodeError:
        return None, "is not UTF-8 text; remove it and run again", warning
    if not content:
        return None, "is empty; remove it and run again", warning
    return content, None, warning


def _not_a_regular_file(path: Path) -> str | None:
    """What is at ``path`` when it is not a regular file (without following a link)."""
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        dangling = "" if path.exists() else " to nothing"
        return f"is a symbolic link{dangling}, and secrets are never read or written through one"
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    if not stat.S_ISREG(mode):
        return "is not a regular file"
    return None


def _create(path: Path, content: str) -> bool:
    """Write ``content`` to a new file, mode 0600; False (untouched) if anything is at the path."""
    try:
        # O_EXCL: never overwrite, and with O_NOFOLLOW never follow a symlink planted at the path
        # (a dangling one included: O_CREAT without O_EXCL would create its target).
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return False
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            os.fchmod(descriptor, 0o600)  # exact, whatever the umask
            file.write(content)
    except BaseException:
        path.unlink()  # a half-written secret would be kept as it is on the next run
        raise
    return True


def read_secret(path: Path) -> tuple[str | None, str | None]:
    """``(content, problem)`` of a secret file, as ``depot secrets init`` reads it (no warning)."""
    if not os.path.lexists(path):
        return None, "does not exist; run `depot secrets init` first"
    content, problem, _ = _read_secret(path)
    return content, problem


def create_secret_file(path: Path, content: str) -> bool:
    """A new file of ``content``, mode 0600; False (untouched) if anything is at ``path``."""
    return _create(path, content)


def secret_env_content(spec: ServiceSpec, values: dict[str, str]) -> str:
    """``<service>.env`` for ``spec`` with each secret's value from ``values``."""
    return "".join(f"{_secret_env_line(env, values[env.secret])}\n" for env in spec.secret_env)


def _secret_env_line(env: SecretEnv, value: str) -> str:
    """``DATABASE_URL=postgres://…``: one variable built from its secret's value."""
    return f"{env.name}={env.render(value)}"
