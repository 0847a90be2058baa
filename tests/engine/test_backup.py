"""The backup drill on the real engine: a lost host restored from its off-host copy.

A stack of its own (dev's, with backups encrypted to an age recipient made here and copied to an
off-host target) runs its Compose export: real postgres (the Debian stand-in) and the backup
service built from the real ``docker/backup.Dockerfile`` on that postgres image. The target is a
separate container, ``rclone serve sftp`` with a volume of its own, on ``backup-network`` only;
its credentials are in the rclone configuration secret (the password obscured, as rclone wants
it). The age private key stays in the test's temporary folder — the operator's machine.

Proven, in order: rows written → ``depot backup`` → postgres' container, ``postgres-data`` and
``postgres-backups`` removed (the host is lost; the off-host copy is not) → the stack up again
on an empty database → ``depot restore --identity KEY`` → the rows are back. A dump corrupted on
the target, and one that is well encrypted and checksummed but unreadable to ``pg_restore``,
are both refused with the database untouched. (The month of retention runs in
tests/engine/test_backup_agent.py, on names of its own.) No container log, no file of the
backup volume or of the target holds the database password or the target's, nothing there is a
plain dump; while the backup and the restore run, the private key is in no process's command
line or environment, and the database password in none but the postgres clients' environment.

The depot's fixed names (``depot-postgres``, ``postgres-data`` …) are the session's Compose
depots' too: conftest runs this module before them, and it removes everything it made.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import secrets
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from depot.catalog import POSTGRES_BACKUPS_VOLUME, POSTGRES_DATA_VOLUME
from depot.outputs.secret_files import SECRETS_DIR, secret_file_name
from tests.engine.backup_names import backup_name, good_backups, stamp_of
from tests.engine.conftest import FIGURES, WAIT_TIMEOUT
from tests.engine.harness import TIER_LABEL, VOLUME_MOUNT, TierDepot, docker, volume_archive

pytestmark = pytest.mark.engine

STACK = "dev"  # its Docker host is this engine; the CLI reads nothing else from the stack file
ROWS = 100_000
REMOTE = "offsite"
TARGET = f"{REMOTE}:depot/drill"
TARGET_DIR = "/data/depot/drill"  # the same folder, inside the sftp container
SFTP_PORT = 2022
SFTP_USER = "depot"
RETENTION = {"hourly": 0, "daily": 7, "weekly": 4, "monthly": 6, "local": 2}  # prod's
NAME = backup_name(STACK)
AGE_HEADER = b"age-encryption.org/v1\n"
PGDMP = b"PGDMP"  # the first bytes of every custom-format dump
COMMAND_TIMEOUT = 300  # seconds: `depot backup` and `depot restore` of the drill's database
# Seconds `depot backup` of the drill's 100,000 rows may take (about 2 s here). rclone retrying
# its failed saves into a read-only configuration took 41 s for the same backup.
BACKUP_SECONDS = 20


@dataclass
class Drill:
    """The drill's depot, its target, and what only the operator holds."""

    depot: TierDepot
    key: Path  # the age identity file: the operator's, never in the deployment
    recipient: str
    sftp: str  # the target's container
    sftp_volume: str
    helper_image: str  # Debian with rclone and tar: the target and the helper containers
    sftp_secrets: tuple[str, str]  # the target's password, and as rclone.conf holds it

    @property
    def password(self) -> str:
        path = self.depot.directory / SECRETS_DIR / secret_file_name("database_password")
        return path.read_text().strip()

    def identity(self) -> str:
        lines = self.key.read_text().splitlines()
        return next(line for line in lines if line.startswith("AGE-SECRET-KEY-1"))


# --- the drill's depot and its target --------------------------------------------------------


