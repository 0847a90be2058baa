"""The passwords the depot rotates in place, and how postgres is told a new one.

A rotation is one catalogue, read by the program (``depot.components.rotation``: a command that
tells the running service on ``pulumi up``), by ``depot graph`` (which draws that command) and by
``depot rotate`` (``depot.host.rotate``: the same for a Compose depot). It lives here, below all
three, so the program never imports a day-two module.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from depot.catalog import SecretName, ServiceSpec, service

SCRAM_ITERATIONS = 4096  # postgres' own default (scram_iterations)


@dataclass(frozen=True)
class Rotation:
    """One secret the depot can rotate: which service holds it and how it is told."""

    secret: SecretName
    holder: ServiceSpec


ROTATIONS = {
    "database-password": Rotation("database_password", service("postgres")),
    "grafana-admin-password": Rotation("grafana_admin_password", service("grafana")),
}


def scram_verifier(password: str, salt: bytes | None = None) -> str:
    """What postgres stores for ``password``: SCRAM-SHA-256 (RFC 7677), as psql's \\password."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, SCRAM_ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    return f"SCRAM-SHA-256${SCRAM_ITERATIONS}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def alter_role_statement(password: str, role: str = "postgres", salt: bytes | None = None) -> str:
    """The SQL sent on psql's stdin: logging off for this session, then the verifier.

    ``salt`` as in ``scram_verifier``: random unless given (the Pulumi program gives a stable one).
    """
    return (
        "SET log_statement = 'none';\n"
        "SET log_min_error_statement = 'panic';\n"
        "SET log_min_duration_statement = -1;\n"
        f"ALTER ROLE {role} PASSWORD '{scram_verifier(password, salt)}';\n"
    )
