"""``depot plan``: what a stack registers, resource by resource, without the engine.

The plan runs the real entry point (``depot.program.deploy``, as ``pulumi up`` does) with the
stack's own config under ``depot.recording``. Its JSON is ``{"stack", "resources": [{"type",
"name", "parent", "inputs", "options"}]}``: inputs keyed by engine property names, every secret
rendered ``"[secret]"``, and paths inside or beside the project written relative to it, so the
same program gives the same plan on any machine and at any git ref.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from depot.config.loader import RawConfig, load_settings
from depot.config.stack_file import encode, read_stack_file
from depot.model import PROJECT_ROOT, project_relative
from depot.program import deploy
from depot.recording import Recording, Registration, Secret, Unknown, record

SECRET = "[secret]"  # noqa: S105 - the marker shown instead of a secret
UNKNOWN = "[unknown]"


@dataclass(frozen=True)
class PlannedResource:
    """One resource as the plan shows it."""

    type: str
    name: str
    parent: str | None
    inputs: dict[str, Any]
    options: dict[str, Any]
    # Every resource this one waits for (explicit and through its inputs), as keys.
    dependencies: tuple[str, ...] = field(default=(), compare=False)

    @property
    def key(self) -> str:
        """Unique within a plan: names repeat across types (a component and its image)."""
        return f"{self.type}::{self.name}"

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "name": self.name,
            "parent": self.parent,
            "inputs": self.inputs,
            "options": self.options,
        }


@dataclass(frozen=True)
class Plan:
    """Everything one stack registers."""

    stack: str
    resources: tuple[PlannedResource, ...]

    def to_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "resources": [r.to_json() for r in self.resources]}

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Plan:
        return cls(
            stack=document["stack"],
            resources=tuple(
                PlannedResource(
                    type=r["type"],
                    name=r["name"],
                    parent=r["parent"],
                    inputs=r["inputs"],
                    options=r["options"],
                )
                for r in document["resources"]
            ),
        )

    def by_key(self) -> dict[str, PlannedResource]:
        return {resource.key: resource for resource in self.resources}


def stack_config(
    stack: str, profiles: Sequence[str] = (), project_dir: Path = PROJECT_ROOT
) -> RawConfig:
    """The stack file's config, with ``profiles`` enabled on top of the stack's own."""
    config = read_stack_file(stack, project_dir)
    if not profiles:
        return config
    # Enable, as `docker compose --profile` does: the stack's profiles stay on.
    current = list(load_settings(stack, config).profiles)
    wanted = list(dict.fromkeys([*current, *profiles]))
    return RawConfig({**config.values, "depot:profiles": encode(wanted)}, config.secret_keys)


def plan_stack(stack: str, profiles: Sequence[str] = (), project_dir: Path = PROJECT_ROOT) -> Plan:
    """Run the program for ``stack`` under mocks and return its plan."""
    return plan_config(stack, stack_config(stack, profiles, project_dir), project_dir)


def plan_config(stack: str, config: RawConfig, project_dir: Path = PROJECT_ROOT) -> Plan:
    """The plan of ``stack`` with ``config`` already read (see ``stack_config``)."""
    return plan_from(record(deploy, stack=stack, config=config), project_dir)


def plan_from(recording: Recording, project_dir: Path = PROJECT_ROOT) -> Plan:
    """The plan of a recorded run."""
    names = {r.urn: r for r in recording.registrations}
    renderer = _Renderer(project_dir)
    resources = [_planned(r, names, renderer) for r in recording.registrations]
    return Plan(recording.stack, tuple(sorted(resources, key=lambda r: (r.type, r.name))))


def _planned(
    registration: Registration, by_urn: dict[str, Registration], renderer: _Renderer
) -> PlannedResource:
    through_inputs = {urn for urns in registration.property_dependencies.values() for urn in urns}
    explicit = [by_urn[u].name for u in registration.dependencies if u not in through_inputs]
    parent = by_urn.get(registration.parent)
    return PlannedResource(
        type=registration.type,
        name=registration.name,
        parent=parent.name if parent else None,
        inputs=renderer(registration.inputs),
        options={
            "protect": registration.protect,
            "retainOnDelete": registration.retain_on_delete,
            "deleteBeforeReplace": registration.delete_before_replace,
            "dependsOn": sorted(explicit),
            "replaceOnChanges": sorted(registration.replace_on_changes),
        },
        dependencies=tuple(
            sorted(
                f"{by_urn[u].type}::{by_urn[u].name}"
                for u in registration.dependencies
                if u in by_urn
            )
        ),
    )


def render(value: Any, project_dir: Path = PROJECT_ROOT) -> Any:
    """A recorded value as the plan shows it: secrets hidden, unknowns named, paths relative."""
    return _Renderer(project_dir)(value)


class _Renderer:
    """``render`` with the project's directory resolved once, not once per string."""

    def __init__(self, project_dir: Path) -> None:
        self.root = project_dir.resolve()

    def __call__(self, value: Any) -> Any:
        if isinstance(value, Secret):
            return SECRET
        if isinstance(value, Unknown):
            return UNKNOWN
        if isinstance(value, dict):
            return {key: self(item) for key, item in sorted(value.items())}
        if isinstance(value, list):
            return [self(item) for item in value]
        if isinstance(value, str):
            return project_relative(value, self.root)
        return value
