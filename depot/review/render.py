"""Plans and diffs as text (terminals), JSON (tools) and Markdown (pull-request comments).

Every format reads plans whose secrets are already ``"[secret]"``: nothing here can print one.
"""

from __future__ import annotations

import json
from typing import Any

from depot.review.diff import PlanDiff, PropertyChange, ResourceChange
from depot.review.graph import build_graph, to_mermaid
from depot.review.plan import Plan, PlannedResource

CONTAINER = "docker:index/container:Container"


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
    return f"    {change.path}: {_value(change.before)} → {_value(change.after)}{mark}"


def diff_text(diff: PlanDiff) -> str:
    if diff.empty:
        return f"{diff.base} → {diff.head}: no changes\n"
    lines = [f"{diff.base} → {diff.head}: {_summary(diff)}"]
    lines += [f"+ {r.type} {r.name}" for r in diff.added]
    lines += [f"- {r.type} {r.name}{_data_mark(diff, r.key)}" for r in diff.removed]
    for change in diff.changed:
        marks = (" [replace]" if change.replaces else "") + _data_mark(diff, change.key)
        lines.append(f"~ {change.after.type} {change.after.name}{marks}")
        lines += [_change_text(c) for c in change.changes]
    return "\n".join(lines) + "\n"


def _data_mark(diff: PlanDiff, key: str) -> str:
    return " [DATA]" if key in diff.data_risks else ""


def _summary(diff: PlanDiff) -> str:
    return (
        f"{len(diff.added)} to add, {len(diff.changed)} to change "
        f"({len(diff.replacements)} replaced), {len(diff.removed)} to remove"
    )


def _cost(change: ResourceChange) -> str:
    """What a reviewer pays for the change: a replaced container is downtime."""
    notes = []
    if change.replaces and change.after.type == CONTAINER:
        notes.append("downtime")
    if change.touches_data:
        notes.append("data")
    return ", ".join(notes)


def diff_markdown(diff: PlanDiff, head_plan: Plan | None = None) -> str:
    """A PR comment section: summary table first, details folded, graph of what changed."""
    lines = [f"### `{diff.base}` → `{diff.head}`", ""]
    if diff.empty:
        return "\n".join([*lines, "No changes.", ""])
    lines += [
        "| added | changed | replaced | containers recreated (downtime) | removed | data at risk |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {len(diff.added)} | {len(diff.changed)} | {len(diff.replacements)} "
        f"| {sum(c.after.type == CONTAINER for c in diff.replacements)} "
        f"| {len(diff.removed)} | {len(diff.data_risks)} |",
        "",
    ]
    if diff.data_risks:
        lines += [f"> **Data at risk:** {', '.join(f'`{k}`' for k in diff.data_risks)}", ""]
    lines += ["| action | resource | type | note |", "|---|---|---|---|"]
    lines += [f"| add | `{r.name}` | `{r.type}` | |" for r in diff.added]
    lines += [
        f"| remove | `{r.name}` | `{r.type}` | {'data' if r.key in diff.data_risks else ''} |"
        for r in diff.removed
    ]
    lines += [
        f"| {'replace' if c.replaces else 'update'} | `{c.after.name}` | `{c.after.type}` | "
        f"{_cost(c)} |"
        for c in diff.changed
    ]
    lines.append("")
    for change in diff.changed:
        lines += [
            f"<details><summary><code>{change.after.name}</code>: "
            f"{len(change.changes)} change(s){' — replaces' if change.replaces else ''}</summary>",
            "",
            "| property | before | after | replaces |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| `{c.path}` | `{_value(c.before)}` | `{_value(c.after)}` | "
            f"{'yes' if c.replaces else ''} |"
            for c in change.changes
        ]
        lines += ["", "</details>", ""]
    if head_plan is not None:
        touched = [r.key for r in diff.added] + [c.key for c in diff.changed]
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
