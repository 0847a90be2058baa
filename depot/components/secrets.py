"""Passwords the depot needs: taken from secret stack config, or generated once and kept."""

from __future__ import annotations

import pulumi
import pulumi_random as random
from pydantic import SecretStr


class GeneratedOrGivenPassword(pulumi.ComponentResource):
    """A password that is always a secret Output.

    A stack that sets it (``pulumi config set --secret``) gets that value; otherwise a
    ``RandomPassword`` is generated on the first ``up`` and stays in (encrypted) state.
    """

    value: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        given: SecretStr | None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("depot:secrets:Password", name, None, opts)
        if given is not None:
            self.value = pulumi.Output.secret(given.get_secret_value())
        else:
            # Letters and digits only: the password is embedded in DATABASE_URL unescaped.
            generated = random.RandomPassword(
                name, length=32, special=False, opts=pulumi.ResourceOptions(parent=self)
            )
            self.value = pulumi.Output.secret(generated.result)
        self.register_outputs({"value": self.value})
