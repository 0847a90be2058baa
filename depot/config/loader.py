"""Turn a stack's raw ``depot:`` config into ``DepotSettings``, or one clear error.

Pulumi hands a program its config as strings keyed ``namespace:key``; structured values (lists,
maps) arrive JSON-encoded. ``RawConfig`` is that bag plus the set of keys that were secret, from
wherever it came: the engine (``pulumi up``), tests, or ``depot.config.stack_file``.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from depot.config.settings import SECRET_KEYS, DepotSettings
from depot.types import COMMIT_PATTERN

NAMESPACE = "depot"
# Namespaces a stack file may use: this project's, and the engine's own (`pulumi:tags`). The
# program builds its providers from depot: settings, so `docker:host` would be silently unused.
READ_NAMESPACES = frozenset({NAMESPACE, "pulumi"})
SHOWN_LENGTH = 80
_TAG = re.compile(r"[a-z-]+\[.*\]")
# Keys whose values no error shows (see _withheld).
_WITHHELD = (("backup", "targets"),)


@dataclass(frozen=True)
class RawConfig:
    """A stack's config as the engine passes it: ``{"depot:restart": "always", ...}``."""

    values: Mapping[str, str]
    secret_keys: frozenset[str] = field(default_factory=frozenset)
    # Where each key path (`depot:limits.discovery.cpus`) is in the stack file: (line, column).
    positions: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    def where(self, source: str, path: str) -> str:
        """``source`` with the line and column of ``path``, or of the nearest key holding it."""
        candidate = path
        while candidate:
            if candidate in self.positions:
                line, column = self.positions[candidate]
                return f"{source}:{line}:{column}"
            cut = max(candidate.rfind("."), candidate.rfind("["))
            candidate = candidate[:cut] if cut > 0 else ""
        return source


class ConfigError(Exception):
    """Invalid stack config: one line per problem, safe to print (no secret, no whole config).

    Plain on purpose: tools that only read settings (`depot compose`, the policy) do not load
    Pulumi. The program raises it as a ``pulumi.RunError`` (``depot.config.engine``).
    """


def load_settings(stack: str, raw: RawConfig) -> DepotSettings:
    """Validate ``raw`` for ``stack``; raise ``ConfigError`` naming file, key, value and rule.

    Every problem is one line. A value is shown only where it is safe to: never under a secret
    key, never for a key nobody knows (a misspelt secret is still a secret), never a whole map.
    """
    source = f"Pulumi.{stack}.yaml"
    prefix = f"{NAMESPACE}:"
    document: dict[str, Any] = {}
    problems: list[str] = []
    for full_key, text in sorted(raw.values.items()):
        where = raw.where(source, full_key)
        namespace, colon, key = full_key.partition(":")
        if not colon or not namespace or not key:
            problems.append(
                f"{where}: {_printable(full_key)}: has no namespace; depot's settings are "
                f"written {NAMESPACE}:<key>, e.g. {NAMESPACE}:restart"
            )
            continue
        if namespace not in READ_NAMESPACES:
            problems.append(
                f"{where}: {_printable(full_key)}: namespace {_printable(namespace)!r} is read by "
                f"nothing in this project; settings are {NAMESPACE}:<key> (docs/configuration.md)"
            )
            continue
        if namespace != NAMESPACE:
            continue  # pulumi: keys belong to the engine
        if key in SECRET_KEYS and full_key not in raw.secret_keys:
            problems.append(
                f"{where}: {full_key}: is stored in plaintext; "
                f"set it with `pulumi config set --secret {full_key}`"
            )
            continue
        if key == "stack":  # derived from the stack's name, never configured
            problems.append(_unknown_key(where, full_key, DepotSettings))
            continue
        document[key] = decode_value(text)
    if problems:
        raise ConfigError("\n".join(problems))
    try:
        settings = DepotSettings.model_validate({**document, "stack": stack})
    except ValidationError as error:
        secret_keys = {k.removeprefix(prefix) for k in raw.secret_keys} | set(SECRET_KEYS)
        raise ConfigError(
            "\n".join(dict.fromkeys(_describe(source, raw, e, secret_keys) for e in error.errors()))
        ) from None
    except Exception as error:  # the last guard before a traceback reaches a deploy log
        # A validator that fails in a way nobody foresaw: its message, and a traceback, could
        # quote the decrypted config. Say what happened, not what was in it.
        raise ConfigError(
            f"{source}: could not be validated ({type(error).__name__}); this is a bug in "
            "depot, and its details are withheld because they may quote secret config"
        ) from None
    return _with_release_commit(settings, source)


def _with_release_commit(settings: DepotSettings, source: str) -> DepotSettings:
    """Pushed images are tagged with a commit: the configured one, CI's, or this checkout's."""
    if settings.registry is None or settings.release.commit is not None:
        return settings
    commit = os.environ.get("DEPOT_RELEASE_COMMIT") or _checkout_commit()
    if commit is None or not re.fullmatch(COMMIT_PATTERN, commit):
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


