"""``depot plan``: what a stack registers, resource by resource, without the engine.

The plan runs the real entry point (``depot.program.deploy``, as ``pulumi up`` does) with the
stack's own config under ``depot.recording``. Its JSON is ``{"stack", "resources": [{"type",
"name", "parent", "inputs", "options"}]}``: inputs keyed by engine property names, every secret
rendered ``"[secret]"``, and paths inside or beside the project written relative to it, so the
same program gives the same plan on any machine and at any git ref.

``depot diff`` must see whether a secret changed without seeing it. It plans both sides with one
random key (``new_fingerprint_key``) and each secret is rendered ``"[secret:<fingerprint>]"``:
an HMAC of the value under that key. Fingerprints compare within one diff and mean nothing
outside it (the key is never written anywhere, and the next diff draws another); a plan made
without a key, as ``depot plan`` is, shows ``"[secret]"`` alone.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from depot.config.loader import RawConfig, load_settings
from depot.config.settings import DepotSettings
from depot.config.stack_file import stack_config
from depot.paths import PROJECT_ROOT, project_relative
from depot.program import deploy
from depot.recording import Recording, Registration, Secret, Unknown, record
from depot.review.planned import (
    FINGERPRINTED,
    SECRET,
    UNKNOWN,
    Plan,
    PlannedResource,
    resource_key,
)

# Plans are made here and read everywhere else: the data types live in depot.review.planned,
# and are named here too for the callers that make a plan and read it in one place.
__all__ = [
    "FINGERPRINT_KEY_BYTES",
    "SECRET",
    "UNKNOWN",
    "Plan",
    "PlannedResource",
    "new_fingerprint_key",
    "plan_config",
    "plan_from",
    "plan_stack",
    "render",
    "stack_config",
]

FINGERPRINT_KEY_BYTES = 32


def new_fingerprint_key() -> bytes:
    """A fresh key for one diff's secret fingerprints: drawn per diff, kept in memory only."""
    return secrets.token_bytes(FINGERPRINT_KEY_BYTES)


def plan_stack(
    stack: str,
    profiles: Sequence[str] = (),
    project_dir: Path = PROJECT_ROOT,
    *,
    fingerprint_key: bytes | None = None,
) -> Plan:
    """Run the program for ``stack`` under mocks and return its plan.

    With ``fingerprint_key``, secrets carry fingerprints under that key (for ``depot diff``).
    """
    config = stack_config(stack, profiles, project_dir)
    return plan_config(stack, config, project_dir, fingerprint_key=fingerprint_key)


def plan_config(
    stack: str,
    config: RawConfig,
    project_dir: Path = PROJECT_ROOT,
    *,
    fingerprint_key: bytes | None = None,
    settings: DepotSettings | None = None,
) -> Plan:
    """The plan of ``stack`` with ``config`` already read (see ``stack_config``).

    ``settings``: ``config`` validated already, by a caller that needed it too.
    """
    validated = settings if settings is not None else load_settings(stack, config)
    recording = record(lambda: deploy(validated), stack=stack, config=config)
    return plan_from(recording, project_dir, fingerprint_key=fingerprint_key)


def plan_from(
    recording: Recording,
    project_dir: Path = PROJECT_ROOT,
    *,
    fingerprint_key: bytes | None = None,
) -> Plan:
    """The plan of a recorded run."""
    names = {r.urn: r for r in recording.registrations}
    renderer = _Renderer(project_dir, fingerprint_key)
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
                resource_key(by_urn[u].type, by_urn[u].name)
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

    def __init__(self, project_dir: Path, fingerprint_key: bytes | None = None) -> None:
        self.root = project_dir.resolve()
        self.fingerprint_key = fingerprint_key

    def __call__(self, value: Any) -> Any:
        if isinstance(value, Secret):
            return self._secret(value)
        if isinstance(value, Unknown):
            return UNKNOWN
        if isinstance(value, dict):
            return {key: self(item) for key, item in sorted(value.items())}
        if isinstance(value, list):
            return [self(item) for item in value]
        if isinstance(value, str):
            return project_relative(value, self.root)
        return value

    def _secret(self, secret: Secret) -> str:
        if self.fingerprint_key is None:
            return SECRET
        # The value as the plan would show it (paths relative), so the base, planned in another
        # directory, fingerprints the same value the same way.
        shown = json.dumps(self(secret.value), sort_keys=True, separators=(",", ":"))
        mac = hmac.new(self.fingerprint_key, shown.encode(), hashlib.sha256)
        return f"{FINGERPRINTED}{mac.hexdigest()[:32]}]"
