"""The manual's reference pages, generated from the code they describe (``make docs``).

Settings come from the settings models (the docstring under each field) and the shipped stack
files; policy rules from their own metadata (``depot.policy.rules``); the
``depot`` commands from the CLI's parser; the topology from the graph ``depot graph`` draws of each
shipped stack. ``docs/hooks/reference.py`` hands these pages to MkDocs at build time: they are
never files in the repository, so they cannot drift from the code.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import itertools
import os
import re
import textwrap
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from depot.cli import _parser
from depot.config.loader import load_settings
from depot.config.settings import DepotSettings, RestartPolicy
from depot.config.stack_file import stack_config
from depot.paths import PROJECT_ROOT, project_relative
from depot.policy.rules import RULES
from depot.review.graph import to_mermaid
from depot.review.model_graph import model_graph

GENERATED = "<!-- generated from the code at build time (depot/tools/reference_docs.py) -->"
"""The first line of every generated page."""

HELP_WIDTH = "100"
"""Columns argparse formats help for: the same text on every machine."""


# --- shipped stacks ---------------------------------------------------------------------------


def shipped_stacks(project_dir: Path = PROJECT_ROOT) -> list[str]:
    """The stacks this repository ships (``Pulumi.<stack>.yaml``): dev and prod first."""
    names = [
        p.name.removeprefix("Pulumi.").removesuffix(".yaml")
        for p in project_dir.glob("Pulumi.*.yaml")
    ]
    return sorted(names, key=lambda s: (s != "dev", s != "prod", s))


@cache
def _stack_file(stack: str) -> Mapping[str, Any]:
    """The ``config:`` of a shipped stack file, as written (ours, so read plainly)."""
    document = yaml.safe_load((PROJECT_ROOT / f"Pulumi.{stack}.yaml").read_text())
    config = document.get("config") or {}
    return config if isinstance(config, dict) else {}


@cache
def _stack_settings(stack: str) -> DepotSettings:
    return load_settings(stack, stack_config(stack, []))


_ABSENT = object()


def _written(stack: str, key: tuple[str, ...]) -> object:
    """What ``stack`` writes at ``depot:<key>``, or ``_ABSENT``."""
    value: object = _stack_file(stack).get(f"depot:{key[0]}", _ABSENT)
    for part in key[1:]:
        if not isinstance(value, dict) or part not in value:
            return _ABSENT
        value = value[part]
    return value


# --- settings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One key a stack file may set, as the reference page shows it."""

    key: tuple[str, ...]  # without depot:, camelCase; "<service>" for a map's keys
    type: str
    default: str
    allowed: str
    description: str
    field_of: str  # the model and field it is, for a test's message

    @property
    def name(self) -> str:
        return "depot:" + ".".join(self.key)

    @property
    def written(self) -> bool:
        """True for a key a stack file holds a value at (not under a map's placeholder)."""
        return "<service>" not in self.key


def _optional(annotation: object) -> tuple[object, bool]:
    """``X | None`` → (X, True); anything else → (it, False)."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(args) < len(get_args(annotation)):
            return args[0], True
    return annotation, False


def _nested_model(annotation: object) -> type[BaseModel] | None:
    """The settings model a key's value is a map of keys of, if it is one."""
    inner, _ = _optional(annotation)
    if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
        return None
    # A model that parses itself from another form (``on-failure:3``) is written in that form.
    parses_itself = any(
        d.info.mode == "before" for d in inner.__pydantic_decorators__.model_validators.values()
    )
    return None if parses_itself else inner


def _map_of_models(annotation: object) -> type[BaseModel] | None:
    if get_origin(annotation) is dict:
        return _nested_model(get_args(annotation)[1])
    return None


def _raw_annotation(model: type[BaseModel], name: str) -> str:
    """The annotation as the code writes it (``dict[ServiceName, Port]``)."""
    for klass in model.__mro__:
        raw = getattr(klass, "__annotations__", {}).get(name)
        if raw is not None:
            return raw if isinstance(raw, str) else getattr(raw, "__name__", str(raw))
    return "?"


def _type_of(model: type[BaseModel], name: str, field: FieldInfo) -> str:
    if _contains(field.annotation, SecretStr):
        return "secret (`pulumi config set --secret`)"
    if _nested_model(field.annotation) is not None:
        return "map (its keys below)"
    written = _raw_annotation(model, name).removesuffix(" | None")
    if written.startswith("Annotated["):  # an inline constraint: the type it constrains
        written = written.removeprefix("Annotated[").split(",")[0]
    return f"`{written}`"


def _contains(annotation: object, wanted: type) -> bool:
    return annotation is wanted or any(_contains(a, wanted) for a in get_args(annotation))


