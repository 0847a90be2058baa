"""What a plan holds: resources as planned, and the markers that stand for secrets and unknowns.

Data only: nothing here imports Pulumi, a provider or the program, so the policy rules, the
CrossGuard pack and the review tools read plans without loading what makes them
(``depot.review.plan``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SECRET = "[secret]"  # noqa: S105 - the marker shown instead of a secret
UNKNOWN = "[unknown]"
FINGERPRINTED = "[secret:"
"""How a secret's marker starts when it carries a fingerprint: ``[secret:<fingerprint>]``."""


def is_secret(value: object) -> bool:
    """True for a secret's marker, with or without a fingerprint."""
    return value == SECRET or (
        isinstance(value, str) and value.startswith(FINGERPRINTED) and value.endswith("]")
    )


def is_fingerprinted(value: object) -> bool:
    """True for a secret's marker that carries a fingerprint (a plan made for a diff)."""
    return is_secret(value) and value != SECRET


def resource_key(type_: str, name: str) -> str:
    """A resource's key in a plan: unique, where names repeat across types (a component and
    its image)."""
    return f"{type_}::{name}"


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
        """Unique within a plan (see ``resource_key``)."""
        return resource_key(self.type, self.name)

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
