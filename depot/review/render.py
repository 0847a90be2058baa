"""Plans and diffs as text (terminals), JSON (tools) and Markdown (pull-request comments).

Every format reads plans whose secrets are already ``"[secret]"``, and diffs that keep neither a
secret's value nor its fingerprint (only whether it changed): nothing here can print one.
"""

from __future__ import annotations

import json
from typing import Any

from depot.resource_types import BUILD
from depot.review.diff import PlanDiff, PropertyChange, ResourceChange
from depot.review.graph import build_graph, to_mermaid
from depot.review.planned import Plan, PlannedResource
from depot.review.workload import is_workload, workload

SECRET_CHANGED = "[secret] changed"  # noqa: S105 - a marker, not a secret


def dumps(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=False) + "\n"


def _value(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _flags(resource: PlannedResource) -> str:
    options = resource.options
    flags = [name for name in ("protect", "retainOnDelete", "deleteBeforeReplace") if options[name]]
    if options["dependsOn"]:
        flags.append("dependsOn=" + ",".join(options["dependsOn"]))
    return f"  [{' '.join(flags)}]" if flags else ""


def plan_text(plan: Plan) -> str:
    lines = [f"stack {plan.stack}: {len(plan.resources)} resources"]
    for resource in plan.resources:
        parent = f" (in {resource.parent})" if resource.parent else ""
        lines.append(f"{resource.type} {resource.name}{parent}{_flags(resource)}")
        lines += [f"    {key}: {_value(value)}" for key, value in resource.inputs.items()]
    return "\n".join(lines) + "\n"


def plan_markdown(plan: Plan) -> str:
    lines = [
        f"### `{plan.stack}`: {len(plan.resources)} resources",
        "",
        "| type | name | parent | options |",
        "|---|---|---|---|",
    ]
    for r in plan.resources:
        lines.append(f"| `{r.type}` | `{r.name}` | {r.parent or ''} | {_flags(r).strip()} |")
    return "\n".join(lines) + "\n"


def _change_text(change: PropertyChange) -> str:
    mark = "  (replaces)" if change.replaces else ""
    if change.only_secret:
        return f"    {change.path}: {SECRET_CHANGED}{mark}"
    inside = "  (and a secret in it changed)" if change.secret else ""
    return f"    {change.path}: {_value(change.before)} → {_value(change.after)}{inside}{mark}"


def _routine_line(diff: PlanDiff) -> str:
    return f"only the images' commit tags moved: {', '.join(c.service for c in diff.routine)}"


def diff_text(diff: PlanDiff) -> str:
    if diff.empty:
        return f"{diff.base} → {diff.head}: no changes\n"
    if diff.only_routine:
        notes = "".join(f"! note: {note}\n" for note in diff.notes)
        return f"{diff.base} → {diff.head}: {_routine_line(diff)}\n{notes}"
    lines = [f"{diff.base} → {diff.head}: {_summary(diff)}"]
    lines += [f"! data at risk: {_short(risk.key)}: {risk.reason}" for risk in diff.risks]
    lines += [
        f"! secret changed: {c.after.name} {p.path}{' (replaces)' if p.replaces else ''}"
        for c, p in diff.secret_changes
    ]
    lines += [f"! note: {note}" for note in diff.notes]
    lines += [f"+ {r.type} {r.name}" for r in diff.added]
    lines += [f"- {r.type} {r.name}{_data_mark(diff, r.key)}" for r in diff.removed]
    for change in diff.changed:
        if change.routine:
            continue
        update = task_update(change)
        marks = (
            (" [replace]" if change.replaces else "")
            + (f" [{update}]" if update else "")
            + _data_mark(diff, change.key)
        )
        lines.append(f"~ {change.after.type} {change.after.name}{marks}")
        lines += [_change_text(c) for c in change.changes]
    if diff.routine:
        lines.append(f"~ {_routine_line(diff)}")
    return "\n".join(lines) + "\n"


def _short(key: str) -> str:
    return key.split("::", 1)[-1]


def _data_mark(diff: PlanDiff, key: str) -> str:
    return " [DATA]" if key in diff.data_risks else ""


def _summary(diff: PlanDiff) -> str:
    return (
        f"{len(diff.added)} to add, {len(diff.changed)} to change "
        f"({len(diff.replacements)} replaced), {len(diff.removed)} to remove"
    )


def task_update(change: ResourceChange) -> str | None:
    """How a Swarm service updated in place replaces its tasks, if the change replaces any.

    *rolling* when a task keeps serving throughout (start-first, or another replica while one
    is replaced); *downtime* when its one task stops before the new one starts (postgres).
    Changes outside the task (replica count, update policy) replace no task: None.
    """
    if change.replaces or not is_workload(change.after):
        return None
    rollout = workload(change.after).rollout
    if rollout is None or not any(p.path.startswith("taskSpec") for p in change.changes):
        return None
    serving = rollout.update_order == "start-first" or (rollout.replicas or 0) > 1
    return "rolling" if serving else "downtime"


def _cost(change: ResourceChange, diff: PlanDiff) -> str:
    """What a reviewer pays for the change: a replaced container is downtime."""
    notes = []
    if change.replaces and is_workload(change.after):
        notes.append("downtime")
    update = task_update(change)
    if update is not None:
        notes.append(update)
    if change.key in diff.data_risks:
        notes.append("data")
    if any(p.secret for p in change.changes):
        notes.append("secret changed")
    return ", ".join(notes)


def _what_matters(diff: PlanDiff) -> list[str]:
    """The lines a reviewer reads first: data, downtime, secrets, notes, then routine."""
    lines = [f"- **Data at risk:** `{_short(r.key)}`: {r.reason}" for r in diff.risks]
    recreated = [c.after.name for c in diff.replacements if is_workload(c.after)]
    if recreated:
        names = ", ".join(f"`{name}`" for name in recreated)
        lines.append(f"- **Recreated (downtime):** {names}")
    if diff.secret_changes:
        changed = ", ".join(f"`{c.after.name}` `{p.path}`" for c, p in diff.secret_changes)
        lines.append(f"- **Secrets changed** (values never shown): {changed}")
    lines += [f"- **Note:** {note}" for note in diff.notes]
    if diff.routine:
        lines.append(f"- Routine: {_routine_line(diff)}")
    return lines


def _after(change: PropertyChange) -> str:
    return SECRET_CHANGED if change.only_secret else _value(change.after)


def diff_markdown(diff: PlanDiff, head_plan: Plan | None = None) -> str:
    """A PR comment section: what matters first, then the summary table, details folded."""
    lines = [f"### `{diff.base}` → `{diff.head}`", ""]
    if diff.empty:
        return "\n".join([*lines, "No changes.", ""])
    if diff.only_routine:
        notes = [f"- **Note:** {note}" for note in diff.notes]
        settled = "; nothing else changes" if diff.secrets_compared else ""
        routine = f"Routine: {_routine_line(diff)}{settled}."
        return "\n".join([*lines, routine, *([""] if notes else []), *notes, ""])
    lines += [*_what_matters(diff), ""]
    lines += [
        "| added | changed | replaced | containers recreated (downtime) | removed | data at risk |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {len(diff.added)} | {len(diff.changed)} | {len(diff.replacements)} "
        f"| {sum(is_workload(c.after) for c in diff.replacements)} "
        f"| {len(diff.removed)} | {len(diff.data_risks)} |",
        "",
    ]
    shown = [c for c in diff.changed if not c.routine]
    lines += ["| action | resource | type | note |", "|---|---|---|---|"]
    lines += [
        f"| {'replace' if c.replaces else 'update'} | `{c.after.name}` | `{c.after.type}` | "
        f"{_cost(c, diff)} |"
        for c in sorted(shown, key=lambda c: not c.replaces)
    ]
    lines += [
        f"| remove | `{r.name}` | `{r.type}` | {'data' if r.key in diff.data_risks else ''} |"
        for r in diff.removed
    ]
    lines += [f"| add | `{r.name}` | `{r.type}` | |" for r in diff.added]
    if diff.routine:
        lines.append(
            f"| update | {', '.join(f'`{c.after.name}`' for c in diff.routine)} "
            f"| `{BUILD}` | commit tag only |"
        )
    lines.append("")
    for change in shown:
        lines += [
            f"<details><summary><code>{change.after.name}</code>: "
            f"{len(change.changes)} change(s){' — replaces' if change.replaces else ''}</summary>",
            "",
            "| property | before | after | replaces |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| `{c.path}` | `{_value(c.before)}` | `{_after(c)}` | {'yes' if c.replaces else ''} |"
            for c in change.changes
        ]
        lines += ["", "</details>", ""]
    if head_plan is not None:
        touched = [r.key for r in diff.added] + [c.key for c in diff.changed if not c.routine]
        graph = build_graph(head_plan, only=touched)
        if graph.nodes:
            lines += [
                "<details><summary>Graph of what changed</summary>",
                "",
                "```mermaid",
                to_mermaid(graph).rstrip(),
                "```",
                "",
                "</details>",
                "",
            ]
    return "\n".join(lines)