def _bounds(metadata: list[Any]) -> str:
    """``from 1 to 50`` from a field's or type's ``ge``/``le`` constraints."""
    found: dict[str, object] = {}
    for item in metadata:
        for inner in item.metadata if isinstance(item, FieldInfo) else [item]:
            for bound in ("ge", "le", "gt", "lt"):
                if getattr(inner, bound, None) is not None:
                    found[bound] = getattr(inner, bound)
    low = found.get("ge", found.get("gt"))
    high = found.get("le", found.get("lt"))
    if low is not None and high is not None:
        return f"from {low} to {high}"
    return f"at least {low}" if low is not None else (f"at most {high}" if high else "")


def _allowed_values(annotation: object) -> str:
    """Literal values and bounds of a type, looking into lists and maps."""
    annotation, _ = _optional(annotation)
    origin = get_origin(annotation)
    if origin is Literal:
        return ", ".join(f"`{v}`" for v in get_args(annotation))
    if origin is Annotated:
        base, *metadata = get_args(annotation)
        return _allowed_values(base) or _bounds(metadata)
    if origin in (list, tuple):
        return _allowed_values(get_args(annotation)[0])
    if origin is dict:
        keys, values = (_allowed_values(a) for a in get_args(annotation))
        return "; ".join(p for p in (keys and f"keys {keys}", values and f"values {values}") if p)
    return ""


def _allowed(field: FieldInfo) -> str:
    extra = field.json_schema_extra
    expected = extra.get("expected") if isinstance(extra, dict) else None
    if isinstance(expected, str):
        return expected
    parts = [_allowed_values(field.annotation), _bounds(field.metadata)]
    return "; ".join(p for p in parts if p)


def show_value(value: object) -> str:
    """A value as a stack file writes it, in a code span."""
    if isinstance(value, RestartPolicy):
        retries = f":{value.max_retries}" if value.max_retries is not None else ""
        value = f"{value.name}{retries}"
    elif isinstance(value, BaseModel):
        value = value.model_dump(mode="json", by_alias=True, exclude_none=True)
    elif isinstance(value, tuple):
        value = list(value)
    elif not isinstance(value, (str, int, float, bool, list, dict, type(None))):
        value = str(value)
    if isinstance(value, dict) and "secure" in value:
        return "secret (encrypted in the stack file)"
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, allow_unicode=True)
    text = text.strip().removesuffix("...").strip()
    return f"`{text}`".replace("|", "\\|")


def _default(field: FieldInfo, parent_default: object) -> str:
    """The value a key has when a stack does not write it."""
    if field.is_required():
        return "required"
    own = field.get_default(call_default_factory=True)
    if _nested_model(field.annotation) is not None and own is not None:
        return "see its keys"
    shown = "unset" if own is None else show_value(own)
    if parent_default is _ABSENT:
        return shown
    inherited = getattr(parent_default, field.alias or "", _ABSENT)
    if inherited is _ABSENT or inherited == own:
        return shown
    # The parent's default sets it (retention: daily 7), but a parent written without it: own.
    return f"{show_value(inherited)}; {shown} in a parent written without it"


def _docstrings_of(klass: type) -> dict[str, str]:
    """The docstring written under each field ``klass`` itself declares (an annotated name
    followed by a string), as pydantic's ``use_attribute_docstrings`` reads them."""
    try:
        source = textwrap.dedent(inspect.getsource(klass))
    except (OSError, TypeError):
        return {}
    [statement] = ast.parse(source).body
    assert isinstance(statement, ast.ClassDef), klass
    found: dict[str, str] = {}
    for field, after in itertools.pairwise(statement.body):
        text = after.value if isinstance(after, ast.Expr) else None
        docstring = text.value if isinstance(text, ast.Constant) else None
        target = field.target if isinstance(field, ast.AnnAssign) else None
        if isinstance(target, ast.Name) and isinstance(docstring, str):
            found[target.id] = inspect.cleandoc(docstring)
    return found


@cache
def _field_docstrings(model: type[BaseModel]) -> dict[str, str]:
    """Each field's docstring: the one under it where ``model`` declares it, else the one in the
    nearest model it extends that does."""
    found: dict[str, str] = {}
    for klass in reversed(model.__mro__):
        if issubclass(klass, BaseModel) and klass is not BaseModel:
            found.update(_docstrings_of(klass))
    return found


def _description(model: type[BaseModel], name: str, field: FieldInfo) -> str:
    """A field's description: the one it was given, else the docstring under it."""
    described = field.description or _field_docstrings(model).get(name, "")
    return " ".join(described.split())