@pytest.fixture(scope="module")
def drill(standin_images: dict[str, str]) -> Iterator[Drill]:
    """The drill's stack up (postgres and backup), its first backup on the sftp target."""
    with tempfile.TemporaryDirectory(prefix="depot-engine-backup-") as directory:
        folder = Path(directory)
        key = folder / "operator" / "age-identity.txt"
        key.parent.mkdir(mode=0o700)
        recipient = _age_keygen(key)
        sftp_password = secrets.token_urlsafe(24)
        helper = standin_images["postgres"]  # Debian with rclone and tar, for helper containers
        overrides = {
            "depot:backup": {
                "enabled": True,
                "schedule": "24h",
                "retention": RETENTION,
                "recipients": [recipient],
                "targets": [TARGET],
            }
        }
        obscured = _obscure(helper, sftp_password)
        # As an operator writes it: nothing of what rclone's sftp backend detects on first use
        # (shell_type, the hash commands) is stated. rclone saves it into its configuration,
        # here a read-only secret; depot-backup gives it a private copy (see BACKUP_SECONDS).
        rclone_config = (
            f"[{REMOTE}]\ntype = sftp\nhost = sftp-target\nport = {SFTP_PORT}\n"
            f"user = {SFTP_USER}\npass = {obscured}\n"
        )
        (folder / "project").mkdir()
        depot = TierDepot.create(
            STACK,
            folder / "project",
            standin_images,
            overrides,
            {"depot:backupRcloneConfig": rclone_config},
        )
        config_file = depot.directory / SECRETS_DIR / secret_file_name("backup_rclone_config")
        config_file.write_text(rclone_config)
        config_file.chmod(0o644)  # as the harness does for Compose: uid 70 reads the bind mount
        sftp = f"{depot.project}-sftp"
        drill = Drill(
            depot, key, recipient, sftp, f"{sftp}-data", helper, (sftp_password, obscured)
        )
        try:
            depot.compose("create", "--no-build", "postgres", "backup")
            _start_target(drill, sftp_password)
            _up(depot)
            yield drill
        finally:
            docker("rm", "--force", "--volumes", sftp, check=False)
            docker("volume", "rm", "--force", drill.sftp_volume, check=False)
            depot.remove()
        leftovers = depot.leftovers()
        assert not leftovers, f"the drill left {leftovers} of {depot.project} on the engine"


def _up(depot: TierDepot) -> None:
    """postgres and the backup service up; the backup's first run (at start) over."""
    depot.up("postgres", "backup", timeout=WAIT_TIMEOUT)
    # Healthy once the run's backup is good; its pruning follows. The run holds the lock.
    _wait_for(lambda: "next run at" in _logs("depot-backup"), 60, "the backup's first run")


def _age_keygen(key: Path) -> str:
    """A new age identity in ``key`` (as the operator makes one); its public key."""
    made = subprocess.run(
        ["age-keygen", "-o", str(key)], capture_output=True, text=True, check=False, timeout=30
    )
    assert made.returncode == 0, made.stderr[-300:]
    public = subprocess.run(
        ["age-keygen", "-y", str(key)], capture_output=True, text=True, check=True, timeout=30
    )
    return public.stdout.strip()


def _obscure(image: str, password: str) -> str:
    """``rclone obscure`` of ``password``, read from stdin (never a command line)."""
    ran = subprocess.run(
        ["docker", "run", "--rm", "--interactive", image, "rclone", "obscure", "-"],
        input=password, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-300:]
    return ran.stdout.strip()


