"""The stack's passwords as Swarm secrets: files under /run/secrets that Swarm delivers to tasks.

A ``docker.Secret`` cannot change: any change replaces it, and Swarm refuses to delete a secret
that a service still uses ("secret is in use"). So each is named after its content: a new value
is a new name, created before the old one is deleted — the service moves to the new secret in
place, then the old one goes. With a fixed name the provider would have to delete first, and
that delete fails. The name comes from a keyed hash (HMAC-SHA256 under a generated key kept in
encrypted state): a plain hash of a password, in a name anyone may read, could be tested
against guesses; a keyed one cannot.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

import pulumi
import pulumi_docker as docker
import pulumi_random as random

from depot.catalog import SecretName

NAME_DIGITS = 12  # 48 bits of the HMAC: a new name for every new value, in practice


def secret_name(secret: SecretName, key: str, value: str) -> str:
    """``depot-database-password-<hmac>``: the Swarm secret's name for ``value`` under ``key``."""
    digest = hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()
    return f"depot-{secret.replace('_', '-')}-{digest[:NAME_DIGITS]}"


def secret_data(value: str) -> str:
    """What ``docker.Secret.data`` takes: standard base64 of the value."""
    return base64.b64encode(value.encode()).decode("ascii")


class SwarmSecrets(pulumi.ComponentResource):
    """One ``docker.Secret`` per password, named by its content (see module docstring)."""

    secrets: dict[SecretName, docker.Secret]

    def __init__(
        self,
        name: str,
        *,
        values: Mapping[SecretName, pulumi.Output[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("depot:secrets:SwarmSecrets", name, None, opts)
        naming_key = random.RandomPassword(
            f"{name}-naming-key", length=32, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        self.secrets = {}
        for secret, value in values.items():
            self.secrets[secret] = docker.Secret(
                secret.replace("_", "-"),
                name=_name(secret, naming_key.result, value),
                data=_data(value),
                opts=pulumi.ResourceOptions(
                    parent=self,
                    # Create the new secret, move the services to it, then delete the old one.
                    delete_before_replace=False,
                ),
            )
        self.register_outputs({secret: s.name for secret, s in self.secrets.items()})


def _name(
    secret: SecretName, key: pulumi.Output[str], value: pulumi.Output[str]
) -> pulumi.Output[str]:
    def named(pair: list[str]) -> str:
        return secret_name(secret, pair[0], pair[1])

    # Derived from two secrets, the name would be marked secret too; it reveals neither.
    return pulumi.Output.unsecret(pulumi.Output.all(key, value).apply(named))


def _data(value: pulumi.Output[str]) -> pulumi.Output[str]:
    encoded: pulumi.Output[str] = value.apply(secret_data)
    return pulumi.Output.secret(encoded)
