"""The files a Compose run of the depot reads its secrets from, and ``depot secrets init``.

The Compose export names these files (``./secrets/database_password.txt``,
``./secrets/dispatch.env``) and never holds a value. ``init_secret_files`` creates the missing ones
with random values, mode 0600, and never touches a file that exists: a password postgres already
initialised its data with must not change under it.
"""

from __future__ import annotations

import os
import secrets
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from depot.catalog import SERVICES, ServiceSpec, database_url

SECRETS_DIR = "secrets"  # beside the Compose file, at the project root; git-ignored
DATABASE_PASSWORD = "database_password"  # noqa: S105 - the secret's name, not a value
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


@dataclass(frozen=True)
class SecretFileResult:
    """What ``init_secret_files`` did with one file; never its content."""

    name: str
    created: bool
    problem: str | None = None


def init_secret_files(
    directory: Path,
    *,
    services: Sequence[ServiceSpec] = SERVICES,
    password: Callable[[], str] = new_password,
) -> list[SecretFileResult]:
    """Create every missing secret file the services need in ``directory``; keep existing ones.

    One ``<secret>.txt`` per secret a service reads from /run/secrets, and one ``<service>.env``
    per service that needs ``DATABASE_URL``, built from the database password file as the
    program builds it. The directory is created mode 0700, each file mode 0600.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    results: list[SecretFileResult] = []
    names = dict.fromkeys(secret.secret for spec in services for secret in spec.secret_files)
    for secret in names:
        name = secret_file_name(secret)
        results.append(SecretFileResult(name, _create(directory / name, password())))
    for spec in services:
        if spec.database_url:
            results.append(_database_env_file(directory, env_file_name(spec.name)))
    return results


def _database_env_file(directory: Path, name: str) -> SecretFileResult:
    password_file = directory / secret_file_name(DATABASE_PASSWORD)
    # As postgres' entrypoint reads a *_FILE (`$(< file)`): trailing newlines are not part of it.
    password = password_file.read_text().rstrip("\n")
    expected = f"DATABASE_URL={database_url(password)}"
    if _create(directory / name, expected + "\n"):
        return SecretFileResult(name, created=True)
    lines = (directory / name).read_text().splitlines()
    if expected in lines:
        return SecretFileResult(name, created=False)
    return SecretFileResult(
        name,
        created=False,
        problem=f"its DATABASE_URL does not match {password_file.name}; "
        "remove it and run again to rebuild it",
    )


def _create(path: Path, content: str) -> bool:
    """Write ``content`` to a new file, mode 0600; False (untouched) if the path exists."""
    try:
        # O_EXCL: never overwrite, and never follow a symlink planted at the path.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w") as file:
        os.fchmod(descriptor, 0o600)  # exact, whatever the umask
        file.write(content)
    return True
