"""``depot diff``: two plans compared, with what each change costs a running depot.

A change is marked **replace** when it touches a property the provider cannot update in place
(``depot.review.replacements``): the container is deleted and recreated, which is downtime.
It is marked **data** when it would delete or replace a protected or stateful resource, run
another postgres major version on the data volume (``depot.review.postgres``), or weaken the
backups: the backup service removed (backups switched off), or its dumps no longer leaving the
host or no longer encrypted.

Secrets are compared by their fingerprints (``depot.review.plan``): a changed one is a change
shown as ``[secret] changed``; an unchanged one is no change; neither value nor fingerprint is
kept in the diff, so no output can print one. A build whose only change is the commit its image
is tagged with is *routine*: every pull request moves it, and renderers fold it into one line.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from depot.catalog import (
    BACKUP_RECIPIENTS_ENV,
    BACKUP_TARGETS_ENV,
    POSTGRES_BACKUPS_VOLUME,
    POSTGRES_DATA_VOLUME,
)
from depot.resource_types import BUILD, COMMAND, ROTATION_SUFFIX, VOLUME
from depot.review.planned import SECRET, Plan, PlannedResource, is_fingerprinted, is_secret
from depot.review.postgres import data_image, mounts_data, postgres_major
from depot.review.replacements import replaces_on_change
from depot.review.workload import is_workload, workload
from depot.types import COMMIT_PATTERN

STATEFUL_TYPES = frozenset({VOLUME})
SWARM_SECRET_REFERENCES = "taskSpec.containerSpec.secrets"  # noqa: S105 - a property path
_COMMIT = re.compile(COMMIT_PATTERN)

DATABASE_PASSWORD_NOTE = (
    "the database password changes, but postgres reads its password file only when it "
    f"initialises an empty data directory: on the existing {POSTGRES_DATA_VOLUME} volume the "
    "old password stays, and services given the new one are refused. Set the new password "
    "inside the database first (docker exec -it depot-postgres psql -U postgres, then "
    '\\password postgres), then deploy — README "Changing the database password"'
)
ROTATION_NOTES = {
    "database-password-rotation": (
        "postgres reads its password file only when it initialises an empty data directory, "
        "so once postgres is up the program alters the role in the existing "
        f"{POSTGRES_DATA_VOLUME} volume itself (docker exec … psql, ALTER ROLE with a SCRAM "
        "verifier on stdin) and only then replaces what reads it: dispatch with the new "
        "DATABASE_URL, the backup service with the new password file"
    ),
    "grafana-admin-password-rotation": (
        "grafana's own CLI resets it in the running grafana (docker exec … grafana cli admin "
        "reset-admin-password, the value on stdin) before anything after grafana"
    ),
}
"""Why each rotation runs; ``depot diff`` prefixes "rotates the <secret>: "."""
SECRETS_NOT_COMPARED_NOTE = (
    "secret values were not compared: one side was planned without secret fingerprints (at a "
    "ref older than them), so a changed secret does not show"
)


@dataclass(frozen=True)
class PropertyChange:
    """One input or option that differs: ``path`` like ``healthcheck.interval`` or ``uploads[0]``.

    ``before`` and ``after`` show secrets as ``[secret]``; ``secret`` is true when a secret in
    them changed (when it is the only change, ``before == after``).
    """

    path: str
    before: Any
    after: Any
    replaces: bool
    secret: bool = False

    @property
    def only_secret(self) -> bool:
        """The change is a secret's value alone: nothing else in the property moved."""
        return self.secret and self.before == self.after


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

    @property
    def routine(self) -> bool:
        """A build whose only change is the commit its image is tagged with."""
        return (
            self.after.type == BUILD
            and bool(self.changes)
            and all(
                c.path == "tags" and _only_commit_moved(c.before, c.after) for c in self.changes
            )
        )

    @property
    def service(self) -> str:
        """The service a build belongs to (builds are named ``<service>-image-build``)."""
        return self.after.name.removesuffix("-image-build")


@dataclass(frozen=True)
class DataRisk:
    """A resource whose data this diff may lose, and why."""

    key: str
    reason: str


