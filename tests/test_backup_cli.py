"""`depot backup`, `depot backups`, `depot restore` against stand-in engines.

The commands find the backup container and run `depot-backup` in it; the age identity of a
restore travels on `docker exec --interactive`'s stdin only. A canary identity is followed through
the real `DockerCli` into a stand-in `docker` executable, which records every argv and
environment it is started with: the canary must reach its stdin and nothing else. The real
backup and restore are proven on the engine tier (tests/engine/test_backup.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from depot.cli import main
from depot.config import load_settings
from depot.host.backup import (
    Backup,
    BackupError,
    IdentityError,
    Waiting,
    backup_container,
    backups_table,
    check_backup_name,
    human_duration,
    human_size,
    list_backups,
    read_identity,
    restore,
    run_backup,
    waiting_backups,
    waiting_report,
)
from depot.host.docker import DockerCli, DockerError
from tests.conftest import stack_config

CANARY = "AGE-SECRET-KEY-1CANARYQ7X3DEPOTRESTOREMUSTNEVERSHOWTHISKEYANYWHEREQQQQQQQQQQQQ"
IDENTITY = f"# created: 2025-01-01T00:00:00Z\n# public key: age1examplepublickey\n{CANARY}\n"
LISTING = (
    "dev-20250102T000000Z.dump.age\t2025-01-02T00:00:00Z\t1536\tlocal\n"
    "dev-20250102T000000Z.dump.age\t2025-01-02T00:00:00Z\t1536\toffsite:depot/dev\n"
    "dev-20250101T000000Z.dump.age\t2025-01-01T00:00:00Z\t2202009\toffsite:depot/dev\n"
)


@dataclass(frozen=True)
class FakeEngine(DockerCli):
    """A host with (or without) a running backup container; every call is recorded."""

    running: bool | None = True  # None: no such container
    exec_status: int = 0
    exec_stdout: str = ""
    exec_stderr: str = ""
    swarm_tasks: tuple[tuple[str, str], ...] = ()  # (container, swarm service) on this node
    swarm_nodes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # service → nodes
    times_out: bool = False
    calls: list[tuple[tuple[str, ...], str | None, float | None]] = field(default_factory=list)

    def run(
        self, *args: str, stdin: str | None = None, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        self.calls.append((args, stdin, timeout))
        if args[:2] == ("container", "inspect"):
            if self.running is None:
                return subprocess.CompletedProcess(args, 1, "", "Error: No such container")
            state = json.dumps({"State": {"Running": self.running}})
            return subprocess.CompletedProcess(args, 0, state + "\n", "")
        if args[:2] == ("container", "ls"):
            listed = "".join(f"{task} {service}\n" for task, service in self.swarm_tasks)
            return subprocess.CompletedProcess(args, 0, listed, "")
        if args[:2] == ("service", "ps"):
            if args[-1] not in self.swarm_nodes:
                return subprocess.CompletedProcess(args, 1, "", f"no such service: {args[-1]}")
            nodes = "".join(f"{node}\n" for node in self.swarm_nodes[args[-1]])
            return subprocess.CompletedProcess(args, 0, nodes, "")
        if args[0] == "exec":
            if self.times_out:
                raise DockerError(f"docker exec at {self.host} did not answer within 5 s")
            return subprocess.CompletedProcess(
                args, self.exec_status, self.exec_stdout, self.exec_stderr
            )
        raise AssertionError(f"unexpected docker {args}")

    def execs(self) -> list[tuple[tuple[str, ...], str | None, float | None]]:
        return [call for call in self.calls if call[0][0] == "exec"]


# --- the container -------------------------------------------------------------------------


def test_the_host_runtime_uses_the_running_backup_container() -> None:
    engine = FakeEngine()
    assert backup_container(engine, "host") == "depot-backup"
    assert engine.calls[0][0] == (
        "container", "inspect", "--format", "{{json .}}", "--", "depot-backup",
    )  # fmt: skip


@pytest.mark.parametrize(("running", "state"), [(False, "stopped"), (None, "not running")])
def test_no_running_backup_container_is_one_clear_error(running: bool | None, state: str) -> None:
    engine = FakeEngine(running=running)
    with pytest.raises(BackupError) as error:
        backup_container(engine, "host")
    assert str(error.value) == (
        f"depot-backup is {state} at unix:///var/run/docker.sock: deploy the stack (pulumi up, "
        "or docker compose up) and try again; nothing was done"
    )
    assert not engine.execs()


@pytest.mark.parametrize(
    "service",
    [
        "depot-backup",  # pulumi up's docker.Service
        "depot_backup",  # docker stack deploy of the exported stack file, as stack "depot"
    ],
)
def test_a_swarm_task_is_found_by_its_service_label_on_this_node(service: str) -> None:
    engine = FakeEngine(swarm_tasks=(("9a9a0ther", "depot_postgres"), ("4f1c0ffee", service)))
    assert backup_container(engine, "swarm") == "4f1c0ffee"
    (args, _, _) = engine.calls[0]
    assert args[:2] == ("container", "ls")
    assert "label=com.docker.swarm.service.name" in args
    assert "status=running" in args


def test_a_task_of_another_service_is_never_taken_for_the_backups() -> None:
    engine = FakeEngine(swarm_tasks=(("9a9a0ther", "depot_postgres"), ("5e5e", "backup")))
    with pytest.raises(BackupError):
        backup_container(engine, "swarm")
    assert not engine.execs()


@pytest.mark.parametrize("service", ["depot-backup", "depot_backup"])
def test_a_swarm_node_without_the_task_names_the_node_that_has_it(service: str) -> None:
    engine = FakeEngine(host="ssh://ops@manager", swarm_nodes={service: ("data-1",)})
    with pytest.raises(BackupError) as error:
        backup_container(engine, "swarm")
    assert str(error.value) == (
        "no task of the swarm service depot-backup or depot_backup runs on the node "
        "ssh://ops@manager names (its task runs on data-1): it runs beside postgres, on the data "
        "node; point --docker-host at that node; nothing was done"
    )


# --- backup and list -----------------------------------------------------------------------


def test_a_backup_runs_the_containers_command_and_reports_its_outcome() -> None:
    engine = FakeEngine(exec_stdout="depot-backup: dev-20250101T000000Z.dump.age: good\n")
    outcome = run_backup(engine, "depot-backup", timeout=120)
    assert engine.execs() == [(("exec", "depot-backup", "depot-backup", "run"), None, 120)]
    assert (outcome.status, outcome.stdout) == (
        0,
        "depot-backup: dev-20250101T000000Z.dump.age: good\n",
    )


def test_a_failed_backup_is_a_failure_with_the_containers_reason() -> None:
    why = "depot-backup: offsite:depot/dev: the copy's sha256 does not match; not counted\n"
    outcome = run_backup(FakeEngine(exec_status=1, exec_stderr=why), "depot-backup")
    assert (outcome.status, outcome.stderr) == (1, why)


def test_a_container_without_the_command_is_not_the_backup_image() -> None:
    engine = FakeEngine(
        exec_status=127, exec_stderr='exec: "depot-backup": executable file not found'
    )
    with pytest.raises(BackupError, match="depot-backup has no depot-backup command: it is not"):
        run_backup(engine, "depot-backup")


def test_a_timeout_says_the_command_may_still_run() -> None:
    with pytest.raises(BackupError) as error:
        run_backup(FakeEngine(times_out=True), "depot-backup", timeout=5)
    assert str(error.value).endswith(
        "depot-backup run may still be running in depot-backup: see `depot backups` before "
        "starting another"
    )


def test_the_listing_is_read_and_shown_newest_first() -> None:
    engine = FakeEngine(exec_stdout=LISTING)
    listing = list_backups(engine, "depot-backup")
    assert listing.problem is None
    found = listing.backups
    assert found[0] == Backup(
        "dev-20250102T000000Z.dump.age", "2025-01-02T00:00:00Z", 1536, "local"
    )
    assert [b.where for b in found] == ["local", "offsite:depot/dev", "offsite:depot/dev"]
    assert backups_table(found).splitlines() == [
        "NAME                           TAKEN (UTC)              SIZE  WHERE",
        "dev-20250102T000000Z.dump.age  2025-01-02T00:00:00Z  1.5 KiB  local",
        "dev-20250102T000000Z.dump.age  2025-01-02T00:00:00Z  1.5 KiB  offsite:depot/dev",
        "dev-20250101T000000Z.dump.age  2025-01-01T00:00:00Z  2.1 MiB  offsite:depot/dev",
    ]


def test_a_target_that_cannot_be_listed_is_said_and_the_rest_listed() -> None:
    why = "depot-backup: offsite:depot/dev: refused\ndepot-backup: cannot list: offsite:depot/dev\n"
    local = LISTING.splitlines(keepends=True)[0]
    listing = list_backups(FakeEngine(exec_status=1, exec_stdout=local, exec_stderr=why), "c")
    assert [b.where for b in listing.backups] == ["local"]
    assert listing.problem == why.strip()


def test_a_listing_line_that_cannot_be_read_is_an_error_not_a_guess() -> None:
    with pytest.raises(BackupError, match="list printed a line this depot cannot read"):
        list_backups(FakeEngine(exec_stdout="dev.dump 2025 12 local\n"), "depot-backup")


WAITING = (
    "dev-20250101T000000Z.dump.age\t2025-01-01T00:00:00Z\t1536\t183600\toverdue\toffsite:depot/dev\n"
    "dev-20250102T000000Z.dump.age\t2025-01-02T00:00:00Z\t1536\t97200\toverdue\toffsite:depot/dev\n"
    "dev-20250103T000000Z.dump.age\t2025-01-03T00:00:00Z\t1536\t10800\trecent\toffsite:depot/dev "
    "b\\tack\n"
)


def test_the_backups_waiting_to_leave_the_host_are_read_oldest_first() -> None:
    waiting = waiting_backups(FakeEngine(exec_stdout=WAITING), "depot-backup")
    assert waiting.problem is None
    assert waiting.backups[0] == Waiting(
        "dev-20250101T000000Z.dump.age", "2025-01-01T00:00:00Z", 1536, 183600, True,
        ("offsite:depot/dev",),
    )  # fmt: skip
    assert waiting.backups[2].targets == ("offsite:depot/dev", "b\\tack")  # as written
    assert waiting_report(waiting.backups).splitlines() == [
        "backups waiting to leave the host: 3 (kept here, never pruned, until every target "
        "holds a verified copy)",
        "  dev-20250101T000000Z.dump.age  taken 2025-01-01T00:00:00Z, waiting 2d 3h, longer "
        "than the schedule; not yet on: offsite:depot/dev",
        "  dev-20250102T000000Z.dump.age  taken 2025-01-02T00:00:00Z, waiting 1d 3h, longer "
        "than the schedule; not yet on: offsite:depot/dev",
        "  dev-20250103T000000Z.dump.age  taken 2025-01-03T00:00:00Z, waiting 3h; not yet on: "
        "offsite:depot/dev b\\tack",
    ]
    assert waiting_report([]) == "backups waiting to leave the host: 0\n"


@pytest.mark.parametrize(
    "line",
    [
        "dev.dump\t2025\t12\t5\toverdue",  # five fields
        "dev.dump\t2025\t12\t-5\toverdue\tx",  # a negative wait
        "dev.dump\t2025\t12\t5\tlate\tx",  # neither overdue nor recent
        "dev.dump\t2025\t12\t5\trecent\t ",  # no target
    ],
)
def test_a_waiting_line_that_cannot_be_read_is_an_error_not_a_guess(line: str) -> None:
    with pytest.raises(BackupError, match="waiting printed a line this depot cannot read"):
        waiting_backups(FakeEngine(exec_stdout=line + "\n"), "depot-backup")


def test_a_container_that_cannot_say_what_waits_is_a_problem_not_an_empty_list() -> None:
    engine = FakeEngine(exec_status=2, exec_stderr="depot-backup: usage: depot-backup run\n")
    waiting = waiting_backups(engine, "depot-backup")
    assert waiting.backups == []
    assert waiting.problem == "depot-backup waiting failed: depot-backup: usage: depot-backup run"


def test_durations_read_as_a_person_reads_them() -> None:
    assert [human_duration(n) for n in (0, 59, 61, 3600, 183600, 86400 * 30 + 5)] == [
        "0s", "59s", "1m 1s", "1h", "2d 3h", "30d",
    ]  # fmt: skip


def test_sizes_read_as_a_person_reads_them() -> None:
    assert [human_size(n) for n in (0, 1023, 1024, 10 * 1024**3)] == [
        "0 B", "1023 B", "1.0 KiB", "10.0 GiB",
    ]  # fmt: skip


# --- restore -------------------------------------------------------------------------------


def test_a_restore_sends_the_identity_on_stdin_only() -> None:
    engine = FakeEngine(exec_stdout="restored; the database before is dispatch_before_x\n")
    outcome = restore(engine, "depot-backup", "latest", IDENTITY, timeout=600)
    ((args, stdin, timeout),) = engine.execs()
    assert args == ("exec", "--interactive", "depot-backup", "depot-backup", "restore", "latest")
    assert (stdin, timeout) == (IDENTITY, 600)
    assert outcome.status == 0


def test_a_dry_run_passes_through_and_needs_no_identity() -> None:
    engine = FakeEngine()
    restore(engine, "depot-backup", "dev-20250101T000000Z.dump", None, dry_run=True)
    ((args, stdin, _),) = engine.execs()
    # No identity, no --interactive: the command's stdin is empty, not this terminal.
    assert args == (
        "exec", "depot-backup", "depot-backup", "restore", "dev-20250101T000000Z.dump",
        "--dry-run",
    )  # fmt: skip
    assert stdin is None


def test_whatever_the_container_echoes_of_the_identity_is_masked() -> None:
    engine = FakeEngine(exec_status=1, exec_stdout=f"read {CANARY}\n", exec_stderr=f"bad {CANARY}")
    outcome = restore(engine, "depot-backup", "latest", IDENTITY)
    assert CANARY not in outcome.stdout + outcome.stderr
    assert outcome.stdout == "read [identity]\n"
    assert outcome.status == 1


@pytest.mark.parametrize(
    "name", ["-rf", "--dry-run", "../etc/passwd", "a/b", "x y", "a\nb", "", ".hidden", "a" * 256]
)
def test_a_backup_name_is_never_an_option_a_path_or_two_words(name: str) -> None:
    with pytest.raises(BackupError, match="is not a backup name"):
        check_backup_name(name)


def test_real_names_and_latest_are_backup_names() -> None:
    for name in ("latest", "prod-20250101T000000Z.dump.age", "dev-20250101T000000Z.dump"):
        assert check_backup_name(name) == name


# --- the identity file ---------------------------------------------------------------------


def _identity_file(folder: Path, mode: int, text: str = IDENTITY) -> Path:
    path = folder / "key.txt"
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_an_identity_only_its_owner_reads_is_read(tmp_path: Path, mode: int) -> None:
    assert read_identity(_identity_file(tmp_path, mode)) == IDENTITY


def test_a_linked_identity_is_judged_by_the_file_it_names(tmp_path: Path) -> None:
    link = tmp_path / "link.txt"
    link.symlink_to(_identity_file(tmp_path, 0o600))
    assert read_identity(link) == IDENTITY


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o660])
def test_an_identity_open_to_others_is_refused_like_ssh_does(tmp_path: Path, mode: int) -> None:
    path = _identity_file(tmp_path, mode)
    with pytest.raises(IdentityError) as error:
        read_identity(path)
    assert str(error.value) == (
        f"--identity {path}: is open to other users (mode {mode:04o}); a private key must be "
        f"readable by its owner only: chmod 600 {path}"
    )


def test_an_identity_that_is_not_one_is_refused_without_showing_it(tmp_path: Path) -> None:
    path = _identity_file(tmp_path, 0o600, "hunter2-not-a-key\n")
    with pytest.raises(IdentityError) as error:
        read_identity(path)
    assert "hunter2" not in str(error.value)
    assert str(error.value) == (
        f"--identity {path}: holds no age identity (a line AGE-SECRET-KEY-1…, as `age-keygen` "
        "writes it)"
    )


def test_missing_folder_and_huge_identities_are_refused(tmp_path: Path) -> None:
    with pytest.raises(IdentityError, match="no such file"):
        read_identity(tmp_path / "absent")
    with pytest.raises(IdentityError, match="is not a file"):
        read_identity(tmp_path)
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe, 0o600)
    with pytest.raises(IdentityError, match="is not a file"):  # refused, not waited on
        read_identity(pipe)
    huge = _identity_file(tmp_path, 0o600, CANARY + "\n" + "#" * 70000)
    with pytest.raises(IdentityError, match="bytes, not an age identity file"):
        read_identity(huge)


# --- the command, through a stand-in docker executable -------------------------------------

FAKE_DOCKER = """\
import hashlib, json, os, sys
args = sys.argv[1:]
stdin = sys.stdin.read() if "--interactive" in args else ""
with open(os.environ["FAKE_DOCKER_LOG"], "a") as log:
    log.write(json.dumps({
        "argv": sys.argv, "env": dict(os.environ),
        "stdin_sha256": hashlib.sha256(stdin.encode()).hexdigest(),
    }) + "\\n")
