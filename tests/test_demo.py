"""`make demo`: what it prints, what it runs, and what it refuses — without an engine.

Everything that would reach Docker is replaced here (``engine_unavailable``, ``engine_objects``,
``ensure_standins``, ``_remove_project``), so no test can start or remove anything on the
machine's engine; tests/engine/test_demo.py runs the real thing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from depot import demo
from depot.config.loader import RawConfig
from depot.demo import DemoError, Endpoint, EngineObject
from depot.outputs.compose import compose_document
from depot.outputs.secret_files import init_secret_files
from depot.standins import (
    STANDIN_OF,
    STANDINS,
    BuildReport,
    StandinBuildError,
    StandinUnavailableError,
    standin_stack_config,
)
from tests.conftest import PROJECT_DIR


def export(directory: Path) -> dict[str, Any]:
    """The demo's export, as it writes it in its folder (host paths absolute)."""
    return compose_document(demo.demo_settings(directory), absolute_binds=True)


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> list[EngineObject]:
    """An engine that answers, holding the objects the test appends; nothing else is reached."""
    objects: list[EngineObject] = []
    monkeypatch.setattr(demo, "engine_unavailable", lambda: None)
    monkeypatch.setattr(demo, "compose_cli", lambda: "/nonexistent/docker-compose")
    monkeypatch.setattr(demo, "engine_objects", lambda: objects)
    monkeypatch.setattr(demo, "ports_in_use", lambda _endpoints: [])

    def no_build() -> tuple[dict[str, str], BuildReport]:
        raise StandinUnavailableError("building depot-standin-debian runs debootstrap, needs root")

    monkeypatch.setattr(demo, "ensure_standins", no_build)
    return objects


def test_the_demo_runs_the_dev_stack_with_its_console_folders_moved_in(tmp_path: Path) -> None:
    services = export(tmp_path)["services"]
    sources = {volume["source"] for volume in services["console"]["volumes"]}
    assert sources == {str(tmp_path / "console-dist"), str(tmp_path / "sessions")}
    assert services["dispatch"]["env_file"] == "./secrets/dispatch.env"  # the demo folder's own
    assert services["backup"]["environment"]["DEPOT_BACKUP_STACK"] == "dev"


def test_every_port_is_published_on_loopback_whatever_the_stack_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = standin_stack_config("dev", tmp_path)
    publish = {**json.loads(shipped.values["depot:publish"]), "address": "0.0.0.0"}
    wide_open = RawConfig({**shipped.values, "depot:publish": json.dumps(publish)})
    monkeypatch.setattr(demo, "standin_stack_config", lambda _stack, _directory: wide_open)
    ports = [port for s in export(tmp_path)["services"].values() for port in s.get("ports", [])]
    assert len(ports) == 4
    assert {port["host_ip"] for port in ports} == {"127.0.0.1"}


def test_each_started_service_is_listed_with_its_health_url_and_what_stands_in(
    tmp_path: Path,
) -> None:
    listed = {e.service: e for e in demo.endpoints(export(tmp_path))}
    assert {name: e.url for name, e in listed.items()} == {
        "postgres": None,
        "discovery": "http://127.0.0.1:4860/health",
        "dispatch": "http://127.0.0.1:4890/health",
        "grafana": "http://127.0.0.1:3000/api/health",
        "console": "http://127.0.0.1:8080/",
        "backup": None,
    }  # splat-worker and rtk-base are behind their profiles: not started, not listed
    assert listed["postgres"].replaces == "postgres:17.2-alpine"
    assert listed["postgres"].standin.startswith("real postgres")
    assert listed["grafana"].standin.startswith("a stand-in")
    assert listed["backup"].standin.startswith("the real backup service")


def test_a_port_on_another_address_is_refused() -> None:
    service = {"image": "x", "ports": [{"target": 80, "published": 8080, "host_ip": "0.0.0.0"}]}
    with pytest.raises(DemoError, match=r"console would publish port 8080 on 0\.0\.0\.0"):
        demo.endpoints({"services": {"console": service}})


