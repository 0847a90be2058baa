"""Turn a stack's raw ``depot:`` config into ``DepotSettings``, or one clear error.

Pulumi hands a program its config as strings keyed ``namespace:key``; structured values (lists,
maps) arrive JSON-encoded. ``RawConfig`` is that bag plus the set of keys that were secret, from
wherever it came: the engine (``pulumi up``), tests, or ``depot.config.stack_file``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin

import pulumi
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from depot.config.settings import SECRET_KEYS, DepotSettings

NAMESPACE = "depot"


@dataclass(frozen=True)
class RawConfig:
    """A stack's config as the engine passes it: ``{"depot:restart": "always", ...}``."""

    values: Mapping[str, str]
    secret_keys: frozenset[str] = field(default_factory=frozenset)


class ConfigError(pulumi.RunError):
    """Invalid stack config. Pulumi prints a RunError's message without a traceback."""


def load_settings(stack: str, raw: RawConfig) -> DepotSettings:
    """Validate ``raw`` for ``stack``; raise ``ConfigError`` naming file, key, value and rule."""
    source = f"Pulumi.{stack}.yaml"
    prefix = f"{NAMESPACE}:"
    document: dict[str, Any] = {}
    problems: list[str] = []
    for full_key, text in sorted(raw.values.items()):
        if not full_key.startswith(prefix):
            continue  # other namespaces (docker:, pulumi:) belong to their owners
        key = full_key.removeprefix(prefix)
        if key in SECRET_KEYS and full_key not in raw.secret_keys:
            problems.append(
                f"{source}: {full_key}: is stored in plaintext; "
                f"set it with `pulumi config set --secret {full_key}`"
            )
            continue
        if key == "stack":  # derived from the stack's name, never configured
            problems.append(_unknown_key(source, full_key, "[stack]", DepotSettings))
            continue
        document[key] = _decode(text)
    if problems:
        raise ConfigError("\n".join(problems))
    try:
        settings = DepotSettings.model_validate({**document, "stack": stack})
    except ValidationError as error:
        secret_keys = {k.removeprefix(prefix) for k in raw.secret_keys} | set(SECRET_KEYS)
        raise ConfigError(
            "\n".join(_describe(source, e, secret_keys) for e in error.errors())
        ) from None
    return _with_release_commit(settings, source)


def _with_release_commit(settings: DepotSettings, source: str) -> DepotSettings:
    """Pushed images are tagged with a commit: the configured one, CI's, or this checkout's."""
    if settings.registry is None or settings.release.commit is not None:
        return settings
    commit = os.environ.get("DEPOT_RELEASE_COMMIT") or _checkout_commit()
    if commit is None or not re.fullmatch(r"[0-9a-f]{7,40}", commit):
        raise ConfigError(
            f"{source}: {NAMESPACE}:release.commit: (not set) is required to tag pushed images; "
            "set it, or DEPOT_RELEASE_COMMIT, or deploy from a git checkout"
        )
    release = settings.release.model_copy(update={"commit": commit})
    return settings.model_copy(update={"release": release})


def _checkout_commit() -> str | None:
    """HEAD of the git checkout this program runs from, if it is one."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],  # noqa: S607 - git from PATH
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    return result.stdout.strip() if result.returncode == 0 else None


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
    return load_settings(pulumi.get_stack(), read_engine_config())


def _decode(text: str) -> object:
    """Structured values arrive JSON-encoded; scalars stay strings for pydantic to coerce."""
    stripped = text.strip() if isinstance(text, str) else text
    if isinstance(stripped, str) and stripped[:1] in ("[", "{"):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return text
    return text


def _describe(source: str, error: ErrorDetails, secret_keys: set[str]) -> str:
    ctx = error.get("ctx") or {}
    key_loc: tuple[int | str, ...] = tuple(str(ctx["key"]).split(".")) if "key" in ctx else ()
    error = {**error, "loc": key_loc + tuple(error["loc"])} if key_loc else error
    if key_loc:
        error["input"] = _lookup(error["input"], key_loc)
    loc = [str(part) for part in error["loc"] if part != "[key]"]
    path = f"{NAMESPACE}:" + "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}"
        for part in error["loc"]
        if part != "[key]"
    ).removeprefix(".")
    shown = "[secret]" if loc and loc[0] in secret_keys else _show(error.get("input"))
    if error["type"] == "extra_forbidden":
        return _unknown_key(source, path, shown, _model_at(DepotSettings, loc[:-1]))
    if error["type"] == "missing":
        return f"{source}: {path}: is required"
    rule = error["msg"].removeprefix("Value error, ")
    if rule.startswith("Input should be "):
        rule = "should be " + rule.removeprefix("Input should be ")
    if error["type"].endswith(("_type", "_parsing")):
        expected = _description_at(DepotSettings, loc)
        rule += f"; expected {expected}" if expected else ""
    return f"{source}: {path}: {shown} {rule}"


def _unknown_key(source: str, path: str, shown: str, model: type[BaseModel] | None) -> str:
    allowed = ""
    if model is not None:
        keys = sorted(f.alias or name for name, f in model.model_fields.items() if name != "stack")
        allowed = "; known keys here: " + ", ".join(keys)
    return f"{source}: {path}: {shown} is not a known setting{allowed}"


def _model_at(model: type[BaseModel], loc: list[str]) -> type[BaseModel] | None:
    """The settings model that holds the key at ``loc`` (to list its siblings in errors)."""
    current: object = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = {f.alias or name: f for name, f in current.model_fields.items()}
            if part not in fields:
                return None
            current = _unwrap(fields[part].annotation)
        elif get_origin(current) is dict:
            current = _unwrap(get_args(current)[1])
        else:
            return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _description_at(model: type[BaseModel], loc: list[str]) -> str | None:
    """The ``description`` of the field at ``loc``: what a value there must look like."""
    holder = _model_at(model, loc[:-1]) if loc else None
    if holder is None:
        return None
    fields = {f.alias or name: f for name, f in holder.model_fields.items()}
    return fields[loc[-1]].description if loc[-1] in fields else None


def _unwrap(annotation: object) -> object:
    """``X | None`` → ``X``; other annotations unchanged."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) is not dict and len(args) == 1:
        return args[0]
    return annotation


def _lookup(document: object, loc: tuple[int | str, ...]) -> object:
    """The value at ``loc`` in a model or mapping (for errors raised on a whole model)."""
    for part in loc:
        if isinstance(document, BaseModel):
            fields = {f.alias or name: name for name, f in type(document).model_fields.items()}
            document = getattr(document, fields.get(str(part), str(part)), None)
        elif isinstance(document, dict):
            document = document.get(part)
    return document


def _show(value: object) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, str):
        return repr(value)
    return json.dumps(value, default=str)
