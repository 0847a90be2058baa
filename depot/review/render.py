"""Plans and diffs as text (terminals), JSON (tools) and Markdown (pull-request comments).

Every format reads plans whose secrets are already ``"[secret]"``, and diffs that keep neither a
secret's value nor its fingerprint (only whether it changed): nothing here can print one.

Markdown is built from ``Markdown`` templates only: whatever is put into one — a name, a path, a
value, a reason, a ref — is escaped unless it is ``Markdown`` itself (as ``markupsafe`` does for
HTML), so a value cannot add a column (``|``), open code or HTML (`` ` ``, ``<details>``), end a
table row (a newline), link, emphasise or mention anyone. Values are shown in ``<code>`` with
HTML character references, which read the same in a table, a list and an HTML block alike.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable
from typing import Any

from depot.resource_types import BUILD
from depot.review.diff import PlanDiff, PropertyChange, ResourceChange
from depot.review.graph import build_graph, to_mermaid
from depot.review.planned import Plan, PlannedResource
from depot.review.workload import Workload, is_workload, workload

SECRET_CHANGED = "[secret] changed"  # noqa: S105 - a marker, not a secret


# Characters with a meaning in GitHub's Markdown wherever they stand in a line: table cells,
# code, HTML and references, backslash escapes, emphasis, strikethrough, links and images,
# mentions, math. Each is written as a character reference, which Markdown shows as the
# character and never reads as syntax. Line breaks (and other control characters) too: a raw
# one would end a table row.
_MARKDOWN_SPECIAL = frozenset("|`<>&\\*_~[]!@$")
_CONTROL_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})  # control characters, line separators


def _escaped_character(character: str) -> str:
    category = unicodedata.category(character)
    special = character in _MARKDOWN_SPECIAL or category in _CONTROL_CATEGORIES
    return f"&#{ord(character)};" if special else character


class Markdown(str):
    """Text that is Markdown already; ``format`` escapes every argument that is not."""

    __slots__ = ()

    def format(self, *args: object, **kwargs: object) -> Markdown:
        escaped = {key: md(value) for key, value in kwargs.items()}
        return Markdown(str.format(self, *(md(arg) for arg in args), **escaped))


def md(value: object) -> Markdown:
    """``value`` in Markdown: itself if it is ``Markdown``, else its text, escaped."""
    if isinstance(value, Markdown):
        return value
    return Markdown("".join(_escaped_character(c) for c in str(value)))


def code(value: object) -> Markdown:
    return Markdown("<code>{}</code>").format(value)


def md_join(separator: str, items: Iterable[object]) -> Markdown:
    return Markdown(separator.join(md(item) for item in items))


def table_row(*cells: object) -> Markdown:
    """``| a | b |``, each cell escaped unless it is ``Markdown``."""
    return Markdown("| " + " | ".join(md(cell) for cell in cells) + " |")


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


def probed_late(plan: Plan) -> list[str]:
    """The workloads whose healthcheck has no start interval: their first probe waits one
    ``interval`` after every start (Swarm services: the provider has no such field)."""
    return [seen.name for seen in _probed_late(plan)]


def _probed_late(plan: Plan) -> list[Workload]:
    around = plan.by_key()
    seen = (workload(resource, around) for resource in plan.resources if is_workload(resource))
    return [w for w in seen if w.healthcheck is not None and not w.healthcheck.start_interval]


def rolling_floor(late: Iterable[Workload]) -> tuple[str, int, int] | None:
    """Of the workloads probed late, the one whose rolling update waits longest: its name, its
    replicas and its healthcheck interval. Each replaced task is probed first one interval
    after its start, and the next task starts only once it is healthy: replicas times interval at
    least (docs/swarm.md measures it)."""
    floors = []
    for seen in late:
        if seen.rollout is not None and seen.healthcheck is not None:
            replicas, interval = seen.rollout.replicas or 1, seen.healthcheck.interval
            floors.append((replicas * interval, seen.name, replicas, interval))
    if not floors:
        return None
    _, name, replicas, interval = max(floors, key=lambda floor: floor[0])  # the first longest
    return name, replicas, interval


def plan_notes(plan: Plan) -> list[str]:
    """What the plan cannot carry that the catalog asks for, said instead of dropped."""
    late = _probed_late(plan)
    if not late:
        return []
    names = ", ".join(seen.name for seen in late)
    floor = rolling_floor(late)
    rolling = (
        f", so a rolling update waits at least one interval per task it replaces ({floor[0]}: "
        f"{floor[1]} tasks of {floor[2]} s)"
        if floor
        else ""
    )
    return [
        f"note: no healthcheck start_interval on {names} (pulumi_docker 5.2.0's "
        "docker.Service has no such field): a task's first probe waits one interval after "
        f"each start and update{rolling}; the stack file of `depot compose` carries it "
        '(README "Docker Swarm")'
    ]


def plan_text(plan: Plan) -> str:
    lines = [f"stack {plan.stack}: {len(plan.resources)} resources"]
    for resource in plan.resources:
        parent = f" (in {resource.parent})" if resource.parent else ""
        lines.append(f"{resource.type} {resource.name}{parent}{_flags(resource)}")
        lines += [f"    {key}: {_value(value)}" for key, value in resource.inputs.items()]
    lines += plan_notes(plan)
    return "\n".join(lines) + "\n"


def plan_markdown(plan: Plan) -> str:
    lines = [
        Markdown("### {}: {} resources").format(code(plan.stack), len(plan.resources)),
        "",
        "| type | name | parent | options |",
        "|---|---|---|---|",
    ]
    for r in plan.resources:
        lines.append(table_row(code(r.type), code(r.name), r.parent or "", _flags(r).strip()))
    notes = plan_notes(plan)
    if notes:
        lines += ["", *(md(note) for note in notes)]
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


def _what_matters(diff: PlanDiff) -> list[Markdown]:
    """The lines a reviewer reads first: data, downtime, secrets, notes, then routine."""
    lines = [
        Markdown("- **Data at risk:** {}: {}").format(code(_short(r.key)), r.reason)
        for r in diff.risks
    ]
    recreated = [c.after.name for c in diff.replacements if is_workload(c.after)]
    if recreated:
        names = md_join(", ", (code(name) for name in recreated))
        lines.append(Markdown("- **Recreated (downtime):** {}").format(names))
    if diff.secret_changes:
        changed = md_join(
            ", ",
            (
                Markdown("{} {}").format(code(c.after.name), code(p.path))
                for c, p in diff.secret_changes
            ),
        )
        lines.append(Markdown("- **Secrets changed** (values never shown): {}").format(changed))
    lines += [Markdown("- **Note:** {}").format(note) for note in diff.notes]
    if diff.routine:
        lines.append(Markdown("- Routine: {}").format(_routine_line(diff)))
    return lines


def _after(change: PropertyChange) -> Markdown:
    """The new value; a secret changed beside it is said, as the text format says it."""
    if change.only_secret:
        return code(SECRET_CHANGED)
    beside = " (and a secret in it changed)" if change.secret else ""
    return Markdown("{}{}").format(code(_value(change.after)), beside)


def diff_markdown(diff: PlanDiff, head_plan: Plan | None = None) -> str:
    """A PR comment section: what matters first, then the summary table, details folded."""
    lines: list[str] = [Markdown("### {} → {}").format(code(diff.base), code(diff.head)), ""]
    if diff.empty:
        return "\n".join([*lines, "No changes.", ""])
    if diff.only_routine:
        notes = [Markdown("- **Note:** {}").format(note) for note in diff.notes]
        settled = "; nothing else changes" if diff.secrets_compared else ""
        routine = Markdown("Routine: {}{}.").format(_routine_line(diff), settled)
        return "\n".join([*lines, routine, *([""] if notes else []), *notes, ""])
    lines += [*_what_matters(diff), ""]
    lines += [
        "| added | changed | replaced | containers recreated (downtime) | removed | data at risk |",
        "|---:|---:|---:|---:|---:|---:|",
        table_row(
            len(diff.added),
            len(diff.changed),
            len(diff.replacements),
            sum(is_workload(c.after) for c in diff.replacements),
            len(diff.removed),
            len(diff.data_risks),
        ),
        "",
    ]
    shown = [c for c in diff.changed if not c.routine]
    lines += ["| action | resource | type | note |", "|---|---|---|---|"]
    lines += [
        table_row(
            "replace" if c.replaces else "update",
            code(c.after.name),
            code(c.after.type),
            _cost(c, diff),
        )
        for c in sorted(shown, key=lambda c: not c.replaces)
    ]
    lines += [
        table_row("remove", code(r.name), code(r.type), "data" if r.key in diff.data_risks else "")
        for r in diff.removed
    ]
    lines += [table_row("add", code(r.name), code(r.type), "") for r in diff.added]
    if diff.routine:
        builds = md_join(", ", (code(c.after.name) for c in diff.routine))
        lines.append(table_row("update", builds, code(BUILD), "commit tag only"))
    lines.append("")
    for change in shown:
        lines += [
            Markdown("<details><summary>{}: {} change(s){}</summary>").format(
                code(change.after.name),
                len(change.changes),
                " — replaces" if change.replaces else "",
            ),
            "",
            "| property | before | after | replaces |",
            "|---|---|---|---|",
        ]
        lines += [
            table_row(code(c.path), code(_value(c.before)), _after(c), "yes" if c.replaces else "")
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
