"""The backup image on the real engine: docker/backup.Dockerfile built on the postgres stand-in.

A private set of containers, outside any Compose project: the postgres stand-in (as the stack
runs it), the backup service as the deployment runs it (user 70, read-only root, tmpfs /tmp, no
capabilities, the database password and an rclone config as secret files) and an SFTP server
(`rclone serve sftp`) as its off-host target. Faults are brought in from outside: wrappers of
pg_dump and rclone on a read-only mount put first on PATH for one `docker exec`, and bytes
changed on the volumes. Every name starts with ``agent-`` and a random suffix; all is removed
at the end, also when a test fails. The service keeps prod's rules (7 daily, 4 weekly, 6 monthly
off the host, 2 on it), and retention keeps exactly the grandfather-father-son set across a month
of daily runs whose clock the test sets.
"""

from __future__ import annotations

import io
import re
import secrets
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from depot.standins import ensure_backup_image
from tests.engine.backup_names import STAMP, backup_name, good_backups, stamp_of
from tests.engine.conftest import FIGURES, engine_in_use, names_resolved_by_the_engine
from tests.engine.harness import TIER_LABEL, VOLUME_MOUNT, docker, volume_archive

pytestmark = pytest.mark.engine

ROWS = 100_000
SEED_SQL = (
    "CREATE TABLE engine_rows AS SELECT g AS id, md5(g::text) AS note "
    "FROM generate_series(1, 100000) AS g; "
    "CREATE TABLE engine_notes (note text); "
    "INSERT INTO engine_notes VALUES ('written before the backup')"
)
STACK = "agent"
TARGET = "offsite:depot"
TARGET_FOLDER = "depot/"  # TARGET's path on the SFTP server's volume
BACKUP_NAME = backup_name(STACK)
READY_TIMEOUT = 90  # seconds for postgres, the SFTP server and the first backup
POLL = 0.5
BUSYBOX_APPLETS = "/tmp/busybox"  # in the service's tmpfs: `busybox --install -s` links
# A wrapper put on PATH by `docker exec -e PATH=/faults:...`; the real tool is found on the PATH
# without /faults. DEPOT_FAULT picks the fault.
FAULT_PG_DUMP = """#!/bin/sh
PATH=$(echo "$PATH" | sed 's|/faults:||')
for arg; do case $arg in --file=*) out=${arg#--file=} ;; esac; done
case ${DEPOT_FAULT:-} in
garbage) printf 'this is not a custom-format dump\\n' >"$out" ;;
truncate)
	pg_dump "$@" || exit
	size=$(wc -c <"$out")
	truncate -s $((size / 2)) "$out"
	;;
*) exec pg_dump "$@" ;;
esac
"""
FAULT_RCLONE = """#!/bin/sh
PATH=$(echo "$PATH" | sed 's|/faults:||')
rclone "$@" || exit
[ "${DEPOT_FAULT:-}" = garble-target ] || exit 0
for last; do :; done
case " $* " in
*" copyto "*) case $last in *.age) printf 'garbled by the target' | rclone rcat "$last" ;; esac ;;
esac
"""


def psql(container: str, sql: str, database: str = "dispatch") -> str:
    """``sql`` over postgres' socket as the postgres user: its unaligned output."""
    ran = docker(
        "exec",
        "--user",
        "70",
        container,
        "psql",
        "--username=postgres",
        f"--dbname={database}",
        "--no-psqlrc",
        "--tuples-only",
        "--no-align",
        "--set=ON_ERROR_STOP=1",
        f"--command={sql}",
    )
    return ran.stdout.strip()