@dataclass(frozen=True)
class PlanDiff:
    """What turns plan ``base`` into plan ``head``."""

    base: str
    head: str
    added: tuple[PlannedResource, ...]
    removed: tuple[PlannedResource, ...]
    changed: tuple[ResourceChange, ...]
    # Risks found by comparing the plans as a whole (a postgres major on the data volume).
    postgres_risks: tuple[DataRisk, ...] = ()
    # Backups switched off or weakened (``_backup_risks``).
    backup_risks: tuple[DataRisk, ...] = ()
    secrets_compared: bool = True

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    @property
    def replacements(self) -> tuple[ResourceChange, ...]:
        return tuple(change for change in self.changed if change.replaces)

    @property
    def routine(self) -> tuple[ResourceChange, ...]:
        """Builds whose only change is their commit tag (see ``ResourceChange.routine``)."""
        return tuple(change for change in self.changed if change.routine)

    @property
    def only_routine(self) -> bool:
        """True when the diff is nothing but moved commit tags."""
        return (
            bool(self.changed)
            and not (self.added or self.removed)
            and all(change.routine for change in self.changed)
        )

    @property
    def risks(self) -> tuple[DataRisk, ...]:
        """Every data risk, with its reason: deletions and replacements, then postgres majors."""
        found = [
            DataRisk(r.key, "deleted from the stack (a guarded resource)")
            for r in self.removed
            if is_guarded(r)
        ]
        found += [
            DataRisk(c.key, "replaced: deleted and recreated (a guarded resource)")
            for c in self.changed
            if c.touches_data
        ]
        return (*found, *self.postgres_risks, *self.backup_risks)

    @property
    def data_risks(self) -> tuple[str, ...]:
        """Keys of resources whose data this diff puts at risk (see ``risks`` for why)."""
        return tuple(dict.fromkeys(risk.key for risk in self.risks))

    @property
    def secret_changes(self) -> tuple[tuple[ResourceChange, PropertyChange], ...]:
        """Each property in which a secret's value changed, with its resource."""
        return tuple((c, p) for c in self.changed for p in c.changes if p.secret)

    @property
    def notes(self) -> tuple[str, ...]:
        """What a reviewer must know beyond the changes themselves."""
        notes = []
        # The password file reaches postgres as an upload (a container) or as a reference to a
        # new, content-named Swarm secret (a service): that reference is no secret itself.
        password_moved = any(
            mounts_data(c.after) and p.path.startswith("uploads") for c, p in self.secret_changes
        ) or any(
            mounts_data(c.after) and p.path.startswith(SWARM_SECRET_REFERENCES)
            for c in self.changed
            for p in c.changes
        )
        rotated = list(
            dict.fromkeys(c.after.name for c, _ in self.secret_changes if c.after.type == COMMAND)
        )
        notes += [rotation_note(name) for name in rotated]
        # Without a rotation (a swarm, an older plan), the new password must be set by hand.
        if password_moved and "database-password-rotation" not in rotated:
            notes.append(DATABASE_PASSWORD_NOTE)
        if not self.secrets_compared:
            notes.append(SECRETS_NOT_COMPARED_NOTE)
        return tuple(notes)

    def to_json(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "head": self.head,
            "added": [_masked(r.to_json()) for r in self.added],
            "removed": [_masked(r.to_json()) for r in self.removed],
            "changed": [
                {
                    "type": c.after.type,
                    "name": c.after.name,
                    "replaces": c.replaces,
                    "touchesData": c.key in self.data_risks,
                    "routine": c.routine,
                    "changes": [
                        {
                            "path": p.path,
                            "before": p.before,
                            "after": p.after,
                            "replaces": p.replaces,
                            "secretChanged": p.secret,
                        }
                        for p in c.changes
                    ],
                }
                for c in self.changed
            ],
            "dataRisks": list(self.data_risks),
            "dataRiskReasons": [{"resource": r.key, "reason": r.reason} for r in self.risks],
            "secretChanges": [
                {"resource": c.key, "path": p.path, "replaces": p.replaces}
                for c, p in self.secret_changes
            ],
            "secretsCompared": self.secrets_compared,
            "commitTagsMoved": [c.service for c in self.routine],
            "onlyCommitTagsMoved": self.only_routine,
            "notes": list(self.notes),
        }


