"""Host paths: normalised once where the stack file is read, never climbing with `..`; and the
`isolation` rule judges whatever path a plan holds as the host would resolve it.

`depot:console: {distPath: //etc, sessionsPath: /./}` once passed `depot check` while the plan
mounted the host's /etc and / into the published nginx. The loader now hands every rule and
runtime the normalised path, and the rule does not rely on that: CrossGuard sees planned
resources, not the loader.
"""

from __future__ import annotations

import pytest

from depot.cli import main
from depot.config import ConfigError, RawConfig, load_settings
from depot.config.settings import PolicySettings
from depot.config.stack_file import parse_stack_file
from depot.paths import normalised_path
from depot.policy.check import check_plan
from depot.review.plan import Plan, plan_config, plan_stack
from depot.review.workload import workload
from tests.conftest import PROJECT_DIR, edited

SHIPPED_PROD = (PROJECT_DIR / "Pulumi.prod.yaml").read_text()
PROD = PolicySettings(enforcement="mandatory", production=True)
SHIPPED_DIST = "distPath: /srv/depot/console/dist"
SHIPPED_SESSIONS = "sessionsPath: /data/sessions"
SHIPPED_CONTEXT = "discovery: ../discovery"


def prod_with(old: str, new: str) -> RawConfig:
    """The shipped prod stack file with ``old`` replaced, read as `depot` reads it."""
    assert old in SHIPPED_PROD, old
    return parse_stack_file(SHIPPED_PROD.replace(old, new, 1).encode(), "Pulumi.prod.yaml")


def value_position(old: str) -> tuple[int, int]:
    """(line, column) of the value in the shipped line holding ``old``, as errors name it."""
    for number, line in enumerate(SHIPPED_PROD.splitlines(), start=1):
        if old in line:
            return number, line.index(old) + len(old.partition(": ")[0]) + len(": ") + 1
    raise AssertionError(old)


# --- the loader: normalised once, `..` refused ------------------------------------------------

NORMALISED = [
    (SHIPPED_DIST, "distPath: //srv//depot/./console/dist/", "dist_path",
     "/srv/depot/console/dist"),
    (SHIPPED_DIST, "distPath: //etc", "dist_path", "/etc"),
    (SHIPPED_SESSIONS, "sessionsPath: /./", "sessions_path", "/"),
    (SHIPPED_SESSIONS, "sessionsPath: ///", "sessions_path", "/"),
    (SHIPPED_SESSIONS, "sessionsPath: /data/sessions/.", "sessions_path", "/data/sessions"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "field", "path"), NORMALISED)
def test_a_console_path_is_normalised_once_in_the_loader(
    old: str, new: str, field: str, path: str
) -> None:
    settings = load_settings("prod", prod_with(old, new))
    assert getattr(settings.console, field) == path


@pytest.mark.parametrize(
    ("written", "normalised"),
    [
        ("./../discovery/", "../discovery"),
        ("..//discovery/.", "../discovery"),
        ("crates/d/", "crates/d"),
    ],
)
def test_a_build_context_is_normalised_and_may_start_beside_the_project(
    written: str, normalised: str
) -> None:
    settings = load_settings("prod", prod_with(SHIPPED_CONTEXT, f"discovery: {written}"))
    assert settings.build.contexts["discovery"] == normalised


CLIMBING = [
    (SHIPPED_DIST, "distPath: /srv/../var/run", "console.distPath", "'/srv/../var/run'"),
    (SHIPPED_SESSIONS, "sessionsPath: /srv/depot/../../etc", "console.sessionsPath",
     "'/srv/depot/../../etc'"),
    (SHIPPED_SESSIONS, "sessionsPath: /..", "console.sessionsPath", "'/..'"),
    (SHIPPED_DIST, "distPath: /srv/depot/console/dist/..", "console.distPath",
     "'/srv/depot/console/dist/..'"),
    (SHIPPED_CONTEXT, "discovery: ../../etc", "build.contexts.discovery", "'../../etc'"),
    (SHIPPED_CONTEXT, "discovery: ../discovery/../../etc", "build.contexts.discovery",
     "'../discovery/../../etc'"),
    (SHIPPED_CONTEXT, "discovery: crates/../../x", "build.contexts.discovery", "'crates/../../x'"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "key", "shown"), CLIMBING)
