"""Shared fixtures: the program run under mocks for each shipped stack, and with edited config.

Every run goes through ``depot.recording.record``, which records each ``RegisterResource``
request whole (options included) — see that module for why the stock mock monitor is not enough.
"""

from __future__ import annotations

import copy
import html
import os
import re
import subprocess
import sys
from collections.abc import Callable, Hashable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from depot.config.loader import RawConfig
from depot.config.stack_file import encode, read_stack_file
from depot.program import deploy
from depot.recording import Recording, Registration, Secret, record
from depot.resource_types import CONTAINER
from depot.review.planned import Plan, PlannedResource

PROJECT_DIR = Path(__file__).resolve().parent.parent

# Prod pushes images tagged with the commit being deployed (HEAD when nothing says otherwise).
# Fix it for the tests, so they mean the same in any checkout, git or not; the tests of that
# fallback remove it themselves.
os.environ.setdefault("DEPOT_RELEASE_COMMIT", "0123456789abcdef0123456789abcdef01234567")
STACKS = ("dev", "prod")


# `--dist loadgroup` (pyproject.toml) sends the tests of one xdist_group to one worker, which tells
# the controller by a "@<group>" suffix on their node ids. pytest-xdist 3.8 writes that suffix into
# a field pytest 9.2 no longer reads (pytest-dev/pytest-xdist#1386), so every group was silently
# spread over both workers: each worker made the rules' mutants, and each started all the backup
# agent's time-driven tests (tests/test_backup_agent.py, "side by side"). Once xdist's own suffix
# takes effect again, this finds it there and does nothing.
@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not getattr(config.option, "loadgroup", False):  # set on xdist's workers only
        return
    for item in items:
        groups = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                         for m in item.iter_markers("xdist_group")})  # fmt: skip
        suffix = "@" + "_".join(groups)
        if groups and not item.nodeid.endswith(suffix):  # pytest >= 9.2: a structured id
            item._id = type(item._id).parse(item.nodeid + suffix)  # its str() is the nodeid


Run = Callable[..., Recording]


def stack_config(stack: str, overrides: Mapping[str, Any] | None = None) -> RawConfig:
    """A shipped stack's config with ``overrides`` ({"depot:key": value}) applied on top."""
    shipped = read_stack_file(stack, PROJECT_DIR)
    values = dict(shipped.values)
    values.update({key: encode(value) for key, value in (overrides or {}).items()})
    return RawConfig(values, shipped.secret_keys)


# Runs made in this process, by everything a run depends on (see run_stack).
_RUNS: dict[Hashable, Recording] = {}


def _environment() -> dict[str, str]:
    """The environment a run could read: all of it but what pytest changes for every test."""
    return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}


def run_stack(
    stack: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    preview: bool = True,
    secrets: Mapping[str, str] | None = None,
    fresh: bool = False,
) -> Recording:
    """Run the real entry point for ``stack`` with config edits and secret config values.

    A run under the mocks is a function of the config it is given, preview and the environment
    (the release commit may come from it), so each distinct run is made once per test process
    (~0.3 s each; the tests ask for the same ones again and again) and every caller gets a deep
    copy: a test that edits what it got cannot change what another test sees. ``fresh`` runs
    the program again, for tests that prove two runs agree (a cached copy always would). A test
    that patches something the program calls must not use the cache either: pass ``fresh``.
    """
    config = stack_config(stack, overrides)
    if secrets:
        config = RawConfig({**config.values, **secrets}, config.secret_keys | frozenset(secrets))
    if fresh:
        return record(deploy, stack=stack, config=config, preview=preview)
    key = (
        stack,
        preview,
        tuple(sorted(config.values.items())),
        config.secret_keys,
        tuple(sorted(_environment().items())),
    )
    if key not in _RUNS:
        _RUNS[key] = record(deploy, stack=stack, config=config, preview=preview)
    return copy.deepcopy(_RUNS[key])


@pytest.fixture(scope="session")
def shipped() -> dict[str, Recording]:
    """Each shipped stack, run once per session (the runs are read-only to tests)."""
    return {stack: run_stack(stack) for stack in STACKS}


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest, shipped: dict[str, Recording]) -> Recording:
    """Each shipped stack in turn."""
    recording: Recording = shipped[request.param]
    return recording


def containers(recording: Recording) -> dict[str, Registration]:
    """Containers by service name (``depot-discovery`` → ``discovery``)."""
    return {r.inputs["name"].removeprefix("depot-"): r for r in recording.of_type(CONTAINER)}


def env_of(container: Registration) -> dict[str, str]:
    """A container's environment as a dict, unwrapping a secret list."""
    envs = container.inputs.get("envs", [])
    envs = envs.value if isinstance(envs, Secret) else envs
    return dict(entry.split("=", 1) for entry in envs)


def walk(value: Any, *, inside_secret: bool = False) -> Iterator[tuple[Any, bool]]:
    """Every leaf of a recorded value, with whether a secret marker encloses it."""
    if isinstance(value, Secret):
        yield from walk(value.value, inside_secret=True)
    elif isinstance(value, dict):
        for item in value.values():
            yield from walk(item, inside_secret=inside_secret)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item, inside_secret=inside_secret)
    else:
        yield value, inside_secret


def edited(plan: Plan, target: str, changes: dict[str, Any]) -> Plan:
    """``plan`` with resource ``target``'s inputs (and ``changes["options"]``) changed."""
    inputs_changes = {k: v for k, v in changes.items() if k != "options"}

    def edit(r: PlannedResource) -> PlannedResource:
        options = {**r.options, **changes.get("options", {})}
        inputs = {**r.inputs, **inputs_changes}
        return PlannedResource(r.type, r.name, r.parent, inputs, options, r.dependencies)

    return Plan(plan.stack, tuple(edit(r) if r.name == target else r for r in plan.resources))


# A planned resource's options with every guard off: tests turn on the one they are about.
PLAIN_OPTIONS = {
    "protect": False,
    "retainOnDelete": False,
    "deleteBeforeReplace": False,
    "dependsOn": [],
    "replaceOnChanges": [],
}


def as_read(markdown: str) -> str:
    """Markdown as a reader of the PR comment sees its text: ``<code>`` as backticks, every
    character reference (how ``depot.review.render`` escapes values) as its character."""
    return html.unescape(re.sub("</?code>", "`", markdown))


def run_depot(
    *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m depot ARGS`` as a process of its own (``cwd``: the project it reads)."""
    return subprocess.run(
        [sys.executable, "-m", "depot", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env=None if env is None else dict(env),
    )