def rotation_note(name: str) -> str:
    """What a changed rotation command does: ``rotates the database password: …``."""
    secret = name.removesuffix(ROTATION_SUFFIX).replace("-", " ")
    why = ROTATION_NOTES.get(name, f"{name} tells the service that holds it first")
    return f"rotates the {secret}: {why}"


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
        postgres_risks=_postgres_major_risks(base, head),
        backup_risks=_backup_risks(base, head),
        secrets_compared=not (_has_plain_secret(base) or _has_plain_secret(head)),
    )


def _postgres_major_risks(base: Plan, head: Plan) -> tuple[DataRisk, ...]:
    """The data volume's container moving to an image of another (or unreadable) major."""
    before = base.by_key()
    risks = []
    for container in head.resources:
        old = before.get(container.key)
        if not (mounts_data(container) and old is not None and mounts_data(old)):
            continue
        old_image = data_image(old, base.resources)
        new_image = data_image(container, head.resources)
        if old_image is None or new_image is None or old_image == new_image:
            continue
        old_major, new_major = postgres_major(old_image), postgres_major(new_image)
        if old_major is not None and old_major == new_major:
            continue
        if old_major is None or new_major is None:
            reason = (
                f"its image changes from {old_image} to {new_image} and the tags do not say "
                f"whether postgres' major version changes; a new major cannot open "
                f"{POSTGRES_DATA_VOLUME}"
            )
        else:
            reason = (
                f"postgres {old_major} → {new_major} on {POSTGRES_DATA_VOLUME}: postgres "
                f"{new_major} cannot open a data directory initialised by {old_major}; dump and "
                'restore, then record it (depot:data.postgresMajor) — README "Upgrading postgres"'
            )
        risks.append(DataRisk(container.key, reason))
    return tuple(risks)


def _holds_backups(resource: PlannedResource) -> bool:
    return is_workload(resource) and workload(resource).mounts_volume(POSTGRES_BACKUPS_VOLUME)


def _words(resource: PlannedResource, variable: str) -> list[str] | None:
    """The words of a backup workload's variable; None when the plan cannot show them."""
    value = workload(resource).env_value(variable)
    return None if value is None else value.split()


def _backup_risks(base: Plan, head: Plan) -> tuple[DataRisk, ...]:
    """The backup service gone, or its dumps no longer leaving the host or no longer encrypted.

    Nothing is lost at once, which is why it must be said here: the loss comes on the day a
    backup is needed and the newest one is old, on the dead host, or readable by anyone.
    """
    after = head.by_key()
    still_backed_up = any(_holds_backups(r) for r in head.resources)
    risks = []
    for old in base.resources:
        if not _holds_backups(old):
            continue
        new = after.get(old.key)
        if new is None or not _holds_backups(new):
            if not still_backed_up:
                risks.append(
                    DataRisk(
                        old.key,
                        "backups stop: the backup service is removed (depot:backup.enabled), "
                        "so no new backup is taken; those already taken are kept",
                    )
                )
            continue
        old_targets, new_targets = _words(old, BACKUP_TARGETS_ENV), _words(new, BACKUP_TARGETS_ENV)
        if old_targets and new_targets is not None and not new_targets:
            risks.append(
                DataRisk(
                    new.key,
                    "backups stay on the host: depot:backup.targets is emptied, so a lost host "
                    "loses the backups with the data",
                )
            )
        old_keys = _words(old, BACKUP_RECIPIENTS_ENV)
        new_keys = _words(new, BACKUP_RECIPIENTS_ENV)
        if old_keys and new_keys is not None and not new_keys:
            risks.append(
                DataRisk(
                    new.key,
                    "dumps are no longer encrypted: depot:backup.recipients is emptied",
                )
            )
    return tuple(risks)