def settings(
    model: type[BaseModel] = DepotSettings,
    prefix: tuple[str, ...] = (),
    parent_default: object = _ABSENT,
) -> Iterator[Setting]:
    """Every key a stack may set, depth first, as the models declare them."""
    for name, field in model.model_fields.items():
        if field.exclude:
            continue  # not a setting (the stack's name)
        key = (*prefix, field.alias or name)
        yield Setting(
            key=key,
            type=_type_of(model, name, field),
            default=_default(field, parent_default),
            allowed=_allowed(field),
            description=_description(model, name, field),
            field_of=f"{model.__name__}.{name}",
        )
        nested = _nested_model(field.annotation)
        if nested is not None:
            default = field.get_default(call_default_factory=True)
            yield from settings(nested, key, _ABSENT if default is None else default)
        each = _map_of_models(field.annotation)
        if each is not None:
            yield from settings(each, (*key, "<service>"))


def _aliases_documented(path: Path) -> dict[str, str]:
    """Module-level names with the docstring under them, from ``path``'s source."""
    body = ast.parse(path.read_text()).body
    found: dict[str, str] = {}
    for statement, after in itertools.pairwise(body):
        target = statement.targets[0] if isinstance(statement, ast.Assign) else None
        text = after.value if isinstance(after, ast.Expr) else None
        docstring = text.value if isinstance(text, ast.Constant) else None
        if isinstance(target, ast.Name) and isinstance(docstring, str):
            found[target.id] = " ".join(docstring.split())
    return found


def _value_types(rows: list[Setting]) -> list[tuple[str, str]]:
    """The named types the settings use, with what each is (their docstrings)."""
    documented = {
        **_aliases_documented(PROJECT_ROOT / "depot" / "types.py"),
        **_aliases_documented(PROJECT_ROOT / "depot" / "config" / "settings.py"),
    }
    used = {word for row in rows for word in re.findall(r"[A-Z][A-Za-z]+", row.type)}
    named = {n: d for n, d in documented.items() if n in used}
    if "RestartPolicy" in used and RestartPolicy.__doc__:
        named["RestartPolicy"] = " ".join(RestartPolicy.__doc__.split())
    return sorted(named.items())


def settings_page() -> str:
    rows = list(settings())
    stacks = shipped_stacks()
    lines = [
        GENERATED,
        "# Settings reference",
        "",
        "Every key a stack file may set under `depot:` in `Pulumi.<stack>.yaml`, generated from "
        "the settings models (`depot/config/settings.py`) and the shipped stack files "
        f"({', '.join(f'`Pulumi.{s}.yaml`' for s in stacks)}). How they are read and checked: "
        "[Configuration](../configuration.md).",
        "",
        "| key | type | default |",
        "|---|---|---|",
        *(f"| [`{r.name}`](#{_anchor(r.name)}) | {r.type} | {r.default} |" for r in rows),
        "",
    ]
    for row in rows:
        lines += [f"## `{row.name}`", "", row.description, "", "| | |", "|---|---|"]
        lines += [f"| type | {row.type} |", f"| default | {row.default} |"]
        if row.allowed:
            lines.append(f"| allowed | {row.allowed} |")
        if row.written:
            for stack in stacks:
                value = _written(stack, row.key)
                shown = "not set" if value is _ABSENT else show_value(value)
                lines.append(f"| {stack} | {shown} |")
        lines.append("")
    lines += ["## Value types", "", "| type | what it is |", "|---|---|"]
    lines += [f"| `{name}` | {text} |" for name, text in _value_types(rows)]
    return "\n".join(lines) + "\n"


def _anchor(heading: str) -> str:
    """The id MkDocs' toc gives a heading (its default slugify)."""
    text = re.sub(r"[^\w\s-]", "", heading).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


# --- policy rules -----------------------------------------------------------------------------


def rules_page() -> str:
    stacks = shipped_stacks()
    policies = {s: _stack_settings(s).policy for s in stacks}
    header = " | ".join(stacks)
    lines = [
        GENERATED,
        "# Policy rules reference",
        "",
        "Every rule `depot check` and the CrossGuard pack apply, from the rules' own metadata "
        "(`depot/policy/rules.py`), with its level in each shipped stack (`depot:policy`). "
        "How they run, and the recorded exceptions: [Policy](../policy.md).",
        "",
        "| stack | enforcement | production rules |",
        "|---|---|---|",
        *(
            f"| {s} | {p.enforcement} | {'on' if p.production else 'off'} |"
            for s, p in policies.items()
        ),
        "",
        f"| rule | checks | {header} |",
        f"|---|---|{'---|' * len(stacks)}",
        *(
            f"| [`{r.id}`](#{r.id}) | {r.description} | "
            + " | ".join(policies[s].level(r.id) for s in stacks)
            + " |"
            for r in RULES
        ),
        "",
    ]
    for rule in RULES:
        lines += [
            f"## `{rule.id}`",
            "",
            f"**Checks:** {rule.description}.",
            "",
            f"**Fix:** {rule.fix}.",
            "",
            f"**Source:** {rule.source}.",
            "",
            "**Resources:** " + ", ".join(f"`{t}`" for t in sorted(rule.types)) + ".",
            "",
            "**Level:** " + ", ".join(f"{s} {policies[s].level(rule.id)}" for s in stacks) + ".",
            "",
        ]
    return "\n".join(lines) + "\n"


