"""`depot rotate` against a stand-in engine: the service is told first, on stdin; the files
change only when it accepted; an interrupted rotation resumes with its staged password.

The real postgres proof is tests/engine/test_rotate.py; here every path is driven by what the
engine answers, and every file is checked byte for byte without printing a value.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from depot.catalog import SERVICES, database_url
from depot.cli import main
from depot.host.docker import DockerCli
from depot.host.rotate import ComposeProject, RotationError, rotate
from depot.outputs.secret_files import init_secret_files
from depot.rotations import alter_role_statement, scram_verifier
from tests.scram import RFC7677_PASSWORD, RFC7677_SALT, Verifier


@dataclass(frozen=True)
class FakeEngine(DockerCli):
    """Containers run (or not); ``docker exec`` exits ``exec_status``; every call is recorded."""

    running: bool = True
    exec_status: int = 0
    calls: list[tuple[tuple[str, ...], str | None]] = field(default_factory=list)

    def run(
        self, *args: str, stdin: str | None = None, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        self.calls.append((args, stdin))
        if args[:2] == ("container", "inspect"):
            state = '{"State": {"Running": %s}}' % ("true" if self.running else "false")
            return subprocess.CompletedProcess(args, 0, state + "\n", "")
        if args[0] == "exec":
            error = "" if self.exec_status == 0 else 'psql: error: role "postgres" is locked'
            return subprocess.CompletedProcess(args, self.exec_status, "", error)
        raise AssertionError(f"unexpected docker {args}")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    secrets = tmp_path / "secrets"
    init_secret_files(secrets)
    return secrets


def contents(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_postgres_is_told_first_on_stdin_then_the_files_change(folder: Path) -> None:
    old = (folder / "database_password.txt").read_text().strip()
    engine = FakeEngine()
    lines = rotate("database-password", folder, engine, None)
    new = (folder / "database_password.txt").read_text().strip()
    assert new != old
    assert len(new) == 32
    assert (folder / "dispatch.env").read_text() == f"DATABASE_URL={database_url(new)}\n"
    assert lines == [
        "postgres: took the new password; the old one no longer works",
        f"wrote {folder}/dispatch.env",
        f"wrote {folder}/database_password.txt",
        "dispatch: recreate it to read the new value: docker compose up --detach --no-deps "
        "--force-recreate dispatch",
        # It reads the password file, which Compose bind-mounts: the renamed one is new to it.
        "backup: recreate it to read the new value: docker compose up --detach --no-deps "
        "--force-recreate backup",
    ]
    ((args, stdin),) = [call for call in engine.calls if call[0][0] == "exec"]
    assert args[:5] == ("exec", "--interactive", "--user", "postgres", "depot-postgres")
    assert stdin is not None
    # Neither the command line nor even postgres sees the password: only its SCRAM verifier.
    assert not [arg for arg in args if new in arg or old in arg]
    assert new not in stdin
    assert "SET log_statement = 'none';" in stdin
    assert "ALTER ROLE postgres PASSWORD 'SCRAM-SHA-256$4096:" in stdin
    assert not list(folder.glob("*.next"))
    assert oct((folder / "database_password.txt").stat().st_mode & 0o777) == oct(0o600)
    assert oct((folder / "dispatch.env").stat().st_mode & 0o777) == oct(0o600)


def test_the_new_password_file_keeps_the_mode_the_operator_gave_the_old(folder: Path) -> None:
    # README's Compose workaround opens the files to 0644 so uid 70 reads the bind mount; the
    # backup service reads the file again on every run, so the new file must stay readable.
    password_file = folder / "database_password.txt"
    password_file.chmod(0o644)
    before = password_file.stat()
    rotate("database-password", folder, FakeEngine(), None)
    after = password_file.stat()
    assert after.st_ino != before.st_ino  # replaced by rename, not rewritten in place
    assert oct(after.st_mode & 0o777) == oct(0o644)
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)


@pytest.mark.parametrize("fails", [False, True])
def test_the_readers_are_recreated_together_in_one_compose_call(
    folder: Path, monkeypatch: pytest.MonkeyPatch, fails: bool
) -> None:
    # dispatch and backup depend on postgres only: one after the other, backup would wait for
    # nothing but dispatch's health check.
    calls: list[list[str]] = []
    timeouts: list[float] = []

    def compose_run(_cli: DockerCli, command: list[str], timeout: float) -> str | None:
        calls.append(command)
        timeouts.append(timeout)
        return "container depot-backup is unhealthy" if fails else None

    monkeypatch.setattr("depot.host.rotate._compose_run", compose_run)
    project = ComposeProject((folder / "compose.yaml",), "depot")
    if fails:
        with pytest.raises(RotationError) as error:
            rotate("database-password", folder, FakeEngine(), project)
        assert str(error.value) == (
            "dispatch, backup: not all recreated healthy (container depot-backup is unhealthy); "
            "the password is rotated and the files hold it: run `docker compose up --detach "
            "--no-deps --force-recreate dispatch backup`"
        )
    else:
        lines = rotate("database-password", folder, FakeEngine(), project)
        assert lines[-2:] == [
            "recreated dispatch: healthy, with the new value",
            "recreated backup: healthy, with the new value",
        ]
    (command,) = calls
    assert command[-7:] == [
        "up", "--detach", "--no-deps", "--force-recreate", "--wait", "dispatch", "backup",
    ]  # fmt: skip
    # `--wait` is bounded by the slower healthcheck's worst case (the backup's), not a minute.
    worst = max(spec.healthcheck.worst_case_seconds for spec in SERVICES if spec.name in command)
    (timeout,) = timeouts
    assert timeout > worst


def test_a_stack_without_backups_recreates_only_what_it_runs(folder: Path) -> None:
    services = [spec for spec in SERVICES if spec.name != "backup"]
    lines = rotate("database-password", folder, FakeEngine(), None, services)
    assert [line.split(":")[0] for line in lines[-1:]] == ["dispatch"]
    grafana = rotate("grafana-admin-password", folder, FakeEngine(), None)
    # grafana holds its password itself, and nothing else reads it.
    assert [line for line in grafana if "recreate" in line] == []


def test_a_refusal_changes_nothing(folder: Path) -> None:
    before = contents(folder)
    with pytest.raises(RotationError) as refused:
        rotate("database-password", folder, FakeEngine(exec_status=1), None)
    assert str(refused.value) == (
        'postgres refused the new password (psql: error: role "postgres" is locked); nothing '
        "changed: the depot keeps the old one"
    )
    assert contents(folder) == before


def test_a_stopped_service_is_never_rotated_around(folder: Path) -> None:
    before = contents(folder)
    engine = FakeEngine(running=False)
    with pytest.raises(RotationError, match="depot-grafana is not running at unix://"):
        rotate("grafana-admin-password", folder, engine, None)
    assert contents(folder) == before
    assert not [call for call in engine.calls if call[0][0] == "exec"]


def test_an_interrupted_rotation_resumes_with_its_staged_password(folder: Path) -> None:
    staged = folder / "database_password.txt.next"
    staged.write_text("StagedByAnInterruptedRotation42\n")
    staged.chmod(0o600)
    lines = rotate("database-password", folder, FakeEngine(), None)
    assert (
        lines[0] == "resuming the rotation database_password.txt.next records (it was interrupted)"
    )
    assert (folder / "database_password.txt").read_text() == "StagedByAnInterruptedRotation42\n"
    assert "StagedByAnInterruptedRotation42" in (folder / "dispatch.env").read_text()
    assert not staged.exists()


def test_grafana_gets_the_password_on_its_clis_stdin(folder: Path) -> None:
    engine = FakeEngine()
    rotate("grafana-admin-password", folder, engine, None)
    new = (folder / "grafana_admin_password.txt").read_text().strip()
    ((args, stdin),) = [call for call in engine.calls if call[0][0] == "exec"]
    assert args[-5:] == ("grafana", "cli", "admin", "reset-admin-password", "--password-from-stdin")
    assert stdin == new + "\n"
    assert not [arg for arg in args if new in arg]


def test_the_scram_verifier_is_what_a_scram_client_proves_against() -> None:
    # A client holding the password derives the same stored key from the verifier's salt: the
    # server checks H(ClientKey) == StoredKey (RFC 5802 §3), so this is the equality that lets
    # dispatch in.
    verifier = scram_verifier("pencil", salt=b"0123456789abcdef")
    method, _, rest = verifier.partition("$")
    iterations_salt, _, keys = rest.partition("$")
    iterations, salt = iterations_salt.split(":")
    stored, server = keys.split(":")
    assert (method, iterations) == ("SCRAM-SHA-256", "4096")
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", base64.b64decode(salt), 4096)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    assert base64.b64decode(stored) == hashlib.sha256(client_key).digest()
    assert base64.b64decode(server) == hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    assert scram_verifier("pencil") != scram_verifier("pencil")  # a fresh salt each time
    assert "pencil" not in alter_role_statement("pencil")


def test_the_verifier_logs_in_the_client_of_rfc_7677s_example() -> None:
    # RFC 7677 §3's salt and password: the server's half of its exchange, computed from our
    # verifier, checks the RFC's client proof and signs with the RFC's server signature.
    verifier = Verifier.parse(scram_verifier(RFC7677_PASSWORD, salt=RFC7677_SALT))
    assert verifier.iterations == 4096
    assert verifier.logs_in_rfc7677_client()
    assert verifier.admits(RFC7677_PASSWORD)
    assert not verifier.admits(RFC7677_PASSWORD + "!")


def test_depot_rotate_sends_a_fresh_random_salt_each_time() -> None:
    # Host-side, no state to keep a salt in: each rotation draws 16 new bytes (RFC 5802).
    statements = [alter_role_statement("pencil") for _ in range(3)]
    verifiers = [Verifier.parse(s.split("PASSWORD '")[1].split("'")[0]) for s in statements]
    assert len({v.salt for v in verifiers}) == 3
    assert all(len(v.salt) == 16 and v.admits("pencil") for v in verifiers)


def test_compose_is_run_with_the_files_and_project_given(tmp_path: Path) -> None:
    project = ComposeProject((tmp_path / "a.yaml", tmp_path / "b.yaml"), "depot-x")
    command = project.command(DockerCli())
    assert command[1:] == [
        "--file", str(tmp_path / "a.yaml"), "--file", str(tmp_path / "b.yaml"),
        "--project-name", "depot-x",
    ]  # fmt: skip


def test_the_command_exits_1_on_a_refusal_and_2_on_a_missing_compose_file(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = FakeEngine(exec_status=1)

    def answer(self: DockerCli, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return engine.run(*args, **kwargs)

    monkeypatch.setattr(DockerCli, "run", answer)
    argv = ["rotate", "database-password", "--dir", str(folder)]
    assert main([*argv, "--compose-file", str(folder / "compose.yaml")]) == 2
    assert capsys.readouterr().err == (
        f"depot rotate: --compose-file {folder}/compose.yaml: no such file\n"
    )
    assert main(argv) == 1
    assert capsys.readouterr().err.startswith("depot rotate: postgres refused the new password")
