"""Specifications for docker/rust-service.Dockerfile, the image of every Rust service.

The Dockerfile is parsed as text (no Docker engine needed): continuation lines
are joined, comments dropped, and instructions grouped into build stages.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "docker" / "rust-service.Dockerfile"
HADOLINT_CONFIG = ROOT / ".hadolint.yaml"

ENTRYPOINT = "/usr/local/bin/depot-service"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass(frozen=True)
class Stage:
    image: str
    name: str | None
    instructions: tuple[Instruction, ...]

    def of(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse(text: str) -> list[Instruction]:
    """Split Dockerfile text into instructions, joining `\\` continuations.

    As in Docker, comment lines are dropped even inside a continuation.
    """
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        keyword, _, args = " ".join(pending).partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
        pending = []
    assert not pending, f"line {start}: continuation never ends"
    return instructions


def split_stages(instructions: Sequence[Instruction]) -> list[Stage]:
    stages: list[Stage] = []
    current: list[Instruction] = []
    header: Instruction | None = None
    for instruction in instructions:
        if instruction.keyword == "FROM":
            if header is not None:
                stages.append(make_stage(header, current))
            header, current = instruction, []
        elif header is not None:
            current.append(instruction)
    if header is not None:
        stages.append(make_stage(header, current))
    return stages


def make_stage(header: Instruction, body: list[Instruction]) -> Stage:
    words = [w for w in header.args.split() if not w.startswith("--")]
    name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
    return Stage(image=words[0], name=name, instructions=tuple(body))


def without_flags(args: str) -> list[str]:
    return [w for w in shlex.split(args) if not w.startswith("--")]


def env_pairs(instruction: Instruction) -> dict[str, str]:
    words = shlex.split(instruction.args)
    if "=" not in words[0]:  # legacy `ENV KEY value` form
        return {words[0]: " ".join(words[1:])}
    pairs = (w.partition("=") for w in words)
    return {key: value for key, _, value in pairs}


def shell_commands(script: str) -> list[list[str]]:
    """Simple commands of a RUN line, split on && || ; | (good enough here)."""
    parts = re.split(r"&&|\|\||;|\|", script)
    return [shlex.split(p.strip("(){} ")) for p in parts if p.strip("(){} ")]


def index_of(stage: Stage, matches: Callable[[Instruction], bool]) -> int:
    found = [n for n, i in enumerate(stage.instructions) if matches(i)]
    assert found, f"no matching instruction in stage {stage.name}"
    return found[0]


@cache
def instructions() -> tuple[Instruction, ...]:
    return tuple(parse(DOCKERFILE.read_text(encoding="utf-8")))


@cache
def stages() -> tuple[Stage, ...]:
    return tuple(split_stages(instructions()))


def global_args() -> dict[str, str]:
    """ARG defaults declared before the first FROM (the only ones FROM sees)."""
    defaults: dict[str, str] = {}
    for instruction in instructions():
        if instruction.keyword == "FROM":
            break
        if instruction.keyword == "ARG":
            name, _, default = instruction.args.partition("=")
            defaults[name] = default.strip('"')
    return defaults


def builder() -> Stage:
    return stages()[0]


def final() -> Stage:
    return stages()[-1]


def is_cargo_build(instruction: Instruction) -> bool:
    return instruction.keyword == "RUN" and "cargo build" in instruction.args


def is_source_copy(instruction: Instruction) -> bool:
    return instruction.keyword == "COPY" and without_flags(instruction.args)[:-1] == ["src"]


def healthcheck_options() -> dict[str, str]:
    (check,) = final().of("HEALTHCHECK")
    options, _, _ = check.args.partition("CMD")
    pairs = (w.removeprefix("--").partition("=") for w in options.split())
    return {key: value for key, _, value in pairs}


# --- structure ---------------------------------------------------------------


def test_syntax_directive_is_the_first_line() -> None:
    first_line = DOCKERFILE.read_text(encoding="utf-8").splitlines()[0]
    assert first_line == "# syntax=docker/dockerfile:1"


def test_builds_in_two_stages_with_the_builder_first() -> None:
    assert [s.name for s in stages()] == ["builder", "runtime"]
    assert final().of("COPY")[0].args.startswith("--from=builder ")


def test_every_base_image_is_pinned_to_an_exact_version() -> None:
    defaults = global_args()
    for stage in stages():
        image = re.sub(r"\$\{(\w+)\}", lambda m: defaults.get(m[1], m[0]), stage.image)
        _, _, tag = image.partition(":")
        assert "$" not in image, f"{stage.image}: ARG without a default"
        assert tag, f"{image}: no explicit tag"
        assert tag != "latest", f"{image}: floating tag"
        assert re.match(r"\d+\.\d+\.\d+", tag), f"{image}: tag is not an exact version"


# --- build stage -------------------------------------------------------------


def test_dependency_manifests_are_built_before_the_source_is_copied() -> None:
    stage = builder()
    manifests = index_of(
        stage,
        lambda i: (
            i.keyword == "COPY" and {"Cargo.toml", "Cargo.lock*"} <= set(without_flags(i.args)[:-1])
        ),
    )
    dependency_build = index_of(stage, is_cargo_build)
    source = index_of(stage, is_source_copy)
    release_build = max(n for n, i in enumerate(stage.instructions) if is_cargo_build(i))
    assert manifests < dependency_build < source < release_build


def test_source_copy_is_touched_so_the_stub_binary_is_never_shipped() -> None:
    stage = builder()
    release = stage.instructions[index_of(stage, is_source_copy) + 1]
    assert release.keyword == "RUN"
    assert release.args.index("touch") < release.args.index("cargo build")


def test_release_profile_is_optimised_through_cargo_env_overrides() -> None:
    stage = builder()
    env: dict[str, str] = {}
    for instruction in stage.instructions[: index_of(stage, is_cargo_build)]:
        if instruction.keyword == "ENV":
            env.update(env_pairs(instruction))
    assert env.get("CARGO_PROFILE_RELEASE_LTO") == "true"
    assert env.get("CARGO_PROFILE_RELEASE_STRIP") == "true"
    assert env.get("CARGO_PROFILE_RELEASE_OPT_LEVEL") == "z"
    assert env.get("CARGO_PROFILE_RELEASE_CODEGEN_UNITS") == "1"


def test_binary_build_arg_is_required_before_anything_is_built() -> None:
    stage = builder()
    declared = index_of(stage, lambda i: i.keyword == "ARG" and i.args == "BINARY")
    guard = index_of(stage, lambda i: i.keyword == "RUN" and i.args.startswith('test -n "$BINARY"'))
    assert declared < guard < index_of(stage, is_cargo_build)


def test_cargo_builds_the_binary_named_by_the_build_arg() -> None:
    builds = [i for i in builder().instructions if is_cargo_build(i)]
    assert builds
    for build in builds:
        assert '--bin "$BINARY"' in build.args


def test_crate_downloads_use_buildkit_cache_mounts_on_every_cargo_build() -> None:
    builds = [i for i in builder().instructions if is_cargo_build(i)]
    assert len(builds) == 2
    for build in builds:
        assert "--mount=type=cache,id=cargo-registry,target=/usr/local/cargo/registry" in build.args
        assert "--mount=type=cache,id=cargo-git,target=/usr/local/cargo/git" in build.args
        # target/ stays in the layer, so a registry cache carries compiled dependencies.
        assert "target=/app/target" not in build.args


def test_the_context_is_filtered_to_what_the_dockerfile_copies() -> None:
    ignore = DOCKERFILE.with_name(DOCKERFILE.name + ".dockerignore").read_text()
    rules = [line for line in ignore.splitlines() if line and not line.startswith("#")]
    assert rules == ["**", "!Cargo.toml", "!Cargo.lock", "!src/"]
    copied = {
        source.rstrip("*")
        for instruction in builder().of("COPY")
        if not instruction.args.startswith("--from")
        for source in without_flags(instruction.args)[:-1]
    }
    assert copied == {"Cargo.toml", "Cargo.lock", "src"}


# --- runtime stage -----------------------------------------------------------


def test_final_stage_installs_only_ca_certificates_with_apk() -> None:
    installs = [
        command
        for run in final().of("RUN")
        for command in shell_commands(run.args)
        if command[:2] == ["apk", "add"]
    ]
    assert installs, "no apk add in the final stage"
    for command in installs:
        assert "--no-cache" in command
        assert [w for w in command[2:] if not w.startswith("-")] == ["ca-certificates"]


def test_final_stage_asserts_busybox_wget_and_pgrep_exist() -> None:
    commands = [c for run in final().of("RUN") for c in shell_commands(run.args)]
    assert ["command", "-v", "wget"] in commands
    assert ["command", "-v", "pgrep"] in commands


def test_binary_is_owned_by_root_not_the_runtime_user() -> None:
    (copy,) = [i for i in final().of("COPY") if i.args.startswith("--from=builder ")]
    assert "--chown" not in copy.args
    assert "--chmod" not in copy.args
    assert without_flags(copy.args)[-1] == "/usr/local/bin/${BINARY}"


def test_final_stage_runs_as_a_numeric_non_root_user() -> None:
    user = final().of("USER")[-1].args
    match = re.fullmatch(r"(\d+)(?::(\d+))?", user)
    assert match, f"USER {user} is not numeric"
    assert int(match[1]) != 0
    assert match[2] is None or int(match[2]) != 0


def test_entrypoint_is_exec_form_on_the_stable_symlink() -> None:
    (entrypoint,) = final().of("ENTRYPOINT")
    assert json.loads(entrypoint.args) == [ENTRYPOINT]
    links = [c for run in final().of("RUN") for c in shell_commands(run.args)]
    assert ["ln", "-s", "${BINARY}", ENTRYPOINT] in links


def test_final_stage_has_a_healthcheck() -> None:
    (check,) = final().of("HEALTHCHECK")
    assert check.args.upper() != "NONE"
    command = json.loads(check.args.partition("CMD")[2])
    script = command[-1]
    assert "wget -q -O- " in script
    assert "/health" in script
    assert "pgrep" in script


def test_healthcheck_timing_matches_the_reference() -> None:
    assert healthcheck_options() == {
        "interval": "10s",
        "timeout": "3s",
        "retries": "3",
        "start-period": "30s",
    }


def test_runtime_logs_at_info_by_default() -> None:
    env: dict[str, str] = {}
    for instruction in final().of("ENV"):
        env.update(env_pairs(instruction))
    assert env.get("RUST_LOG") == "info"


# --- lint --------------------------------------------------------------------


def hadolint() -> str:
    beside_python = Path(sys.executable).parent / "hadolint"
    if beside_python.is_file():
        return str(beside_python)
    on_path = shutil.which("hadolint")
    if on_path is None:
        pytest.fail("hadolint not found next to the interpreter or on PATH")
    return on_path


def test_hadolint_reports_no_findings() -> None:
    result = subprocess.run(
        [
            hadolint(),
            "--no-color",
            "--config",
            str(HADOLINT_CONFIG.relative_to(ROOT)),
            str(DOCKERFILE.relative_to(ROOT)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    findings = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, findings
    assert findings == "", findings