def _start_target(drill: Drill, password: str) -> None:
    """``rclone serve sftp`` on backup-network only, its data on a volume of its own."""
    label = f"{TIER_LABEL}={drill.depot.project}"
    docker("volume", "create", "--label", label, drill.sftp_volume)
    started = subprocess.run(
        [
            "docker", "run", "--detach", "--name", drill.sftp, "--label", label,
            "--network", "backup-network", "--network-alias", "sftp-target",
            # Taken from this process's environment: the value is on no command line.
            "--env", "RCLONE_USER", "--env", "RCLONE_PASS",
            "--volume", f"{drill.sftp_volume}:/data",
            drill.helper_image, "rclone", "serve", "sftp", "/data", "--addr", f":{SFTP_PORT}",
            # No listing cache: the test changes files on the target's disk behind its back.
            "--dir-cache-time", "0s",
        ],
        env={**os.environ, "RCLONE_USER": SFTP_USER, "RCLONE_PASS": password},
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr[-500:]
    docker("exec", drill.sftp, "mkdir", "-p", TARGET_DIR)
    _wait_for(lambda: "SFTP server listening" in _logs(drill.sftp), 20, "the sftp target to listen")


def _wait_for(ready: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        assert time.monotonic() < deadline, f"waited {seconds:g} s for {what}"
        time.sleep(0.2)


def _logs(container: str) -> str:
    logs = docker("logs", container, check=False)
    return logs.stdout + logs.stderr


# --- helpers -----------------------------------------------------------------------------


def sql(statement: str, database: str = "dispatch") -> str:
    """``statement`` over postgres' local socket, on psql's stdin."""
    ran = subprocess.run(
        [
            "docker", "exec", "--interactive", "--user", "postgres", "depot-postgres",
            "psql", "--no-psqlrc", "--tuples-only", "--no-align", "--set", "ON_ERROR_STOP=1",
            "--dbname", database,
        ],
        input=statement, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-500:]
    return ran.stdout.strip()


CREATE_ROWS = (
    "CREATE TABLE drill_rows (id bigint PRIMARY KEY, note text NOT NULL);"  # noqa: S608 - constants
    f"INSERT INTO drill_rows SELECT g, md5(g::text) FROM generate_series(1, {ROWS}) g;"
)
FINGERPRINT = "SELECT count(*) || ' ' || md5(string_agg(note, ',' ORDER BY id)) FROM drill_rows"


def databases() -> set[str]:
    return set(sql("SELECT datname FROM pg_database", "postgres").split())


def depot_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``depot ARGS`` as the operator runs it, in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "depot", *args, "--stack", STACK],
        capture_output=True, text=True, check=False, timeout=COMMAND_TIMEOUT,
    )  # fmt: skip


POSTGRES_CLIENTS = frozenset({"pg_dump", "pg_restore", "psql", "timeout"})
"""The processes that take the database password in their environment (``PGPASSWORD``, as
libpq reads it), and no other: the contract's one place for it besides its secret file.
``timeout`` bounds pg_dump's run and hands its environment on to it."""


class ProcessWatch:
    """Every process's command line and environment on this machine (containers' included: one
    kernel), read from /proc while a command runs: where ``needles`` were seen, as
    ``(program, "cmdline" | "environ")``."""

    def __init__(self, needles: Iterable[str]) -> None:
        self.needles = [needle.encode() for needle in needles]
        self.found: set[tuple[str, str]] = set()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> ProcessWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _watch(self) -> None:
        while not self._stop.is_set():
            for pid in filter(str.isdigit, os.listdir("/proc")):
                for part in ("cmdline", "environ"):
                    try:
                        content = Path(f"/proc/{pid}/{part}").read_bytes()
                        if any(needle in content for needle in self.needles):
                            program = Path(f"/proc/{pid}/comm").read_text().strip()
                            self.found.add((program, part))
                    except OSError:
                        continue  # gone meanwhile
            self.samples += 1
            time.sleep(0.05)


def timed(run: Callable[[], subprocess.CompletedProcess[str]]) -> tuple[float, str, str, int]:
    began = time.monotonic()
    result = run()
    return time.monotonic() - began, result.stdout, result.stderr, result.returncode


def target_files(drill: Drill) -> dict[str, bytes]:
    """Every file on the sftp target (under its data folder), by path."""
    return _files(["docker", "exec", drill.sftp, "tar", "-C", "/data", "-cf", "-", "."])