def test_the_summary_labels_the_demo_its_stand_ins_and_what_make_up_does(tmp_path: Path) -> None:
    listed = demo.endpoints(export(tmp_path))
    text = demo.summary(listed, tmp_path, 29.6, BuildReport({"depot-standin-debian": 95.2}))
    assert text.startswith("DEMO: ")
    unwrapped = " ".join(text.split())
    assert "ready in 30 s (stand-in images: built depot-standin-debian 95 s)" in unwrapped
    assert "no Pulumi CLI needed, none used" in unwrapped
    assert "Compose project depot-demo" in unwrapped
    for endpoint in listed:
        assert endpoint.standin in text
        if endpoint.url:
            assert endpoint.url in text
    assert "`make up` is the real thing: `pulumi up`" in unwrapped
    assert "make demo-down" in text
    assert str(tmp_path) in text
    assert max(len(line) for line in text.splitlines()) <= demo.WIDTH


def test_the_summary_says_when_every_image_was_cached(tmp_path: Path) -> None:
    text = demo.summary([Endpoint("console", None, "nginx", "x")], tmp_path, 2, BuildReport({}))
    assert "(stand-in images: all cached)" in " ".join(text.split())


def test_every_stand_in_says_what_it_is() -> None:
    assert all(standin.summary for standin in STANDINS)


def test_the_fixed_names_are_those_the_export_gives(tmp_path: Path) -> None:
    names = demo.fixed_names(export(tmp_path))
    assert names == {
        "container": {
            f"depot-{s}"
            for s in ("postgres", "discovery", "dispatch", "grafana", "console", "backup")
        },
        "network": {"depot-network", "database-network", "backup-network"},
        "volume": {"postgres-data", "postgres-backups"},
    }


def test_only_what_another_project_holds_under_a_fixed_name_collides(tmp_path: Path) -> None:
    names = demo.fixed_names(export(tmp_path))
    objects = [
        EngineObject("container", "depot-postgres", "depot"),  # a real depot's Compose project
        EngineObject("volume", "postgres-data", ""),  # Pulumi's: no Compose label
        EngineObject("network", "depot-network", "depot-demo"),  # the demo's own
        EngineObject("container", "someone-else", "other"),  # no fixed name
    ]
    assert demo.collisions(objects, names) == ["container depot-postgres", "volume postgres-data"]


def test_a_port_something_listens_on_is_reported() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        busy = Endpoint("console", f"http://127.0.0.1:{port}/", "nginx", "x")
        assert demo.ports_in_use([busy, Endpoint("postgres", None, "p", "x")]) == [
            f"127.0.0.1:{port} (console)"
        ]
    assert demo.ports_in_use([busy]) == []  # closed again


def test_a_clash_is_refused_before_anything_is_made(
    tmp_path: Path, engine: list[EngineObject]
) -> None:
    engine.append(EngineObject("container", "depot-postgres", "depot"))
    with pytest.raises(DemoError, match=r"already has container depot-postgres, not the demo's"):
        demo.up(tmp_path / "demo")
    assert not (tmp_path / "demo").exists()