if args[:2] == ["container", "inspect"]:
    print(json.dumps({"State": {"Running": True}}))
elif args[0] == "exec" and "restore" in args:
    if os.environ.get("FAKE_DOCKER_ECHO"):
        print("what came in:", stdin, file=sys.stderr)
    print("restored " + args[args.index("restore") + 1] + "; the one before: dispatch_before_x")
elif args[0] == "exec" and "list" in args:
    sys.stdout.write(os.environ["FAKE_DOCKER_LISTING"])
    if os.environ.get("FAKE_DOCKER_LIST_FAILS"):
        print("depot-backup: cannot list: offsite:depot/dev", file=sys.stderr)
        sys.exit(1)
elif args[0] == "exec" and "waiting" in args:
    if os.environ.get("FAKE_DOCKER_OLD_AGENT"):
        print("depot-backup: usage: depot-backup schedule | run", file=sys.stderr)
        sys.exit(2)
    sys.stdout.write(os.environ.get("FAKE_DOCKER_WAITING", ""))
elif args[0] == "exec" and "run" in args:
    print("depot-backup: offsite: copy failed", file=sys.stderr)
    sys.exit(1)
else:
    sys.exit(99)
"""


@pytest.fixture
def docker_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in ``docker`` first on PATH; the file it logs each start to."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(f"#!{sys.executable}\n{FAKE_DOCKER}")
    docker.chmod(stat.S_IRWXU)
    log = tmp_path / "docker.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(log))
    monkeypatch.setenv("FAKE_DOCKER_LISTING", LISTING)
    return log


def _starts(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_the_canary_identity_reaches_stdin_and_nothing_else(
    tmp_path: Path, docker_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = _identity_file(tmp_path, 0o600)
    status = main(["restore", "--stack", "dev", "--identity", str(key)])
    printed = capsys.readouterr()
    assert status == 0, printed.err
    assert printed.out == "restored latest; the one before: dispatch_before_x\n"
    starts = _starts(docker_log)
    assert [s["argv"][1:3] for s in starts] == [["container", "inspect"], ["exec", "--interactive"]]
    assert starts[-1]["stdin_sha256"] == hashlib.sha256(IDENTITY.encode()).hexdigest()
    assert starts[-1]["env"]["DOCKER_HOST"] == "unix:///var/run/docker.sock"
    # Not in any argv, any environment docker was started with, the log or anything printed,
    # nor in this process's own environment.
    assert CANARY not in docker_log.read_text()
    assert CANARY not in printed.out + printed.err
    assert not [value for value in os.environ.values() if CANARY in value]


def test_an_echoed_identity_is_masked_in_what_the_command_prints(
    tmp_path: Path,
    docker_log: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_DOCKER_ECHO", "1")
    key = _identity_file(tmp_path, 0o600)
    assert main(["restore", "--stack", "dev", "--identity", str(key), "--dry-run"]) == 0
    printed = capsys.readouterr()
    assert "what came in:" in printed.err
    assert CANARY not in printed.out + printed.err
    assert "--dry-run" in _starts(docker_log)[-1]["argv"]


def test_an_identity_open_to_others_stops_before_docker_is_asked(
    tmp_path: Path, docker_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = _identity_file(tmp_path, 0o644)
    assert main(["restore", "--stack", "dev", "--identity", str(key)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"depot restore: --identity {key}: is open to other users (mode 0644)")
    assert CANARY not in err
    assert not docker_log.exists()


def test_an_encrypted_backup_without_an_identity_is_refused_before_docker(
    docker_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["restore", "--stack", "dev", "--from", "dev-20250101T000000Z.dump.age"]) == 2
    assert capsys.readouterr().err == (
        "depot restore: --from dev-20250101T000000Z.dump.age: is encrypted; give its age "
        "identity with --identity FILE\n"
    )
    assert not docker_log.exists()


def test_a_failed_backup_exits_1_with_the_containers_reason(
    docker_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backup", "--stack", "dev"]) == 1
    assert capsys.readouterr().err == (
        "depot-backup: offsite: copy failed\ndepot backup: failed (see above)\n"
    )


def test_the_listing_command_prints_the_table(
    docker_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backups", "--stack", "dev"]) == 0
    assert capsys.readouterr().out.splitlines()[0].split() == [
        "NAME",
        "TAKEN",
        "(UTC)",
        "SIZE",
        "WHERE",
    ]


def test_the_listing_command_says_how_many_backups_wait_to_leave_the_host(
    docker_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backups", "--stack", "dev"]) == 0
    printed = capsys.readouterr()
    assert printed.out.splitlines()[-1] == "backups waiting to leave the host: 0"
    assert printed.err == ""
    assert [start["argv"][-1] for start in _starts(docker_log)][-2:] == ["list", "waiting"]


def test_a_backup_waiting_longer_than_the_schedule_is_said_loudly_and_exits_1(
    docker_log: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_DOCKER_WAITING", WAITING)
    assert main(["backups", "--stack", "dev"]) == 1
    printed = capsys.readouterr()
    assert printed.out.splitlines()[4] == (
        "backups waiting to leave the host: 3 (kept here, never pruned, until every target "
        "holds a verified copy)"
    )
    assert printed.err == (
        "depot backups: 2 backups waited longer than the schedule to leave the host: a target is "
        "failing (its last failure: docker logs depot-backup); the host keeps them until it is "
        "fixed, and its volume grows by one backup a run\n"
    )


def test_recent_waiting_backups_are_shown_without_failing(
    docker_log: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_DOCKER_WAITING", WAITING.splitlines(keepends=True)[-1])
    assert main(["backups", "--stack", "dev"]) == 0
    assert "backups waiting to leave the host: 1 " in capsys.readouterr().out


def test_an_older_backup_image_lists_and_says_it_cannot_tell_what_waits(
    docker_log: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_DOCKER_OLD_AGENT", "1")
    assert main(["backups", "--stack", "dev"]) == 0
    printed = capsys.readouterr()
    assert len(printed.out.splitlines()) == 4  # the table, and no count it does not know
    assert printed.err == (
        "depot-backup waiting failed: depot-backup: usage: depot-backup schedule | run\n"
        "depot backups: cannot say which backups wait to leave the host (a backup image older "
        "than this depot has no `depot-backup waiting`: deploy it)\n"
    )


def test_a_partial_listing_is_shown_and_exits_1(
    docker_log: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_DOCKER_LIST_FAILS", "1")
    assert main(["backups", "--stack", "dev"]) == 1
    printed = capsys.readouterr()
    assert len(printed.out.splitlines()) == 5  # the table and the waiting count
    assert printed.err == (
        "depot-backup: cannot list: offsite:depot/dev\n"
        "depot backups: not every place could be listed\n"
    )


def test_another_docker_host_is_checked_like_a_stack_files(
    docker_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backups", "--stack", "dev", "--docker-host", "ssh://-oProxyCommand=x@h"]) == 2
    assert "depot backups: --docker-host 'ssh://-oProxyCommand=x@h': is not a Docker host" in (
        capsys.readouterr().err
    )
    assert not docker_log.exists()
    assert main(["backups", "--stack", "dev", "--docker-host", "tcp://10.0.0.7:2376"]) == 0
    assert _starts(docker_log)[0]["env"]["DOCKER_HOST"] == "tcp://10.0.0.7:2376"


@pytest.mark.parametrize("command", ["backup", "backups", "restore"])
def test_a_stack_without_backups_is_told_so_before_docker_is_asked(
    command: str,
    docker_log: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    off = load_settings("dev", stack_config("dev", {"depot:backup": {"enabled": False}}))
    monkeypatch.setattr("depot.cli._settings", lambda _args: off)
    assert main([command, "--stack", "dev"]) == 2
    assert capsys.readouterr().err == (
        f"depot {command}: stack dev takes no backups: set depot:backup.enabled: true in "
        'Pulumi.dev.yaml and deploy it (README "Backups and restore"); nothing was done\n'
    )
    assert not docker_log.exists()
