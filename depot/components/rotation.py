"""A password rotated in place: the running service takes the new value before its dependents.

postgres reads ``POSTGRES_PASSWORD_FILE`` and grafana its admin password only when they first
initialise their data, so a new password in the stack alone locks the depot out of its own
database. For each password, a ``command.local.Command`` runs where ``pulumi up`` runs, against
the stack's Docker host (``DOCKER_HOST`` in its environment, never on its command line):

- postgres: ``docker exec -i depot-postgres psql`` with ``ALTER ROLE … PASSWORD
  'SCRAM-SHA-256$…'`` on stdin — a verifier computed here, so the plaintext is in no input of
  the command, and statement logging is off for the session;
- grafana: ``docker exec -i depot-grafana grafana cli admin reset-admin-password
  --password-from-stdin``, the password on stdin (a secret input: the CLI takes nothing else).

The command depends on the holder's container and the dependents' containers depend on it, so
``up`` recreates postgres (its password file changed), alters the role in the existing volume,
and only then replaces dispatch with the new ``DATABASE_URL`` (and the backup service with its
new password file). Its stdin is its trigger: a new password replaces the command, which runs it
again; an unchanged one is no change. On the first
``up`` it runs too, harmlessly: it sets the password postgres' init (or grafana's first start)
has just set — and so it also covers a stack that gains this resource on an existing volume.
psql is tried up to five times (``with_retries``): on a first ``up`` postgres' init server may
still be stopping.

The verifier's salt is 16 random bytes (RFC 5802), a ``RandomBytes`` resource of this stack:
drawn on the first ``up``, kept encrypted in state, so an unchanged password gives the same
verifier (no new trigger) on every later ``up``, while no two deployments share a salt.
postgres hands the salt to any client that starts a login, so it must reveal nothing: neither
the password it was once derived from, nor which other deployments share a password.
"""

from __future__ import annotations

import base64
import shlex
from collections.abc import Sequence

import pulumi
import pulumi_command as command
import pulumi_random as random

from depot.catalog import SecretName, ServiceSpec
from depot.resource_types import rotation_name
from depot.rotations import alter_role_statement
from depot.ssh_options import ssh_wrapper

_PSQL = (
    "psql", "--no-psqlrc", "--quiet", "--no-password",
    "--set", "ON_ERROR_STOP=1",
    # An error names the statement's position but never echoes it (with its verifier).
    "--set", "VERBOSITY=terse", "--set", "SHOW_CONTEXT=never",
    "--username", "postgres", "--dbname", "postgres",
)  # fmt: skip
_GRAFANA_RESET = ("grafana", "cli", "admin", "reset-admin-password", "--password-from-stdin")


SALT_BYTES = 16  # RFC 5802 asks for a random salt; 16 bytes, as postgres draws its own


def exec_command(container: str, program: Sequence[str], *, user: str | None = None) -> str:
    """``docker exec -i`` of ``program`` in ``container``, as the shell line the command runs."""
    as_user = ["--user", user] if user else []
    return shlex.join(["docker", "exec", "--interactive", *as_user, container, *program])


def with_retries(line: str, *, attempts: int = 5, pause_seconds: int = 3) -> str:
    """``line`` run until it succeeds, ``attempts`` times at most, each fed the same stdin.

    On a first ``up`` postgres reports ready (``pg_isready`` over its socket) while its
    entrypoint's temporary init server still runs, and that server stops once before the real
    one starts: a psql in that gap is refused, not wrong. The stdin is read once into a shell
    variable (no process's argv or environment) and handed to each try by the builtin printf.
    """
    tries = " ".join(str(n) for n in range(1, attempts + 1))
    return (
        f'stdin="$(cat)"; for attempt in {tries}; do '
        f'printf "%s\\n" "$stdin" | {line} && exit 0; sleep {pause_seconds}; done; exit 1'
    )


def with_ssh_options(line: str, *, docker_host: str, ssh_options: Sequence[str]) -> str:
    """``line`` with every ``ssh`` the docker CLI starts given ``ssh_options`` first.

    As ``depot.host.docker`` does for ``depot`` commands: the CLI runs ``ssh`` from ``PATH``, so
    a private folder (``mktemp -d``: 0700) first on it holds an ``ssh`` that runs the real one
    (found before) with the options; the folder goes when the shell exits. Nothing changes for
    a host that is not ``ssh://`` or a stack without options.
    """
    if not (docker_host.startswith("ssh://") and ssh_options):
        return line
    script = ssh_wrapper('"$DEPOT_REAL_SSH"', ssh_options)
    return (
        'DEPOT_REAL_SSH="$(command -v ssh)" || { echo "ssh is not installed" >&2; exit 1; }; '
        'export DEPOT_REAL_SSH; wrapper="$(mktemp -d)" || exit 1; '
        "trap 'rm -rf \"$wrapper\"' EXIT; "
        f'printf "%s" {shlex.quote(script)} > "$wrapper/ssh" && chmod 700 "$wrapper/ssh" '
        f'|| exit 1; PATH="$wrapper:$PATH"; {line}'
    )


class PasswordRotation(pulumi.ComponentResource):
    """Tells ``holder``'s running container a new ``secret`` (see module docstring)."""

    command: command.local.Command

    def __init__(
        self,
        secret: SecretName,
        *,
        holder: ServiceSpec,
        holder_container: pulumi.Resource,
        password: pulumi.Output[str],
        docker_host: str,
        ssh_options: Sequence[str] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        name = rotation_name(secret)
        super().__init__("depot:rotation:PasswordRotation", name, None, opts)
        stdin: pulumi.Output[str]
        if holder.name == "postgres":
            line = with_retries(exec_command(holder.container_name, _PSQL, user="postgres"))
            salt = random.RandomBytes(
                f"{name}-salt", length=SALT_BYTES, opts=pulumi.ResourceOptions(parent=self)
            )
            stdin = pulumi.Output.all(password, salt.base64).apply(
                lambda values: alter_role_statement(values[0], salt=base64.b64decode(values[1]))
            )
        elif holder.name == "grafana":
            line = exec_command(holder.container_name, _GRAFANA_RESET)
            stdin = password.apply(lambda value: value + "\n")
        else:
            raise ValueError(f"{holder.name} holds {secret}, but no rotation tells it a new one")
        told: pulumi.Output[str] = pulumi.Output.secret(stdin)
        self.command = command.local.Command(
            name,
            create=with_ssh_options(line, docker_host=docker_host, ssh_options=ssh_options),
            stdin=told,
            triggers=[told],
            # Not a secret, and a short-lived process: the docker CLI finds the stack's host.
            environment={"DOCKER_HOST": docker_host},
            # Outputs echo inputs: keep the stdin (and the trigger that repeats it) encrypted.
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[holder_container],
                additional_secret_outputs=["stdin", "triggers"],
            ),
        )
        self.register_outputs({"command": self.command.id})
