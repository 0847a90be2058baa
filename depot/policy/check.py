"""``depot check``: the rules on a stack's offline plan, one line per violation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from depot.exit_status import ExitStatus
from depot.paths import PROJECT_ROOT
from depot.policy.rules import RULES, Rule, Stack
from depot.review.planned import Plan, PlannedResource
from depot.review.workload import display_name
from depot.types import EnforcementLevel

if TYPE_CHECKING:  # the settings are read by the caller; checking them needs no loader
    from depot.config.settings import PolicySettings


@dataclass(frozen=True)
class Violation:
    """One problem one rule found in one resource."""

    resource: PlannedResource
    rule: Rule
    message: str
    level: EnforcementLevel

    def __str__(self) -> str:
        resource = self.resource
        return (
            f"{self.level}: {display_name(resource)} ({resource.type} {resource.name}) "
            f"[{self.rule.id}] {self.message} — fix: {self.rule.fix}"
        )


def check_plan(
    plan: Plan,
    policy: PolicySettings,
    rules: Sequence[Rule] = RULES,
    project_dir: Path = PROJECT_ROOT,
    *,
    postgres_major: int | None = None,
) -> list[Violation]:
    """Every violation of ``rules`` in ``plan``, at the level the stack's policy gives it.

    ``postgres_major`` is the stack's ``depot:data.postgresMajor``.
    """
    stack = Stack(
        plan.by_key(),
        production=policy.production,
        project_dir=project_dir,
        postgres_major=postgres_major,
    )
    found = []
    for rule in rules:
        level = policy.level(rule.id)
        if level == "disabled":
            continue
        for resource in plan.resources:
            if resource.type in rule.types:
                found += [
                    Violation(resource, rule, message, level)
                    for message in rule.check(resource, stack)
                ]
    return found


def report(violations: Sequence[Violation], stack: str) -> tuple[str, ExitStatus]:
    """Lines to print, and the exit status: 1 when any violation is mandatory."""
    mandatory = sum(v.level == "mandatory" for v in violations)
    lines = [str(v) for v in violations]
    lines.append(
        f"{stack}: {len(violations)} violation(s), {mandatory} mandatory, "
        f"{len(violations) - mandatory} advisory ({len(RULES)} rules)"
    )
    return "\n".join(lines) + "\n", ExitStatus.ATTENTION if mandatory else ExitStatus.OK
