"""The rules as a CrossGuard policy set, for ``pulumi preview/up --policy-pack policy``.

Building policies starts nothing; only ``pulumi_policy.PolicyPack`` does, and that is
constructed in the pack's own entry point (``policy/__main__.py``) alone. Nothing here loads a
provider SDK or the program: the pack reads what the engine sends it.

What the engine sends is not what the offline plan holds: pulumi-policy hands each resource's
inputs through read-only proxies (a ``Mapping`` and a ``Sequence``, not a dict and a list) that
raise on a value not known during a preview, with every number a float and secrets decrypted.
``as_planned`` turns that into the plan's shape, an unknown read as ``"[unknown]"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pulumi_policy import (
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    StackValidation,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

from depot.paths import PROJECT_ROOT
from depot.policy.rules import RULES, Rule, Stack
from depot.review.planned import UNKNOWN, PlannedResource

PRODUCTION = PolicyConfigSchema(
    properties={"production": {"type": "boolean", "default": True}},
)


def policies(
    rules: Sequence[Rule] = RULES, project_dir: Path = PROJECT_ROOT
) -> list[StackValidationPolicy]:
    """One stack policy per rule: rules may look at the resources around the one checked."""
    return [
        StackValidationPolicy(
            name=rule.id,
            description=f"{rule.description} ({rule.source})",
            validate=_validation(rule, project_dir),
            config_schema=PRODUCTION,
            remediation_steps=rule.fix,
        )
        for rule in rules
    ]


def _validation(rule: Rule, project_dir: Path) -> StackValidation:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        planned = {resource.urn: as_planned(resource) for resource in args.resources}
        stack = Stack(
            {p.key: p for p in planned.values()},
            production=bool(args.get_config().get("production", True)),
            project_dir=project_dir,
            secrets_visible=False,
            settings_visible=False,
        )
        for resource in args.resources:
            if resource.resource_type in rule.types:
                for message in rule.check(planned[resource.urn], stack):
                    report_violation(f"{message} — fix: {rule.fix}", resource.urn)

    return validate


def as_planned(resource: PolicyResource) -> PlannedResource:
    """A CrossGuard resource in the shape the rules read."""
    return PlannedResource(
        type=resource.resource_type,
        name=resource.name,
        parent=resource.parent.name if resource.parent else None,
        inputs=_plain_mapping(resource.props),
        options={
            "protect": resource.opts.protect,
            "deleteBeforeReplace": resource.opts.delete_before_replace,
            "retainOnDelete": None,  # not part of what CrossGuard passes to a policy
            "dependsOn": [],
        },
        dependencies=tuple(f"{d.resource_type}::{d.name}" for d in resource.dependencies),
    )


def _plain_mapping(proxy: Mapping[str, Any]) -> dict[str, Any]:
    found = {}
    for key in proxy:
        try:
            found[key] = _plain(proxy[key])
        except UnknownValueError:
            found[key] = UNKNOWN
    return found


def _plain(value: Any) -> Any:
    """A value as the plan holds it: dicts and lists, an unknown as ``"[unknown]"``."""
    if isinstance(value, Mapping):
        return _plain_mapping(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        items = []
        for index in range(len(value)):
            try:
                items.append(_plain(value[index]))
            except UnknownValueError:
                items.append(UNKNOWN)
        return items
    return value
