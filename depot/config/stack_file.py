"""Read ``Pulumi.<stack>.yaml`` the way the Pulumi CLI hands it to a program.

Used where the CLI is not: tests, and tools that run the program under mocks. Values are encoded
as the engine encodes them (structured values as JSON, scalars as strings). A ``secure:`` value
can only be decrypted by the CLI with the stack's secrets provider, so it stays a secret of
unknown value: ``UNDECRYPTED`` stands in for it, and its key is marked secret.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import yaml

from depot.config.loader import ConfigError, RawConfig

UNDECRYPTED = "[secure value: only the Pulumi CLI can decrypt it]"


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML reads ``no``/``on`` as booleans (YAML 1.1); Pulumi's Go reader does not (1.2).

    Without this, ``depot:restart: no`` would arrive as ``false``.
    """


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def encode(value: Any) -> str:
    """One config value as the engine passes it to the program."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def read_stack_file(stack: str, project_dir: Path) -> RawConfig:
    """The ``config:`` of ``Pulumi.<stack>.yaml`` in ``project_dir``."""
    path = project_dir / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = sorted(
            p.name.removeprefix("Pulumi.").removesuffix(".yaml")
            for p in project_dir.glob("Pulumi.*.yaml")
        )
        raise ConfigError(f"{path.name}: no such stack file; known stacks: {', '.join(known)}")
    document = yaml.load(path.read_text(), Loader=_Yaml12Loader) or {}  # noqa: S506 - safe loader
    config = document.get("config") or {}
    values: dict[str, str] = {}
    secret_keys: set[str] = set()
    for key, value in config.items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            # The ciphertext's hash (the ciphertext is in the repository anyway) makes a changed
            # secure value a changed secret to `depot diff`, which compares fingerprints.
            ciphertext = hashlib.sha256(str(value["secure"]).encode()).hexdigest()[:16]
            values[key] = f"{UNDECRYPTED} {ciphertext}"
            secret_keys.add(key)
        else:
            values[key] = encode(value)
    return RawConfig(values, frozenset(secret_keys))