def test_a_path_that_climbs_with_dot_dot_is_refused(
    old: str, new: str, key: str, shown: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings("prod", prod_with(old, new))
    line, column = value_position(old)
    assert str(error.value) == (
        f"Pulumi.prod.yaml:{line}:{column}: depot:{key}: {shown} climbs with '..'; write the path "
        "without it (only a relative path may start with one ../, for a folder beside this "
        "project)"
    )


def test_the_plan_mounts_the_normalised_path() -> None:
    config = prod_with(SHIPPED_DIST, "distPath: //srv//depot/./console/dist/")
    plan = plan_config("prod", config)
    console = next(r for r in plan.resources if r.name == "console-container")
    assert [b.source for b in workload(console).binds] == [
        "/srv/depot/console/dist",
        "/data/sessions",
    ]


# --- `depot check` flags what the normalised path mounts --------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "shown"),
    [
        (SHIPPED_DIST, "distPath: //etc", "mounts the host's /etc"),
        (SHIPPED_SESSIONS, "sessionsPath: /./", "mounts the host's /"),
    ],
)
def test_depot_check_flags_a_path_that_was_written_around_the_rule(
    old: str,
    new: str,
    shown: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = prod_with(old, new)
    monkeypatch.setattr("depot.config.stack_file.stack_config", lambda *_a, **_k: config)
    assert main(["check", "--stack", "prod"]) == 1
    out = capsys.readouterr().out
    assert f"[isolation] {shown} — fix:" in out


@pytest.mark.parametrize("new", ["distPath: /srv/../var/run", "distPath: /srv/depot/../../etc"])
def test_depot_check_refuses_a_climbing_path_before_planning(
    new: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = prod_with(SHIPPED_DIST, new)
    monkeypatch.setattr("depot.config.stack_file.stack_config", lambda *_a, **_k: config)
    assert main(["check", "--stack", "prod"]) == 2
    err = capsys.readouterr().err
    assert "depot:console.distPath:" in err
    assert "climbs with '..'" in err
    assert len(err.splitlines()) == 1


# --- the rule itself, on planned mounts the loader never saw ---------------------------------


@pytest.fixture(scope="module")
def prod_plan() -> Plan:
    return plan_stack("prod")


def isolation(plan: Plan, source: str) -> list[str]:
    mounts = [{"type": "bind", "source": source, "target": "/mnt"}]
    found = check_plan(edited(plan, "console-container", {"mounts": mounts}), PROD)
    return [v.message for v in found if v.rule.id == "isolation"]


FLAGGED = [
    "/",  # the whole host
    "/etc",  # exactly a sensitive path, not only below it
    "/etc/shadow",
    "/var/lib/docker",  # the engine's own data: every container's files and secrets
    "/var/lib/docker/volumes/postgres-data/_data",
    "/run",
    "/var/run/docker.sock",
    "/srv/docker.sock",  # a Docker socket wherever it is
    "/home/deploy/.docker/run/docker.sock",
    # Written around a plain comparison: each is one of the above, or cannot be judged.
    "//etc",
    "/etc/",
    "/./",
    "//",
    "/./etc/./",
    "/srv/../var/run",
    "/srv/depot/../../etc",
    "/srv/depot/..",
    "../../etc",  # a plan writes a path beside the project as ../x: one `..`, no more
    "../console/../../etc",
]


@pytest.mark.parametrize("source", FLAGGED)
def test_isolation_flags_a_sensitive_mount_however_it_is_written(
    prod_plan: Plan, source: str
) -> None:
    assert isolation(prod_plan, source) == [f"mounts the host's {source}"]


@pytest.mark.parametrize(
    "source", ["/srv/depot/console/dist", "/data/sessions", "/etcetera", "/var/lib/docker-data",
               "/srv/sock", "/var/runner", "/srv//depot/./data/", "../console/dist",
               "./console/dist"],
)  # fmt: skip
def test_isolation_lets_a_folder_of_the_services_own_pass(prod_plan: Plan, source: str) -> None:
    assert isolation(prod_plan, source) == []


@pytest.mark.parametrize(
    ("written", "normalised"),
    [("//etc", "/etc"), ("/./", "/"), ("///", "/"), ("/a//b/./c/", "/a/b/c"), ("a/./b/", "a/b"),
     ("./", "."), ("/srv/../x", "/srv/../x"), ("../x/", "../x")],
)  # fmt: skip
def test_normalisation_takes_out_only_what_means_nothing(written: str, normalised: str) -> None:
    assert normalised_path(written) == normalised