# --- commands ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """One ``depot`` command (``secrets init``: two words) and its parser."""

    words: tuple[str, ...]
    help: str
    parser: argparse.ArgumentParser


def _subcommands(
    parser: argparse.ArgumentParser, words: tuple[str, ...] = (), parent_help: str = ""
) -> Iterator[Command]:
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {a.dest: a.help or "" for a in action._choices_actions}
        for name, sub in action.choices.items():
            # A nested command's help continues its parent's: "the secret files …: create …".
            context = f"{parent_help}: " if parent_help and helps.get(name) else parent_help
            command = Command((*words, name), context + helps.get(name, ""), sub)
            nested = any(isinstance(a, argparse._SubParsersAction) for a in sub._actions)
            if not nested:
                yield command
            yield from _subcommands(sub, command.words, command.help)


def commands() -> list[Command]:
    """Every ``depot`` command the CLI's parser accepts."""
    return list(_subcommands(_parser()))


def _option_row(action: argparse.Action) -> str:
    flags = ", ".join(f"`{f}`" for f in action.option_strings) or f"`{action.dest}`"
    default = action.default
    if isinstance(default, Path):
        default = project_relative(default)  # the same on every checkout
    unset = default in (None, [], False, argparse.SUPPRESS) or action.required
    shown_default = "" if unset else show_value(default)
    choices = ", ".join(f"`{c}`" for c in action.choices) if action.choices else ""
    required = "yes" if action.required or not action.option_strings else ""
    text = " ".join((action.help or "").split())
    return f"| {flags} | {text} | {required} | {choices} | {shown_default} |"


def _sentence(text: str) -> str:
    return f"{text[:1].upper()}{text[1:]}." if text else ""


def _help_text(parser: argparse.ArgumentParser) -> str:
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_WIDTH
    try:
        return parser.format_usage()
    finally:
        if before is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = before


def commands_page() -> str:
    top = _parser()
    lines = [
        GENERATED,
        "# Commands reference",
        "",
        f"`depot`: {top.description} Generated from the CLI's parser (`depot/cli.py`); "
        "`depot <command> --help` prints the same.",
        "",
        "| command | what it does |",
        "|---|---|",
    ]
    found = commands()
    lines += [
        f"| [`depot {' '.join(c.words)}`](#{_anchor('depot ' + ' '.join(c.words))}) | {c.help} |"
        for c in found
    ]
    lines.append("")
    if top.epilog:
        lines += ["```text", top.epilog.strip("\n"), "```", ""]
    for command in found:
        rows = [a for a in command.parser._actions if not isinstance(a, argparse._HelpAction)]
        lines += [f"## `depot {' '.join(command.words)}`", "", f"{_sentence(command.help)}", ""]
        lines += ["```text", _help_text(command.parser).strip("\n"), "```", ""]
        if command.parser.description:
            lines += [command.parser.description, ""]
        if rows:
            lines += ["| argument | what it is | required | choices | default |"]
            lines += ["|---|---|---|---|---|", *(_option_row(a) for a in rows), ""]
        if command.parser.epilog:
            lines += ["```text", command.parser.epilog.strip("\n"), "```", ""]
    return "\n".join(lines) + "\n"


# --- topology ---------------------------------------------------------------------------------


def topology(stack: str) -> str:
    """What ``depot graph --stack <stack>`` prints (Mermaid)."""
    return to_mermaid(model_graph(_stack_settings(stack)))


def topology_page() -> str:
    lines = [
        GENERATED,
        "# Topology",
        "",
        "Each shipped stack as `depot graph --stack <stack>` draws it: an arrow points from what "
        "is needed to what needs it; thick arrows labelled `healthy` are health-gated (the "
        "dependent starts only once the dependency is healthy). Optional profiles are drawn as "
        "the stack enables them. See [Reviewing changes](../reviewing.md).",
        "",
    ]
    for stack in shipped_stacks():
        lines += [f"## {stack}", "", "```mermaid", topology(stack).rstrip("\n"), "```", ""]
    return "\n".join(lines) + "\n"


PAGES: Mapping[str, Callable[[], str]] = {
    "reference/settings.md": settings_page,
    "reference/rules.md": rules_page,
    "reference/commands.md": commands_page,
    "reference/topology.md": topology_page,
}
"""Each generated page, by its path under ``docs/``, and what writes it."""