def local_files(drill: Drill) -> dict[str, bytes]:
    """Every file of the postgres-backups volume, copied out of a helper container."""
    label = f"{TIER_LABEL}={drill.depot.project}"
    archive = volume_archive(POSTGRES_BACKUPS_VOLUME, drill.helper_image, label=label)
    return _members(archive, f"{VOLUME_MOUNT}/")


def _files(command: list[str]) -> dict[str, bytes]:
    ran = subprocess.run(command, capture_output=True, check=False, timeout=120)
    assert ran.returncode == 0, ran.stderr[-500:]
    return _members(ran.stdout, "./")


def _members(archive: bytes, folder: str) -> dict[str, bytes]:
    """Each file of a tar stream by its path under ``folder``."""
    files = {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as opened:
        for member in opened.getmembers():
            extracted = opened.extractfile(member) if member.isfile() else None
            if extracted is not None:
                files[member.name.removeprefix(folder)] = extracted.read()
    return files


# --- the drill ---------------------------------------------------------------------------


def test_a_lost_host_is_restored_from_the_off_host_copy(drill: Drill) -> None:
    sql(CREATE_ROWS)
    before = sql(FINGERPRINT)
    assert before.startswith(f"{ROWS} ")

    with ProcessWatch([drill.password]) as watch:
        backup_seconds, out, err, status = timed(lambda: depot_cli("backup"))
    assert status == 0, err
    assert backup_seconds < BACKUP_SECONDS, err
    assert watch.samples > 5, "the process list was read too rarely to mean anything"
    # pg_dump and pg_restore have it in their environment, as PGPASSWORD: nothing else does.
    assert {part for _, part in watch.found} <= {"environ"}, watch.found
    assert {program for program, _ in watch.found} <= POSTGRES_CLIENTS, watch.found

    listed = depot_cli("backups")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()[1:]]
    newest = rows[0][0]
    assert NAME.match(newest), listed.stdout
    assert {row[-1] for row in rows if row[0] == newest} == {"local", TARGET}
    (dump,) = [
        content for path, content in target_files(drill).items() if path == f"depot/drill/{newest}"
    ]

    # The host is lost: postgres, its data and the local backups. The target keeps its copy.
    drill.depot.compose("rm", "--stop", "--force", "postgres", "backup", timeout=120)
    docker("volume", "rm", POSTGRES_DATA_VOLUME, POSTGRES_BACKUPS_VOLUME)
    _up(drill.depot)
    assert "drill_rows" not in sql("SELECT tablename FROM pg_tables")  # a new, empty database
    # The new service saw the target's backup younger than its interval and took none of the
    # empty database: the lost host's backup is still the newest, on the target.
    assert f"the newest good backup is on {TARGET}" in _logs("depot-backup")
    assert max(good_backups(target_files(drill), NAME, "depot/drill/"), key=stamp_of) == newest

    kept = databases()
    dry = depot_cli("restore", "--dry-run")  # needs no identity: nothing is decrypted
    assert dry.returncode == 0, dry.stderr
    assert f"would restore {newest} " in dry.stdout
    assert f"from {TARGET}" in dry.stdout
    assert databases() == kept
    assert "drill_rows" not in sql("SELECT tablename FROM pg_tables")

    with ProcessWatch([drill.identity()]) as identity, ProcessWatch([drill.password]) as password:
        restore_seconds, out, err, status = timed(
            lambda: depot_cli("restore", "--identity", str(drill.key))
        )
    assert status == 0, err
    assert not identity.found, f"the age identity was seen in {sorted(identity.found)}"
    assert {part for _, part in password.found} <= {"environ"}, password.found
    assert {program for program, _ in password.found} <= POSTGRES_CLIENTS, password.found
    assert drill.identity() not in out + err
    assert sql(FINGERPRINT) == before
    (kept_as,) = re.findall(r"dispatch_before_\w+", out)
    assert kept_as in databases()  # the empty one swapped out, kept, never dropped
    assert not [name for name in databases() if name.startswith("dispatch_restore_")]

    FIGURES["backup drill"] = (
        f"{ROWS} rows (dump {len(dump) / 1024 / 1024:.1f} MiB encrypted): `depot backup` "
        f"{backup_seconds:.1f} s, `depot restore` {restore_seconds:.1f} s; RPO 24 h + "
        f"{backup_seconds:.0f} s (the schedule's interval plus a backup's duration)"
    )