def test_missing_stand_ins_say_what_building_them_needs(
    tmp_path: Path, engine: list[EngineObject], capsys: pytest.CaptureFixture[str]
) -> None:
    assert demo.main(["up", "--dir", str(tmp_path / "demo")]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert error.startswith("make demo: the stand-in images are not built and cannot be built")
    assert "needs root" in error
    assert "root and debootstrap" in error
    assert not (tmp_path / "demo").exists()


def test_no_engine_is_one_line_that_says_what_the_demo_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo, "engine_unavailable", lambda: "no Docker engine answers")
    assert demo.main(["up", "--dir", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert error.startswith("make demo: no Docker engine answers. Needs: Linux with Docker Engine")


def test_a_folder_that_is_not_the_demos_is_never_used(
    tmp_path: Path, engine: list[EngineObject], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo, "ensure_standins", lambda: ({}, BuildReport({})))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me\n")
    with pytest.raises(DemoError, match="exists and is not this user's demo folder"):
        demo.up(mine)
    (tmp_path / "link").symlink_to(mine)
    (mine / demo.MARKER).write_text("")
    with pytest.raises(DemoError, match="exists and is not this user's demo folder"):
        demo.up(tmp_path / "link")
    assert (mine / "notes.txt").read_text() == "keep me\n"


def test_an_old_demo_folder_is_started_afresh_and_private(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    (folder / "secrets").mkdir(parents=True)
    (folder / "secrets" / "database_password.txt").write_text("an old password")
    (folder / demo.MARKER).write_text("")
    demo._fresh_folder(folder)
    assert sorted(p.name for p in folder.iterdir()) == [demo.MARKER]
    assert folder.stat().st_mode & 0o777 == 0o700


def test_a_running_demo_is_used_only_from_its_own_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def listed(*_args: str, **_kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess([], 0, stdout="/var/tmp/depot-demo-0\n", stderr="")

    monkeypatch.setattr(demo, "docker", listed)
    with pytest.raises(DemoError, match=r"runs from /var/tmp/depot-demo-0, not .*make demo-down"):
        demo._check_running_from(tmp_path)
    monkeypatch.setattr(demo, "docker", lambda *_a, **_k: subprocess.CompletedProcess([], 0, ""))
    with pytest.raises(DemoError, match=r"its folder .* is gone"):
        demo._check_running_from(tmp_path)


def test_down_removes_the_demos_folder_and_leaves_any_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo, "engine_unavailable", lambda: None)
    removed = {"container": ["depot-postgres"], "network": [], "volume": ["postgres-data"]}
    monkeypatch.setattr(demo, "_remove_project", lambda: removed)
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / demo.MARKER).write_text("")
    assert demo.down(folder) == (
        "removed 1 containers of depot-demo: depot-postgres\n"
        "removed 1 volumes of depot-demo: postgres-data\n"
        f"removed {folder}\n"
    )
    assert not folder.exists()
    other = tmp_path / "other"
    other.mkdir()
    assert f"left {other}: not this user's demo folder" in demo.down(other)
    assert other.is_dir()


def test_down_without_an_engine_or_a_demo_removes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo, "engine_unavailable", lambda: "no Docker engine answers")
    assert (
        demo.down(tmp_path / "absent") == "no demo on this engine (depot-demo); nothing removed\n"
    )
    with pytest.raises(DemoError, match="the demo's containers cannot be removed"):
        demo.down(tmp_path)


def test_the_default_folder_is_per_user_and_outside_the_checkout() -> None:
    folder = demo.default_directory()
    assert folder == Path(f"/var/tmp/depot-demo-{os.getuid()}")
    assert not folder.is_relative_to(PROJECT_DIR)


@pytest.mark.parametrize(
    ("target", "variables", "command"),
    [
        ("demo", [], "python -m depot.demo up"),
        ("demo-down", [], "python -m depot.demo down"),
        ("demo-images", [], "python -m depot.demo images"),
        ("demo", ["DEMO_DIR=/srv/x y"], 'python -m depot.demo up --dir "/srv/x y"'),
    ],
)
def test_the_make_targets_run_the_demo(target: str, variables: list[str], command: str) -> None:
    dry_run = subprocess.run(
        ["make", "--dry-run", "--no-print-directory", "-C", str(PROJECT_DIR), target, *variables],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert dry_run.stdout.splitlines()[-1].rstrip() == f".venv/bin/{command}"


CANARY = "Canary0Demo0Password0Never0Shown"  # 32 letters and digits, as generated ones are


def test_up_hands_fresh_secrets_to_their_readers_and_never_shows_one(
    tmp_path: Path,
    engine: list[EngineObject],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tags = {name: f"depot-standin-{name}:0123456789abcdef" for name in set(STANDIN_OF.values())}
    monkeypatch.setattr(demo, "ensure_standins", lambda: (tags, BuildReport({})))
    monkeypatch.setattr(
        demo, "init_secret_files", lambda folder: init_secret_files(folder, password=lambda: CANARY)
    )
    commands: list[tuple[str, ...]] = []

    def docker(*args: str, **_options: object) -> subprocess.CompletedProcess[str]:
        commands.append(args)
        return subprocess.CompletedProcess(args, 0, stdout="", stderr="")

    def compose(_cli: str, directory: Path, *args: str, timeout: float) -> None:
        commands.append(("compose", str(directory), *args))

    monkeypatch.setattr(demo, "docker", docker)
    monkeypatch.setattr(demo, "_compose", compose)
    folder = tmp_path / "demo"
    assert demo.main(["up", "--dir", str(folder)]) == 0

    secrets = folder / "secrets"
    assert (secrets / "database_password.txt").read_text() == CANARY  # the canary was used
    assert {p.name: p.stat().st_mode & 0o777 for p in secrets.iterdir()} == {
        "database_password.txt": 0o600,
        "grafana_admin_password.txt": 0o600,
        "dispatch.env": 0o600,
    }
    chowns = [c for c in commands if "chown" in c]
    assert sorted(c[-2:] for c in chowns) == [
        ("472:472", "/secrets/grafana_admin_password.txt"),
        ("70:70", "/secrets/database_password.txt"),
    ]
    assert all(c[2:4] == ("--network", "none") for c in chowns)
    compose_up = commands[-1]
    assert compose_up[:5] == ("compose", str(folder), "up", "--detach", "--wait")
    assert compose_up[-2:] == ("--pull", "never")  # the stand-ins only: nothing pulled
    shown = capsys.readouterr()
    written = [(folder / name).read_text() for name in ("compose.yaml", "override.yaml")]
    for text in (shown.out, shown.err, repr(commands), *written):
        assert CANARY not in text


def test_a_failed_build_is_one_line_with_its_last_word(
    tmp_path: Path,
    engine: list[EngineObject],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def failing() -> tuple[dict[str, str], BuildReport]:
        raise StandinBuildError("`debootstrap --variant=minbase` failed:\nI: …\nE: no such suite\n")

    monkeypatch.setattr(demo, "ensure_standins", failing)
    assert demo.main(["up", "--dir", str(tmp_path / "demo")]) == 1
    assert capsys.readouterr().err == (
        "make demo: `debootstrap --variant=minbase` failed: E: no such suite\n"
    )


def test_demo_images_builds_only_the_stand_ins_and_says_who_can_run_the_demo(
    engine: list[EngineObject],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tags = {"postgres": "depot-standin-postgres:0123", "backup": "depot-tier-backup:4567"}
    report = BuildReport({"depot-standin-debian": 95.4})
    monkeypatch.setattr(demo, "ensure_standins", lambda: (tags, report))
    assert demo.main(["images"]) == 0
    assert capsys.readouterr().out == (
        "stand-in images built: depot-standin-debian 95 s; `make demo` can now run as any user "
        "of this engine.\n  depot-standin-postgres:0123\n  depot-tier-backup:4567\n"
    )


def test_a_folder_beside_the_checkout_gets_absolute_bind_paths(tmp_path: Path) -> None:
    # Written there, the project's `../x` form would be read from the demo's folder and name
    # another one, which Docker would mount empty (the console then answers 403: unhealthy).
    beside = PROJECT_DIR.parent / f".depot-demo-test-{os.getpid()}-{tmp_path.name}"
    beside.mkdir(mode=0o700)
    try:
        settings = demo.demo_settings(beside)
        relative = compose_document(settings)["services"]["console"]["volumes"]
        assert relative[0]["source"] == f"../{beside.name}/console-dist"  # right at the root only
        images = {standin: f"depot-standin-{standin}:test" for standin in STANDIN_OF.values()}
        demo._lay_out(beside, settings, compose_document(settings), images, fresh=False)
        written = yaml.safe_load((beside / "compose.yaml").read_text())
        sources = [volume["source"] for volume in written["services"]["console"]["volumes"]]
        assert sources == [str(beside / "console-dist"), str(beside / "sessions")]
    finally:
        shutil.rmtree(beside)