def _property_changes(
    before: PlannedResource, after: PlannedResource
) -> tuple[PropertyChange, ...]:
    changes = [
        PropertyChange(
            path,
            old,
            new,
            replaces_on_change(after.type, path, after.options.get("replaceOnChanges", ())),
            secret,
        )
        for path, old, new, secret in _walk("", before.inputs, after.inputs)
    ]
    changes += [
        PropertyChange(f"options.{path}", old, new, replaces=False, secret=secret)
        for path, old, new, secret in _walk("", before.options, after.options)
    ]
    if before.parent != after.parent:
        changes.append(PropertyChange("parent", before.parent, after.parent, replaces=True))
    return tuple(changes)


def _walk(prefix: str, old: Any, new: Any) -> list[tuple[str, Any, Any, bool]]:
    """Differences between two values: ``(path, before, after, a secret changed)``.

    Maps are descended into; lists compare whole, except that a list whose only change is a
    secret inside is descended into, so the change names the secret's place (``uploads[0]``).
    """
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(old.keys() | new.keys()):
            path = f"{prefix}.{key}" if prefix else key
            found += _walk(path, old.get(key), new.get(key))
        return found
    shown_old, shown_new = _masked(old), _masked(new)
    secret = _secret_moved(old, new)
    if shown_old == shown_new and not secret:
        return []
    if shown_old == shown_new and isinstance(old, list) and isinstance(new, list):
        return [
            change
            for index, (item_old, item_new) in enumerate(zip(old, new, strict=True))
            for change in _walk(f"{prefix}[{index}]", item_old, item_new)
        ]
    return [(prefix, shown_old, shown_new, secret)]


def _masked(value: Any) -> Any:
    """``value`` with every secret shown as the bare ``[secret]``: no fingerprint leaves a diff."""
    if is_secret(value):
        return SECRET
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item) for item in value]
    return value


def _secret_moved(old: Any, new: Any) -> bool:
    """True when a secret in the same place of both values has another fingerprint.

    A list that gained or lost items (``envs`` with a variable added) has no "same place":
    there a secret moved when one fingerprint left it and another came, so a password changed
    beside an added entry is still said; a secret only added or removed is shown as such.
    """
    if is_fingerprinted(old) and is_fingerprinted(new):
        return bool(old != new)
    if isinstance(old, dict) and isinstance(new, dict):
        return any(_secret_moved(old[key], new[key]) for key in old.keys() & new.keys())
    if isinstance(old, list) and isinstance(new, list):
        if len(old) == len(new):
            return any(_secret_moved(a, b) for a, b in zip(old, new, strict=True))
        before, after = Counter(_fingerprints(old)), Counter(_fingerprints(new))
        return bool(before - after) and bool(after - before)
    return False


def _fingerprints(value: Any) -> list[str]:
    """Every fingerprinted secret marker inside ``value``."""
    if is_fingerprinted(value):
        return [value]
    if isinstance(value, dict):
        return [found for item in value.values() for found in _fingerprints(item)]
    if isinstance(value, list):
        return [found for item in value for found in _fingerprints(item)]
    return []


def _has_plain_secret(plan: Plan) -> bool:
    """True when ``plan`` shows a secret without a fingerprint (it cannot be compared)."""

    def plain(value: Any) -> bool:
        if isinstance(value, dict):
            return any(plain(item) for item in value.values())
        if isinstance(value, list):
            return any(plain(item) for item in value)
        return bool(value == SECRET)

    return any(plain(resource.inputs) for resource in plan.resources)


def _only_commit_moved(old: Any, new: Any) -> bool:
    """Two lists of image tags that differ only in a commit-hash tag of the same repository."""
    if not (isinstance(old, list) and isinstance(new, list) and len(old) == len(new) > 0):
        return False
    moved = False
    for before, after in zip(old, new, strict=True):
        if before == after:
            continue
        if not (isinstance(before, str) and isinstance(after, str)):
            return False
        old_repo, _, old_tag = before.rpartition(":")
        new_repo, _, new_tag = after.rpartition(":")
        if old_repo != new_repo:  # another image under a commit tag is a real change
            return False
        if not (_COMMIT.fullmatch(old_tag) and _COMMIT.fullmatch(new_tag)):
            return False
        moved = True
    return moved