def _refused(drill: Drill, name: str) -> str:
    """``depot restore --from name`` refused, the database as it was; what it said."""
    before, kept = sql(FINGERPRINT), databases()
    refused = depot_cli("restore", "--from", name, "--identity", str(drill.key))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert sql(FINGERPRINT) == before
    assert databases() == kept  # no half-restored database left behind
    return refused.stderr


def _write(drill: Drill, name: str, content: bytes) -> None:
    """``name`` written on the target (through the target's own container, as bit rot would)."""
    ran = subprocess.run(
        ["docker", "exec", "--interactive", drill.sftp, "sh", "-c", 'cat > "$1"', "sh",
         f"{TARGET_DIR}/{name}"],
        input=content, capture_output=True, check=False, timeout=30,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-300:]


def _put(drill: Drill, name: str, content: bytes) -> None:
    """``name`` onto the target with its sidecar, as a backup run writes them: sidecar last."""
    _write(drill, name, content)
    _write(drill, f"{name}.sha256", f"{hashlib.sha256(content).hexdigest()}  {name}\n".encode())


def _remove(drill: Drill, *names: str) -> None:
    paths = [f"{TARGET_DIR}/{name}" for name in names]
    docker("exec", drill.sftp, "rm", "-f", "--", *paths)


def test_a_corrupted_dump_is_refused_and_the_database_kept(drill: Drill) -> None:
    files = target_files(drill)
    # One the host does not hold (taken before the host was lost): a restore fetches it there.
    name = max(
        good_backups(files, NAME, "depot/drill/") - good_backups(local_files(drill), NAME),
        key=stamp_of,
    )
    original = files[f"depot/drill/{name}"]
    # One byte changed on the target after its checksum was written: bit rot, a bad copy.
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0xFF
    _write(drill, name, bytes(flipped))
    try:
        said = _refused(drill, name)
    finally:
        _write(drill, name, original)
    assert f"{name} does not match its checksum: not used" in said, said
    assert f"no intact copy of {name}" in said, said

    # Well encrypted and checksummed, but no dump inside: what verification must catch.
    bogus_name = f"{STACK}-20000101T000000Z.dump.age"
    garbage = PGDMP + secrets.token_bytes(4096)
    encrypted = subprocess.run(
        ["age", "--encrypt", "--recipient", drill.recipient],
        input=garbage, capture_output=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    _put(drill, bogus_name, encrypted)
    try:
        said = _refused(drill, bogus_name)
        assert f"{bogus_name} cannot be read by pg_restore: not restored" in said, said
    finally:
        _remove(drill, bogus_name, f"{bogus_name}.sha256")


def test_no_password_and_no_plain_dump_in_logs_volume_or_target(drill: Drill) -> None:
    canaries = (drill.password, *drill.sftp_secrets)
    for container in ("depot-postgres", "depot-backup", drill.sftp):
        logs = _logs(container)
        assert not [c for c in canaries if c in logs], container
    inspected = docker("inspect", "depot-backup").stdout
    assert not [c for c in canaries if c in inspected]

    target = target_files(drill)
    local = local_files(drill)
    assert good_backups(target, NAME, "depot/drill/")
    for where, files in (("target", target), ("postgres-backups", local)):
        for path, content in files.items():
            assert not [c for c in canaries if c.encode() in content], f"{where}: {path}"
            assert not content.startswith(PGDMP), f"{where}: {path} is a plain dump"
            if path.endswith(".dump.age"):
                assert content.startswith(AGE_HEADER), f"{where}: {path}"
    # The plain dump lives only while a run verifies and encrypts it.
    assert not [path for path in local if path.startswith(".work/")]