def wait_until(what: str, check: Callable[[], bool], timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(POLL)
    raise AssertionError(f"{what}: not within {timeout} s")


@dataclass
class Site:
    """The containers, volumes and secrets of one test module."""

    suffix: str
    directory: Path
    image: str
    postgres_image: str
    password: str
    sftp_password: str
    identity: bytes
    recipient: str
    names: list[str] = field(default_factory=list)

    def name(self, role: str) -> str:
        return f"agent-{role}-{self.suffix}"

    @property
    def postgres(self) -> str:
        return self.name("postgres")

    @property
    def backup(self) -> str:
        return self.name("backup")

    @property
    def network(self) -> str:
        return self.name("net")

    def volume(self, role: str) -> str:
        return self.name(role)

    def exec_backup(
        self,
        *args: str,
        stdin: bytes | None = None,
        fault: str = "",
        busybox: bool = False,
        timeout: float = 300,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """``depot-backup ARGS`` in the running backup service, as `depot backup` runs it.

        With ``busybox``, as on the Alpine image: busybox's ash runs it, and busybox's applets
        come first on PATH (postgres' clients, age and rclone are found after them).
        """
        path = f"/faults:{self.path}"
        command = ["depot-backup", *args]
        if busybox:
            path = f"{BUSYBOX_APPLETS}:{path}"
            command = ["busybox", "sh", "/usr/local/bin/depot-backup", *args]
        given = [f"{key}={value}" for key, value in (env or {}).items()]
        variables = [f"DEPOT_FAULT={fault}", f"PATH={path}", *given]
        options = [option for variable in variables for option in ("--env", variable)]
        ran = subprocess.run(
            ["docker", "exec", "--interactive", *options, self.backup, *command],
            input=stdin if stdin is not None else b"",
            capture_output=True,
            check=False,
            timeout=timeout,
        )
        return subprocess.CompletedProcess(
            ran.args, ran.returncode, ran.stdout.decode(), ran.stderr.decode()
        )

    @property
    def path(self) -> str:
        inspected = docker("inspect", "--format", "{{json .Config.Env}}", self.backup).stdout
        match = re.search(r'"PATH=([^"]*)"', inspected)
        assert match
        return match.group(1)

    def listed(self) -> list[list[str]]:
        ran = self.exec_backup("list")
        assert ran.returncode == 0, ran.stderr
        return [line.split("\t") for line in ran.stdout.splitlines()]

    def volume_bytes(self, role: str) -> bytes:
        """Every file of a volume, as one tar stream (names and contents)."""
        label = f"{TIER_LABEL}={self.name('helper')}"
        return volume_archive(self.volume(role), self.image, label=label)

    def volume_files(self, role: str) -> list[str]:
        with tarfile.open(fileobj=io.BytesIO(self.volume_bytes(role))) as archive:
            names = [member.name for member in archive.getmembers() if member.isfile()]
        return sorted(name.removeprefix(f"{VOLUME_MOUNT}/") for name in names)

    def databases(self) -> list[str]:
        listed = psql(self.postgres, "SELECT datname FROM pg_database ORDER BY 1", "postgres")
        return listed.split()


def start_postgres(site: Site) -> None:
    docker(
        "run", "--detach", "--name", site.postgres, "--network", site.network,
        "--network-alias", "postgres", "--shm-size", "128m",
        "-v", f"{site.volume('pgdata')}:/var/lib/postgresql/data",
        "-v", f"{site.directory / 'database_password'}:/run/secrets/database_password:ro",
        "--env", "POSTGRES_PASSWORD_FILE=/run/secrets/database_password",
        "--env", "POSTGRES_DB=dispatch",
        site.postgres_image,
    )  # fmt: skip

    def ready() -> bool:
        # Over TCP: the entrypoint's first, socket-only server is not the real one.
        probe = ["pg_isready", "--host=127.0.0.1", "--username=postgres", "--dbname=dispatch"]
        return docker("exec", site.postgres, *probe, check=False).returncode == 0

    wait_until("postgres accepting TCP connections", ready)


def start_backup(site: Site) -> None:
    """The service as the deployment runs it (contract section 2), its target an SFTP remote."""
    secrets_dir = site.directory
    docker(
        "run", "--detach", "--name", site.backup, "--network", site.network,
        "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges", "--user", "70:70",
        "-v", f"{site.volume('backups')}:/backups",
        "-v", f"{secrets_dir / 'database_password'}:/run/secrets/database_password:ro",
        "-v", f"{secrets_dir / 'rclone.conf'}:/run/secrets/backup_rclone_config:ro",
        "-v", f"{secrets_dir / 'faults'}:/faults:ro",
        "--env", "PGHOST=postgres", "--env", "PGPORT=5432",
        "--env", "PGUSER=postgres", "--env", "PGDATABASE=dispatch",
        "--env", f"DEPOT_BACKUP_STACK={STACK}", "--env", "DEPOT_BACKUP_INTERVAL=86400",
        "--env", "DEPOT_BACKUP_KEEP_HOURLY=0", "--env", "DEPOT_BACKUP_KEEP_DAILY=7",
        "--env", "DEPOT_BACKUP_KEEP_WEEKLY=4", "--env", "DEPOT_BACKUP_KEEP_MONTHLY=6",
        "--env", "DEPOT_BACKUP_KEEP_LOCAL=2",
        "--env", f"DEPOT_BACKUP_RECIPIENTS={site.recipient}",
        "--env", f"DEPOT_BACKUP_TARGETS={TARGET}",
        "--env", "DATABASE_PASSWORD_FILE=/run/secrets/database_password",
        "--env", "RCLONE_CONFIG=/run/secrets/backup_rclone_config",
        site.image,
    )  # fmt: skip


def start_sftp(site: Site) -> None:
    """`rclone serve sftp` from the backup image: the off-host target, on its own volume."""
    docker(
        "run", "--detach", "--name", site.name("sftp"), "--network", site.network,
        "--network-alias", "sftp", "--user", "0", "--entrypoint", "rclone",
        "--env", "RCLONE_CONFIG=/dev/null",
        "-v", f"{site.volume('offsite')}:/data", site.image,
        "serve", "sftp", "/data", "--addr", ":2022",
        "--user", "depot", "--pass", site.sftp_password,
    )  # fmt: skip

    def listening() -> bool:
        logs = docker("logs", site.name("sftp"), check=False)
        return "SFTP server listening" in logs.stdout + logs.stderr

    wait_until("the SFTP server listening", listening)


def secret_files(site: Site) -> None:
    directory = site.directory
    (directory / "database_password").write_text(site.password)
    obscure = [
        "docker", "run", "--rm", "--interactive", "--network", "none",
        "--entrypoint", "rclone", site.image, "obscure", "-",
    ]  # fmt: skip
    obscured = subprocess.run(
        obscure,
        input=site.sftp_password,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    (directory / "rclone.conf").write_text(
        "[offsite]\ntype = sftp\nhost = sftp\nport = 2022\nuser = depot\n"
        f"pass = {obscured}\nshell_type = none\n"
    )
    for secret in ("database_password", "rclone.conf"):
        (directory / secret).chmod(0o400)
        # The contract's secret files: owner 70 (postgres and the backup service), mode 0400.
        subprocess.run(["chown", "70:70", str(directory / secret)], check=True, timeout=30)
    faults = directory / "faults"
    faults.mkdir(mode=0o755)
    for tool, body in (("pg_dump", FAULT_PG_DUMP), ("rclone", FAULT_RCLONE)):
        (faults / tool).write_text(body)
        (faults / tool).chmod(0o755)


def age_identity(image: str) -> tuple[bytes, str]:
    """A fresh age key pair (age-keygen in the image): the identity file and its recipient."""
    made = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "--entrypoint", "age-keygen", image],
        capture_output=True,
        check=True,
        timeout=60,
    )
    match = re.search(rb"public key: (age1[0-9a-z]+)", made.stdout)
    assert match
    return made.stdout, match.group(1).decode()


@pytest.fixture(scope="module")
def site(standin_builds: dict[str, str]) -> Iterator[Site]:
    """Everything the module runs, on names of its own: it may share the engine with the other
    engine tests (conftest ``PRIVATE_MODULES``), so it needs no stand-in depot's names free; but
    not with the engine in a swarm, whose leave would drop the names its containers use."""
    with engine_in_use(), names_resolved_by_the_engine():
        yield from _site(standin_builds)


def _site(standin_images: dict[str, str]) -> Iterator[Site]:
    image, built = ensure_backup_image(standin_images["postgres"])
    FIGURES["backup image"] = "cached" if built is None else f"built {built:.0f} s"
    identity, recipient = age_identity(image)
    with tempfile.TemporaryDirectory(prefix="agent-backup-") as directory:
        path = Path(directory)
        path.chmod(0o755)
        site = Site(
            suffix=secrets.token_hex(3),
            directory=path,
            image=image,
            postgres_image=standin_images["postgres"],
            password=f"Canary{secrets.token_hex(12)}",
            sftp_password=f"SftpCanary{secrets.token_hex(12)}",
            identity=identity,
            recipient=recipient,
        )
        try:
            secret_files(site)
            docker("network", "create", site.network)
            start_postgres(site)
            psql(
                site.postgres,
                SEED_SQL,
            )
            start_sftp(site)
            start_backup(site)
            yield site
        finally:
            for role in ("backup", "sftp", "postgres", "helper"):
                docker("rm", "--force", site.name(role), check=False)
            docker("network", "rm", site.network, check=False)
            for role in ("pgdata", "backups", "offsite"):
                docker("volume", "rm", "--force", site.volume(role), check=False)


def fingerprint(site: Site) -> str:
    """The rows' count and a digest of their content."""
    return psql(
        site.postgres,
        "SELECT count(*) || ' ' || md5(string_agg(note, ',' ORDER BY id)) FROM engine_rows",
    )


def test_the_service_backs_up_at_start_and_turns_healthy(site: Site) -> None:
    def backed_up() -> bool:
        listed = site.exec_backup("list")
        return listed.returncode == 0 and len(listed.stdout.splitlines()) == 2

    wait_until("the first backup, at start", backed_up)
    [local, remote] = site.listed()
    assert local[0] == remote[0]
    assert re.fullmatch(rf"{STACK}-\d{{8}}T\d{{6}}Z\.dump\.age", local[0])
    assert (local[3], remote[3]) == ("local", TARGET)

    def healthy() -> bool:
        state = docker("inspect", "--format", "{{.State.Health.Status}}", site.backup).stdout
        return state.strip() == "healthy"

    wait_until("the backup service healthy", healthy, timeout=60)
    logs = docker("logs", site.backup)
    assert "next run at" in logs.stdout


def test_a_run_of_100000_rows_and_a_restore_from_the_target_after_losing_everything(
    site: Site,
) -> None:
    # A second backup now (the one at start may be of the same second: wait one).
    time.sleep(1)
    before = fingerprint(site)
    began = time.monotonic()
    ran = site.exec_backup("run")
    run_seconds = time.monotonic() - began
    assert ran.returncode == 0, ran.stderr
    [name] = re.findall(r"backup (\S+) is good \((\d+) bytes", ran.stdout)[0][:1]
    size = int(re.findall(r"is good \((\d+) bytes", ran.stdout)[0])

    # The host is lost: postgres' data and the local backups. Only the target has them.
    docker("rm", "--force", site.postgres)
    docker("volume", "rm", site.volume("pgdata"))
    for file in site.volume_files("backups"):
        if file.startswith(f"{STACK}-"):
            docker("exec", site.backup, "rm", f"/backups/{file}")
    start_postgres(site)  # an empty dispatch database, as a new host starts
    assert psql(site.postgres, "SELECT to_regclass('engine_rows') IS NULL") == "t"

    dry = site.exec_backup("restore", "latest", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would restore {name}" in dry.stdout
    assert f"from {TARGET}" in dry.stdout
    assert "nothing was changed" in dry.stdout
    databases = site.databases()
    assert not any(db.startswith("dispatch_") for db in databases)

    began = time.monotonic()
    restored = site.exec_backup("restore", "latest", stdin=site.identity)
    restore_seconds = time.monotonic() - began
    assert restored.returncode == 0, restored.stderr
    assert fingerprint(site) == before
    assert f"public.engine_rows: {ROWS} rows" in restored.stdout
    assert "public.engine_notes: 1 rows" in restored.stdout
    kept = re.search(r"the database it replaced is kept as (dispatch_before_\d{8}_\d{6})$",
                     restored.stdout.strip())  # fmt: skip
    assert kept, restored.stdout
    assert kept.group(1) in site.databases()
    # The replaced database is kept open for inspection; the restored one is dispatch.
    allowed = f"SELECT datallowconn FROM pg_database WHERE datname = '{kept.group(1)}'"  # noqa: S608 (a name matched above: digits and _)
    assert psql(site.postgres, allowed, "postgres") == "t"
    assert not any(db.startswith("dispatch_restore_") for db in site.databases())
    FIGURES[f"backup of {ROWS:,} rows"] = (
        f"run {run_seconds:.1f} s ({size:,} bytes encrypted, local + SFTP, verified), "
        f"restore from the SFTP target {restore_seconds:.1f} s"
    )


def test_a_wrong_or_missing_identity_fails_the_restore_with_dispatch_untouched(
    site: Site,
) -> None:
    psql(site.postgres, "INSERT INTO engine_notes VALUES ('written after the restore')")
    databases = site.databases()
    wrong, _ = age_identity(site.image)
    for identity in (wrong, b""):
        restored = site.exec_backup("restore", "latest", stdin=identity)
        assert restored.returncode == 1
        assert (
            "the identity on stdin is missing or is not one of its recipients"
            in (restored.stderr.splitlines()[-1])
        )
        assert site.databases() == databases
        notes = psql(site.postgres, "SELECT count(*) FROM engine_notes")
        assert notes == "2"
    assert not site.volume_files("backups") or not any(
        file.startswith(".work/") for file in site.volume_files("backups")
    )


def test_corrupted_dumps_are_failed_backups_never_counted(site: Site) -> None:
    before = {(line[0], line[3]) for line in site.listed()}
    last_good = docker("exec", site.backup, "cat", "/backups/status/last-good").stdout
    cases = {
        "garbage": "cannot be read back by pg_restore: failed, not counted",
        "truncate": "cannot be read back by pg_restore: failed, not counted",
        "garble-target": f"is kept locally but not verified on: {TARGET}",
    }
    for fault, message in cases.items():
        time.sleep(1)  # a new second, a new name
        ran = site.exec_backup("run", fault=fault)
        assert ran.returncode == 1, fault
        assert message in ran.stderr.splitlines()[-1], (fault, ran.stderr)
        failure = docker("exec", site.backup, "cat", "/backups/status/last-failure").stdout
        assert message in failure
        assert docker("exec", site.backup, "cat", "/backups/status/last-good").stdout == last_good
        assert ".work" not in " ".join(site.volume_files("backups"))
        offsite = site.volume_files("offsite")
        sidecars = {file.removesuffix(".sha256") for file in offsite if file.endswith(".sha256")}
        assert {file for file in offsite if not file.endswith(".sha256")} == sidecars, offsite
    # Only the last run reached the target; its copy there was garbled and removed. Its local
    # copy was verified: a good local backup, but the run failed and last-good stayed.
    [kept_locally] = re.findall(r"depot-backup: (\S+) is kept locally", ran.stderr)
    after = {(line[0], line[3]) for line in site.listed()}
    assert after == before | {(kept_locally, "local")}


def test_a_local_copy_that_rotted_is_skipped_and_a_rotten_everywhere_backup_is_refused(
    site: Site,
) -> None:
    time.sleep(1)
    ran = site.exec_backup("run")
    assert ran.returncode == 0, ran.stderr
    [name] = re.findall(r"backup (\S+) is good", ran.stdout)
    # Flip bytes in the local copy: the restore takes the target's intact copy instead. A
    # session holds dispatch open meanwhile, as the dispatch service does: the swap ends it.
    docker("exec", site.backup, "sh", "-c", f"printf rot >> /backups/{name}")
    docker(
        "exec", "--detach", "--user", "70", site.postgres, "psql", "--username=postgres",
        "--dbname=dispatch", "--command=SELECT pg_sleep(600) AS held_open",
    )  # fmt: skip
    held = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%AS held_open'"
    wait_until("the session holding dispatch", lambda: psql(site.postgres, held) == "1")
    restored = site.exec_backup("restore", name, stdin=site.identity)
    assert restored.returncode == 0, restored.stderr
    assert psql(site.postgres, held) == "0"
    assert f"local: {name} does not match its checksum: not used" in restored.stderr
    assert f"{TARGET}: {name} matches its checksum" in restored.stdout
    # Rotten on the target too: nothing is restored, dispatch is untouched.
    docker(
        "run", "--rm", "--user", "0", "--network", "none", "--entrypoint", "sh",
        "-v", f"{site.volume('offsite')}:/v", site.image, "-c", f"printf rot >> /v/depot/{name}",
    )  # fmt: skip
    databases = site.databases()
    notes = psql(site.postgres, "SELECT count(*) FROM engine_notes")
    refused = site.exec_backup("restore", name, stdin=site.identity)
    assert refused.returncode == 1
    assert refused.stderr.splitlines()[-1].startswith(f"depot-backup: no intact copy of {name}")
    assert site.databases() == databases
    assert psql(site.postgres, "SELECT count(*) FROM engine_notes") == notes


def test_a_run_and_a_restore_under_busybox_as_on_the_alpine_image(site: Site) -> None:
    """The tier's images are Debian: busybox-static's ash and applets stand in for Alpine's."""
    docker("exec", site.backup, "busybox", "mkdir", "-p", BUSYBOX_APPLETS)
    docker("exec", site.backup, "busybox", "--install", "-s", BUSYBOX_APPLETS)
    shell = site.exec_backup("health", busybox=True)
    assert shell.returncode == 0, shell.stderr
    psql(site.postgres, "INSERT INTO engine_notes VALUES ('written before the busybox run')")
    before = fingerprint(site)
    notes = psql(site.postgres, "SELECT count(*) FROM engine_notes")
    time.sleep(1)
    ran = site.exec_backup("run", busybox=True)
    assert ran.returncode == 0, ran.stderr
    [name] = re.findall(r"backup (\S+) is good", ran.stdout)
    assert [line[3] for line in site.listed() if line[0] == name] == ["local", TARGET]
    psql(site.postgres, "DELETE FROM engine_notes; DELETE FROM engine_rows WHERE id % 2 = 0")

    restored = site.exec_backup("restore", name, stdin=site.identity, busybox=True)

    assert restored.returncode == 0, restored.stderr
    assert fingerprint(site) == before
    assert psql(site.postgres, "SELECT count(*) FROM engine_notes") == notes


OUTAGE_RUNS = 2  # backups taken while the target is down


def test_backups_taken_while_the_target_is_down_stay_until_they_are_on_it(site: Site) -> None:
    """Issue 19: nothing is pruned from the host before the target holds a verified copy.

    Two runs during the outage, each told to keep one backup locally: more backups wait than
    that, and none is pruned. (Each run spends rclone's retries on the vanished host, about
    12 s; three runs against the service's own KEEP_LOCAL=2 proved the same.) A three-week
    outage, and the rules applied once the target is back, are tests/test_backup_agent.py's.
    """
    sftp = site.name("sftp")
    docker("stop", sftp)
    taken = []
    try:
        for _ in range(OUTAGE_RUNS):  # more than the runs' DEPOT_BACKUP_KEEP_LOCAL
            time.sleep(1)  # a new second, a new name
            ran = site.exec_backup("run", env={"DEPOT_BACKUP_KEEP_LOCAL": str(OUTAGE_RUNS - 1)})
            assert ran.returncode == 1
            [name] = re.findall(r"depot-backup: (\S+) is kept locally but not verified on: ",
                                ran.stderr.splitlines()[-1])  # fmt: skip
            taken.append(name)
        waiting = site.exec_backup("waiting")
        assert [line.split("\t")[0] for line in waiting.stdout.splitlines()] == taken
        health = site.exec_backup("health")
        assert f"{OUTAGE_RUNS} backups (" in health.stdout + health.stderr
        assert " wait to leave the host, the oldest " in health.stdout + health.stderr
        assert set(taken) <= set(site.volume_files("backups"))  # none pruned
    finally:
        docker("start", sftp)
    wait_until("the SFTP target back", lambda: site.exec_backup("list").returncode == 0)

    time.sleep(1)
    ran = site.exec_backup("run")

    assert ran.returncode == 0, ran.stderr
    copied = re.findall(r"offsite:depot: (\S+) copied and verified", ran.stdout)
    assert copied[:OUTAGE_RUNS] == taken  # the oldest first, then the run's own
    # Then the target's own retention (daily 7: one a day) keeps today's newest there.
    assert f"depot/{copied[-1]}.sha256" in site.volume_files("offsite")
    assert site.exec_backup("waiting").stdout == ""
    assert site.exec_backup("health").returncode == 0
    local = [f for f in site.volume_files("backups") if f.endswith(".dump.age")]
    assert local == sorted(copied[-2:])  # only now does KEEP_LOCAL=2 apply


# --- a month of retention ---------------------------------------------------------------


def gfs(
    stamps: Iterable[datetime], hourly: int, daily: int, weekly: int, monthly: int
) -> set[datetime]:
    """Grandfather-father-son, written here from the promise, not from the script: the newest
    backup in each of the newest N hours, days, ISO weeks and months that hold one."""
    ordered = sorted(set(stamps), reverse=True)
    periods: list[tuple[int, Callable[[datetime], object]]] = [
        (hourly, lambda t: (t.date(), t.hour)),
        (daily, lambda t: t.date()),
        (weekly, lambda t: t.isocalendar()[:2]),
        (monthly, lambda t: (t.year, t.month)),
    ]
    keep: set[datetime] = set()
    for count, period in periods:
        seen: list[object] = []
        for stamp in ordered:
            if len(seen) == count:
                break
            if period(stamp) not in seen:
                seen.append(period(stamp))
                keep.add(stamp)
    return keep


def test_retention_keeps_exactly_the_promised_set_across_a_month(site: Site) -> None:
    """31 daily runs, each at a time the test gives it (``run --now``), in one ``docker exec``:
    the target keeps exactly the grandfather-father-son set, the host the newest two."""
    # A small database from here: the month is about retention, not dump sizes.
    psql(site.postgres, "DROP TABLE engine_rows")
    before = good_backups(site.volume_files("offsite"), BACKUP_NAME, TARGET_FOLDER)
    first = datetime(datetime.now(UTC).year + 1, 1, 15, tzinfo=UTC)
    days = [first + timedelta(days=n) for n in range(31)]  # 15 Jan .. 14 Feb, one run a day
    began = time.monotonic()
    ran = docker(
        "exec", site.backup, "sh", "-c",
        'for now in "$@"; do depot-backup run --now "$now" > /dev/null || exit 1; done',
        "sh", *(day.strftime(STAMP) for day in days),
        timeout=240, check=False,
    )  # fmt: skip
    month_seconds = time.monotonic() - began
    assert ran.returncode == 0, ran.stderr[-1000:]

    every = {stamp_of(name) for name in before} | set(days)
    expected = gfs(every, hourly=0, daily=7, weekly=4, monthly=6)  # start_backup's rules
    offsite = good_backups(site.volume_files("offsite"), BACKUP_NAME, TARGET_FOLDER)
    on_target = {stamp_of(name) for name in offsite}
    assert sorted(on_target) == sorted(expected)
    local = {stamp_of(name) for name in good_backups(site.volume_files("backups"), BACKUP_NAME)}
    assert sorted(local) == sorted(every)[-2:]  # DEPOT_BACKUP_KEEP_LOCAL=2
    FIGURES["backup retention"] = (
        f"31 daily runs in {month_seconds:.0f} s; kept {len(on_target)} on the target "
        f"(daily 7, weekly 4, monthly 6), {len(local)} on the host"
    )


def test_no_password_and_no_plaintext_dump_in_the_volumes_or_the_logs(site: Site) -> None:
    for role in ("backups", "offsite"):
        data = site.volume_bytes(role)
        assert site.password.encode() not in data, role
        assert site.sftp_password.encode() not in data, role
        assert b"PGDMP" not in data, role  # the custom format's magic: a plaintext dump
        assert b"written before the backup" not in data, role
    for container in (site.backup, site.postgres):
        logs = docker("logs", container)
        assert site.password not in logs.stdout + logs.stderr, container
        assert site.sftp_password not in logs.stdout + logs.stderr, container
    inspected = docker("inspect", site.backup).stdout
    assert site.password not in inspected
    assert site.sftp_password not in inspected
