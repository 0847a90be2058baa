"""``depot diff``: two plans compared, with what each change costs a running depot.

A change is marked **replace** when it touches a property the provider cannot update in place
(``depot.review.replacements``): the container is deleted and recreated, which is downtime.
It is marked **data** when it would delete or replace a protected or stateful resource.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from depot.review.plan import Plan, PlannedResource
from depot.review.replacements import replaces_on_change

STATEFUL_TYPES = frozenset({"docker:index/volume:Volume"})


@dataclass(frozen=True)
class PropertyChange:
    """One input or option that differs: ``path`` like ``healthcheck.interval``."""

    path: str
    before: Any
    after: Any
    replaces: bool


@dataclass(frozen=True)
class ResourceChange:
    """A resource in both plans whose inputs or options differ."""

    before: PlannedResource
    after: PlannedResource
    changes: tuple[PropertyChange, ...]

    @property
    def key(self) -> str:
        return self.after.key

    @property
    def replaces(self) -> bool:
        return any(change.replaces for change in self.changes)

    @property
    def touches_data(self) -> bool:
        return self.replaces and is_guarded(self.before)


@dataclass(frozen=True)
class PlanDiff:
    """What turns plan ``base`` into plan ``head``."""

    base: str
    head: str
    added: tuple[PlannedResource, ...]
    removed: tuple[PlannedResource, ...]
    changed: tuple[ResourceChange, ...]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    @property
    def replacements(self) -> tuple[ResourceChange, ...]:
        return tuple(change for change in self.changed if change.replaces)

    @property
    def data_risks(self) -> tuple[str, ...]:
        """Keys of guarded resources this diff would delete or replace."""
        removed = [r.key for r in self.removed if is_guarded(r)]
        return (*removed, *(c.key for c in self.changed if c.touches_data))

    def to_json(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "head": self.head,
            "added": [r.to_json() for r in self.added],
            "removed": [r.to_json() for r in self.removed],
            "changed": [
                {
                    "type": c.after.type,
                    "name": c.after.name,
                    "replaces": c.replaces,
                    "touchesData": c.touches_data,
                    "changes": [
                        {
                            "path": p.path,
                            "before": p.before,
                            "after": p.after,
                            "replaces": p.replaces,
                        }
                        for p in c.changes
                    ],
                }
                for c in self.changed
            ],
            "dataRisks": list(self.data_risks),
        }


def is_guarded(resource: PlannedResource) -> bool:
    """Protected, retained or stateful: deleting it may lose data."""
    options = resource.options
    return (
        resource.type in STATEFUL_TYPES
        or bool(options.get("protect"))
        or bool(options.get("retainOnDelete"))
    )


def diff_plans(base: Plan, head: Plan, *, base_label: str, head_label: str) -> PlanDiff:
    """Resources added, removed and changed from ``base`` to ``head`` (matched by type and name)."""
    before, after = base.by_key(), head.by_key()
    changed = []
    for key in sorted(before.keys() & after.keys()):
        changes = _property_changes(before[key], after[key])
        if changes:
            changed.append(ResourceChange(before[key], after[key], changes))
    return PlanDiff(
        base=base_label,
        head=head_label,
        added=tuple(after[key] for key in sorted(after.keys() - before.keys())),
        removed=tuple(before[key] for key in sorted(before.keys() - after.keys())),
        changed=tuple(changed),
    )


def _property_changes(
    before: PlannedResource, after: PlannedResource
) -> tuple[PropertyChange, ...]:
    changes = [
        PropertyChange(
            path,
            old,
            new,
            replaces_on_change(after.type, path, after.options.get("replaceOnChanges", ())),
        )
        for path, old, new in _walk("", before.inputs, after.inputs)
    ]
    changes += [
        PropertyChange(f"options.{path}", old, new, replaces=False)
        for path, old, new in _walk("", before.options, after.options)
    ]
    if before.parent != after.parent:
        changes.append(PropertyChange("parent", before.parent, after.parent, replaces=True))
    return tuple(changes)


def _walk(prefix: str, old: Any, new: Any) -> list[tuple[str, Any, Any]]:
    """Differences between two values, descending into maps (lists compare whole)."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(old.keys() | new.keys()):
            path = f"{prefix}.{key}" if prefix else key
            found += _walk(path, old.get(key), new.get(key))
        return found
    return [] if old == new else [(prefix, old, new)]
