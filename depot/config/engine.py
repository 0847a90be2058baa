"""The settings of the stack `pulumi up` is running: the engine's config, validated once.

The only part of ``depot.config`` that needs the Pulumi SDK; the rest reads stack files and
validates them without it.
"""

from __future__ import annotations

import pulumi

from depot.config.loader import ConfigError, RawConfig, load_settings
from depot.config.settings import DepotSettings


class StackConfigError(ConfigError, pulumi.RunError):
    """A ``ConfigError`` raised inside the program: Pulumi prints a RunError without a traceback."""


def read_engine_config() -> RawConfig:
    """The config of the running Pulumi program (``pulumi up``, or mocks in tests)."""
    # The language host passes config through the environment; tests and the automation API
    # set it in-process. Pulumi's own reader merges both the same way, in this order.
    values: dict[str, str] = dict(pulumi.runtime.config.get_config_env())
    values.update(pulumi.runtime.config.CONFIG.get())
    secret_keys = set(pulumi.runtime.config.get_config_secret_keys_env())
    secret_keys |= pulumi.runtime.config._SECRET_KEYS.get()
    return RawConfig(values=values, secret_keys=frozenset(secret_keys))


def load_stack_settings() -> DepotSettings:
    """Settings of the stack being deployed, as Pulumi runs the program."""
    try:
        return load_settings(pulumi.get_stack(), read_engine_config())
    except ConfigError as error:
        raise StackConfigError(str(error)) from None