def decode_value(text: str) -> object:
    """Structured values arrive JSON-encoded; scalars stay strings for pydantic to coerce."""
    stripped = text.strip() if isinstance(text, str) else text
    if isinstance(stripped, str) and stripped[:1] in ("[", "{"):
        try:
            return json.loads(stripped)
        # Not JSON, nested beyond reason, or a number Python will not convert (over 4,300
        # digits: a ValueError of its own, not a JSONDecodeError).
        except (ValueError, RecursionError):
            return text
    return text


def _describe(source: str, raw: RawConfig, error: ErrorDetails, secret_keys: set[str]) -> str:
    loc = _location(error)
    path = f"{NAMESPACE}:" + "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc
    ).removeprefix(".")
    where = raw.where(source, path)
    path = _printable(path)
    names = [str(part) for part in loc]
    if error["type"] == "extra_forbidden":
        return _unknown_key(where, path, _model_at(DepotSettings, names[:-1]))
    if error["type"] == "missing":
        return f"{where}: {path}: is required"
    rule = re.sub(r" or instance of \w+", "", error["msg"].removeprefix("Value error, "))
    if rule.startswith("Input should be "):
        rule = "should be " + rule.removeprefix("Input should be ")
    if error["type"].endswith(("_type", "_parsing")):
        expected = _expected_at(DepotSettings, names)
        rule += f"; expected {expected}" if expected else ""
    if not names or names[0] in secret_keys:
        return f"{where}: {path}: {'[secret] ' if names else ''}{rule}"
    if (error.get("ctx") or {}).get("withhold") or _withheld(names):
        # The value may hold a credential: the rule names what is wrong, never the text.
        return f"{where}: {path}: [withheld] {rule}"
    return f"{where}: {path}: {_show(_input_at(error, loc))} {rule}"


def _withheld(names: list[str]) -> bool:
    """True at and around a key whose values no error shows, whatever the check that failed.

    A backup target is rclone's connection string: it may hold a credential that no check
    recognised, so neither a target nor a list or map holding one is ever shown.
    """
    return any(
        names[: len(key)] == list(key) or names == list(key[: len(names)]) for key in _WITHHELD
    )


def _location(error: ErrorDetails) -> tuple[int | str, ...]:
    """The key path of an error: where a model-level check says it is, else pydantic's own.

    Model-level checks name their key in ``ctx["key"]`` (``profiles.2``); without it an error
    raised on a whole model would be located at the model, and shown as all of its input.
    """
    ctx = error.get("ctx") or {}
    named = (
        tuple(int(p) if p.isdigit() else p for p in str(ctx["key"]).split("."))
        if "key" in ctx
        else ()
    )
    return tuple(part for part in error["loc"] if part != "[key]" and not _is_tag(part)) + named


def _is_tag(part: int | str) -> bool:
    """pydantic names union members and validators in ``loc`` (``function-after[...]``)."""
    return isinstance(part, str) and _TAG.fullmatch(part) is not None


def _input_at(error: ErrorDetails, loc: tuple[int | str, ...]) -> object:
    ctx = error.get("ctx") or {}
    if "key" not in ctx:
        return error.get("input")
    named = tuple(int(p) if p.isdigit() else p for p in str(ctx["key"]).split("."))
    return _lookup(error["input"], named)


def _unknown_key(where: str, path: str, model: type[BaseModel] | None) -> str:
    # The value is never shown: a misspelt key (`databasePasswd`) may well hold a secret.
    allowed = ""
    if model is not None:
        keys = sorted(f.alias or name for name, f in model.model_fields.items() if name != "stack")
        leaf = re.split(r"[.:]", path)[-1]
        near = difflib.get_close_matches(leaf, keys, n=1)
        allowed = (
            (f" (did you mean {near[0]}?)" if near else "")
            + "; known keys here: "
            + ", ".join(keys)
        )
    return f"{where}: {_printable(path)}: is not a known setting{allowed}"


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


def _expected_at(model: type[BaseModel], loc: list[str]) -> str | None:
    """What a value at ``loc`` must look like: its field's ``expected`` (JSON schema extra)."""
    holder = _model_at(model, loc[:-1]) if loc else None
    if holder is None:
        return None
    fields = {f.alias or name: f for name, f in holder.model_fields.items()}
    extra = fields[loc[-1]].json_schema_extra if loc[-1] in fields else None
    expected = extra.get("expected") if isinstance(extra, dict) else None
    return expected if isinstance(expected, str) else None


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
        elif isinstance(document, (list, tuple)) and isinstance(part, int) and part < len(document):
            document = document[part]
        else:
            return None
    return document


def _show(value: object) -> str:
    """A value on one line and at most ``SHOWN_LENGTH`` characters: a message, not a dump."""
    if value is None:
        return "(not set)"
    if isinstance(value, BaseModel):
        return "(this map)"
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= SHOWN_LENGTH else text[: SHOWN_LENGTH - 1] + "…"


def _printable(text: str) -> str:
    """A key as it may be printed: control characters escaped, long keys shortened."""
    shown = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return shown if len(shown) <= SHOWN_LENGTH else shown[: SHOWN_LENGTH - 1] + "…"
