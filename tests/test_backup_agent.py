"""docker/backup/depot-backup without a database: retention, debris, list, health, run, schedule.

The script is run by this machine's ``sh`` (dash, with GNU coreutils) and by ``busybox sh`` with
only busybox applets on PATH (as in the Alpine postgres image), plus the real ``age`` and
``rclone``; targets are rclone paths on the local disk. The long simulations of retention and
ordering, and the tests whose point is the script's own logic rather than rclone's, run a
stand-in for rclone instead (tests/fakes/rclone, held to the real one by a contract test; each
names the tests that prove its path with the real one). Where a database would be needed,
``pg_dump`` and ``pg_restore`` are fakes that record how they were called; the real ones run in
the engine tier (tests/engine/test_backup_agent.py). Time is driven with ``--now``.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import IO, Any

import pytest

from tests.conftest import PROJECT_DIR
from tests.together import Together

SCRIPT = PROJECT_DIR / "docker" / "backup" / "depot-backup"
DOCKERFILE = PROJECT_DIR / "docker" / "backup.Dockerfile"
STACK = "prod"
STAMP = "%Y%m%dT%H%M%SZ"
DAY = 86400
CANARY_PASSWORD = "CanaryPassw0rd7f3a9c"  # letters and digits, as the stack's passwords
COMMAND_TIMEOUT = 60  # seconds, for one command of the script

REQUIRED_TOOLS = ("sh", "age", "age-keygen", "rclone")


def _missing(tools: Iterable[str]) -> list[str]:
    return [tool for tool in tools if shutil.which(tool) is None]


pytestmark = pytest.mark.skipif(
    bool(_missing(REQUIRED_TOOLS)),
    reason=f"needs {', '.join(_missing(REQUIRED_TOOLS))} (apt-get install age rclone)",
)


# --- running the script ---------------------------------------------------------------------


@dataclass(frozen=True)
class Shell:
    """How the script is started, and the PATH its tools come from."""

    name: str
    argv: tuple[str, ...]
    path: str


def _busybox_bin(directory: Path) -> str:
    """A directory of busybox applets (and the real age and rclone): the whole PATH."""
    busybox = shutil.which("busybox")
    assert busybox is not None
    listed = subprocess.run(
        [busybox, "--list"], capture_output=True, text=True, check=True, timeout=30
    )
    directory.mkdir()
    for applet in listed.stdout.split():
        (directory / applet).symlink_to(busybox)
    for tool in ("age", "age-keygen", "rclone"):
        found = shutil.which(tool)
        assert found is not None
        (directory / tool).symlink_to(found)
    return str(directory)


@pytest.fixture(scope="session")
def shells(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Shell]:
    """The shells this machine has, by name."""
    found = {"sh": Shell("sh", ("sh", str(SCRIPT)), os.environ["PATH"])}
    if shutil.which("busybox") is not None:
        path = _busybox_bin(tmp_path_factory.mktemp("busybox") / "bin")
        found["busybox"] = Shell("busybox", (str(Path(path) / "sh"), str(SCRIPT)), path)
    return found


@pytest.fixture(scope="session", params=["sh", "busybox"])
def shell(request: pytest.FixtureRequest, shells: dict[str, Shell]) -> Shell:
    """dash + GNU coreutils (this machine's sh), then busybox ash + busybox applets only."""
    if request.param not in shells:
        pytest.skip("busybox is not installed (apt-get install busybox-static)")
    return shells[request.param]


@dataclass
class Identity:
    """An age key pair made for the session: the private key stays in the test's files."""

    file: Path
    recipient: str


@pytest.fixture(scope="session")
def identity(tmp_path_factory: pytest.TempPathFactory) -> Identity:
    file = tmp_path_factory.mktemp("age") / "identity.txt"
    subprocess.run(["age-keygen", "-o", str(file)], capture_output=True, check=True, timeout=30)
    public = subprocess.run(
        ["age-keygen", "-y", str(file)], capture_output=True, text=True, check=True, timeout=30
    )
    return Identity(file, public.stdout.strip())


@dataclass
class Box:
    """One test's backup volume, off-host target, fake tools and environment."""

    shell: Shell
    root: Path
    env: dict[str, str]

    @property
    def backups(self) -> Path:
        return self.root / "backups"

    @property
    def offsite(self) -> Path:
        return self.root / "offsite" / "depot"

    @property
    def log(self) -> Path:
        return self.root / "fake.log"

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return self._call(args, env, stdin=None)

    def start(
        self, *args: str, stdout: IO[str] | int = subprocess.PIPE, **env: str
    ) -> subprocess.Popen[str]:
        """The script in the background; ``stdout``: a file to follow its output as it runs."""
        return subprocess.Popen(
            [*self.shell.argv, *args],
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            env={**self.env, **env},
            stdin=subprocess.DEVNULL,
        )

    def feed(self, text: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """``run`` with ``text`` on stdin (a restore's identity)."""
        return self._call(args, env, stdin=text)

    def _call(
        self, args: tuple[str, ...], env: dict[str, str], stdin: str | None
    ) -> subprocess.CompletedProcess[str]:
        # No stdin at all unless one is fed: the script must never wait on a terminal.
        fed: dict[str, Any] = {"stdin": subprocess.DEVNULL} if stdin is None else {"input": stdin}
        return subprocess.run(
            [*self.shell.argv, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=COMMAND_TIMEOUT,
            env={**self.env, **env},
            **fed,
        )

    def calls(self, tool: str) -> list[str]:
        if not self.log.exists():
            return []
        return [line for line in self.log.read_text().splitlines() if line.startswith(tool + " ")]


# Fakes of the postgres clients. pg_dump writes a "dump" starting with the custom format's magic
# (PGDMP) and records its argv and a hash of the PGPASSWORD it was given (never the password).
FAKE_PG_DUMP = r"""#!/bin/sh
for arg; do case $arg in --file=*) out=${arg#--file=} ;; esac; done
printf 'pg_dump %s\n' "$*" >>"$FAKE_LOG"
hashed=$(printf %s "${PGPASSWORD:-}" | sha256sum | cut -c1-64)
printf 'pg_dump-password %s\n' "$hashed" >>"$FAKE_LOG"
if [ -n "${FAKE_DUMP_SLEEP:-}" ]; then
	echo $$ >"$FAKE_DIR/pg_dump.pid"
	exec sleep "$FAKE_DUMP_SLEEP"
fi
[ -z "${FAKE_DUMP_FAIL:-}" ] || { echo 'pg_dump: error: connection refused' >&2; exit 1; }
printf 'PGDMP fake custom-format dump %s\n' "$(date +%s%N)" >"$out"
"""
FAKE_PG_RESTORE = r"""#!/bin/sh
printf 'pg_restore %s\n' "$*" >>"$FAKE_LOG"
if [ -n "${FAKE_RESTORE_FAIL:-}" ]; then
	echo 'pg_restore: error: input file does not appear to be a valid archive' >&2
	exit 1
fi
out=
for arg; do case $arg in --file=*) out=${arg#--file=} ;; esac; done
# With --file: the table of contents (--list) or a read of every byte (/dev/null); without
# one it restores into --dbname (a restore's pg_restore).
[ -z "$out" ] || [ "$out" = /dev/null ] || printf ';\n; Archive created at fake\n;\n' >"$out"
"""
# pg_isready answering "no response" (exit 2) to its first FAKE_DB_DOWN_CALLS calls: a
# postgres whose name does not resolve yet, or that does not accept connections yet.
FAKE_PG_ISREADY = r"""#!/bin/sh
printf 'pg_isready %s\n' "$*" >>"$FAKE_LOG"
[ -z "${PGPASSWORD:-}" ] || echo 'pg_isready-was-given-a-password' >>"$FAKE_LOG"
calls=$(grep -c '^pg_isready ' "$FAKE_LOG")
[ "$calls" -gt "${FAKE_DB_DOWN_CALLS:-0}" ] || exit 2
"""
# With FAKE_PEEK, a fake first reads every descriptor it was started with but stdout and
# stderr, as a hostile tool would, and records (never the bytes) whether one held an age
# identity: only age may see a restore's identity.
PEEK = r"""
peek() {
	printf 'peek %s\n' "$1" >>"$FAKE_LOG"
	for fd in /proc/$$/fd/*; do
		case ${fd##*/} in 1 | 2) continue ;; esac
		# [-]: this file, which the shell reading it holds open, does not match itself
		if timeout 2 head -c 4096 "$fd" 2>/dev/null | grep -q 'AGE-SECRET-KEY[-]1'; then
			printf 'identity-seen-by %s on-fd %s\n' "$1" "${fd##*/}" >>"$FAKE_LOG"
		fi
	done
}
"""
# rclone that, asked to, garbles what it has just copied to the target (a target that corrupts).
# With FAKE_SAVE it first saves into its configuration, as rclone's sftp backend does with what it
# detects (a read-only file: the save fails, and rclone retries it ten times). With FAKE_DOWN, a
# target that is down (until a file "up" appears in FAKE_DIR): every call naming a path under it
# fails (each such call recorded as "rclone-down <its arguments>"). Each copyto is recorded.
# What it then runs is $REAL_RCLONE: the real rclone, or the stand-in (use_the_stand_in_rclone).
FAKE_RCLONE = (
    r"""#!/bin/sh
real=$REAL_RCLONE
"""
    + PEEK
    + r"""
[ -z "${FAKE_PEEK:-}" ] || peek rclone
for last; do :; done
if [ -n "${FAKE_DOWN:-}" ] && [ ! -e "$FAKE_DIR/up" ]; then
	for arg; do
		case $arg in "$FAKE_DOWN"*)
			case " $* " in *" copyto "*) printf 'rclone-copyto-failed %s\n' "$last" >>"$FAKE_LOG" ;;
			esac
			printf 'rclone-down %s\n' "$*" >>"$FAKE_LOG"
			echo 'rclone: dial tcp: connection refused' >&2
			exit 1 ;;
		esac
	done
fi
case " $* " in *" copyto "*) printf 'rclone-copyto %s\n' "$last" >>"$FAKE_LOG" ;; esac
if [ -n "${FAKE_SAVE:-}" ]; then
	printf 'rclone-config %s %s\n' "$RCLONE_CONFIG" "$(stat -c %a "$RCLONE_CONFIG")" >>"$FAKE_LOG"
	printf 'shell_type = unix\n' >>"$RCLONE_CONFIG" || { echo 'rclone: cannot save' >&2; exit 1; }
fi
"$real" "$@"
status=$?
if [ -n "${FAKE_GARBLE:-}" ] && [ "$status" = 0 ]; then
	case " $* " in *" copyto "*) case $last in *.age) printf 'garbage' >>"$last" ;; esac ;; esac
fi
exit $status
"""
)

# psql for a restore without a database: no database exists (SELECT 1 prints nothing), every
# other statement succeeds; with FAKE_PEEK it looks for the identity first (see PEEK).
FAKE_PSQL = (
    r"""#!/bin/sh
"""
    + PEEK
    + r"""
[ -z "${FAKE_PEEK:-}" ] || peek psql
printf 'psql %s\n' "$*" >>"$FAKE_LOG"
exit 0
"""
)


@pytest.fixture
def box(shell: Shell, tmp_path: Path, identity: Identity) -> Box:
    return make_box(shell, tmp_path, identity)


def make_box(shell: Shell, tmp_path: Path, identity: Identity) -> Box:
    fakes = tmp_path / "fakes"
    fakes.mkdir()
    for name, body in (
        ("pg_dump", FAKE_PG_DUMP),
        ("pg_restore", FAKE_PG_RESTORE),
        ("pg_isready", FAKE_PG_ISREADY),
        ("rclone", FAKE_RCLONE),
    ):
        (fakes / name).write_text(body)
        (fakes / name).chmod(0o755)
    password = tmp_path / "secrets" / "database_password"
    password.parent.mkdir()
    password.write_text(CANARY_PASSWORD)
    password.chmod(0o400)
    (tmp_path / "tmp").mkdir()
    real_rclone = shutil.which("rclone", path=shell.path)
    assert real_rclone is not None
    env = {
        "PATH": f"{fakes}{os.pathsep}{shell.path}",
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path / "tmp"),
        "REAL_RCLONE": real_rclone,
        "FAKE_LOG": str(tmp_path / "fake.log"),
        "FAKE_DIR": str(tmp_path),
        "DEPOT_BACKUP_DIR": str(tmp_path / "backups"),
        "DEPOT_BACKUP_STACK": STACK,
        "DEPOT_BACKUP_INTERVAL": str(DAY),
        "DEPOT_BACKUP_KEEP_HOURLY": "0",
        "DEPOT_BACKUP_KEEP_DAILY": "7",
        "DEPOT_BACKUP_KEEP_WEEKLY": "4",
        "DEPOT_BACKUP_KEEP_MONTHLY": "6",
        "DEPOT_BACKUP_KEEP_LOCAL": "2",
        "DEPOT_BACKUP_RECIPIENTS": identity.recipient,
        "DEPOT_BACKUP_TARGETS": "",
        "DATABASE_PASSWORD_FILE": str(password),
        "RCLONE_CONFIG": "/dev/null",
        # Go's collector off in the Go tools the script runs here (rclone, age): each call is
        # short and on files of a few hundred bytes. It saves ~8 of the ~55 ms of CPU an rclone
        # call costs, most of which is its start (this file makes ~500). Never in the image,
        # where one copy moves a whole dump.
        "GOGC": "off",
        "PGHOST": "postgres",
        "PGDATABASE": "dispatch",
    }
    (tmp_path / "backups").mkdir()
    return Box(shell, tmp_path, env)


STAND_IN_RCLONE = PROJECT_DIR / "tests" / "fakes" / "rclone"


def use_the_stand_in_rclone(box: Box) -> None:
    """The box's rclone wrapper (FAKE_RCLONE: a target down, copies recorded, unchanged) runs the
    stand-in tests/fakes/rclone instead of the real rclone: a few ms of CPU a call, not ~55.
    test_the_stand_in_rclone_does_what_the_real_one_does holds it to the real one."""
    box.env["REAL_RCLONE"] = str(STAND_IN_RCLONE)


# --- waiting for and stopping a schedule ------------------------------------------------------


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


class Stopper:
    """Stops a schedule as `docker stop` does (SIGTERM), returning its status and output."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []

    def __call__(self, process: subprocess.Popen[str]) -> tuple[int, str, str]:
        self.started.append(process)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
        return process.returncode, out, err

    def kill_the_rest(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture
def stop() -> Iterator[Callable[[subprocess.Popen[str]], tuple[int, str, str]]]:
    stopper = Stopper()
    yield stopper
    stopper.kill_the_rest()


# --- the time-driven tests, run side by side -------------------------------------------------
#
# These tests mostly wait on the script's clock (slots, retry delays, the 2 s poll for postgres):
# one after another, both shells, they kept a worker waiting for over 40 s. Each is written as
# an ordinary test; @side_by_side runs it, with a box of its own, with the others
# (tests/together.py).

TimedTest = Callable[..., None]
SIDE_BY_SIDE: dict[str, TimedTest] = {}
TIMED_GROUP = pytest.mark.xdist_group("backup-agent-timed")


def side_by_side(test: TimedTest) -> Callable[[Shell, SideBySide], None]:
    SIDE_BY_SIDE[test.__name__] = test

    def run(shell: Shell, timed: SideBySide) -> None:
        timed.outcome(test.__name__, shell)

    run.__name__ = test.__name__
    run.__doc__ = test.__doc__
    marked: Callable[[Shell, SideBySide], None] = TIMED_GROUP(run)
    return marked


class SideBySide:
    """The time-driven tests this session runs, all started at once (tests/together.py)."""

    def __init__(
        self,
        wanted: list[tuple[str, Shell]],
        identity: Identity,
        factory: pytest.TempPathFactory,
    ) -> None:
        self.wanted = wanted
        self.identity = identity
        self.factory = factory
        self.together = Together(self._boxed, timeout=180)

    def _boxed(self) -> dict[Hashable, Callable[[], None]]:
        """Each test with a box of its own, made here before any starts."""
        started: dict[Hashable, Callable[[], None]] = {}
        for name, shell in self.wanted:
            box = make_box(shell, self.factory.mktemp(f"{shell.name}-{name[5:40]}"), self.identity)
            started[(name, shell.name)] = partial(_run_timed, SIDE_BY_SIDE[name], box)
        return started

    def outcome(self, name: str, shell: Shell) -> None:
        self.together.wait((name, shell.name))  # raises what the test raised


def _run_timed(test: TimedTest, box: Box) -> None:
    stopper = Stopper()
    given = {"box": box, "stop": stopper}
    try:
        test(**{name: given[name] for name in inspect.signature(test).parameters})
    finally:
        stopper.kill_the_rest()


@pytest.fixture(scope="session")
def timed(
    request: pytest.FixtureRequest,
    shells: dict[str, Shell],
    identity: Identity,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SideBySide]:
    wanted = [
        (item.originalname, shells[item.callspec.params["shell"]])
        for item in request.session.items
        if isinstance(item, pytest.Function)
        and item.originalname in SIDE_BY_SIDE
        and item.callspec.params["shell"] in shells
    ]
    side = SideBySide(wanted, identity, tmp_path_factory)
    yield side
    side.together.close()


# --- seeded backups and an independent retention model --------------------------------------


def stamp(moment: datetime) -> str:
    return moment.strftime(STAMP)


def at(text: str) -> datetime:
    return datetime.strptime(text, STAMP).replace(tzinfo=UTC)


def artefact(moment: datetime, suffix: str = ".dump.age") -> str:
    return f"{STACK}-{stamp(moment)}{suffix}"


def seed(place: Path, moment: datetime, *, sidecar: bool = True, suffix: str = ".dump.age") -> str:
    """A backup as a run leaves it: the artefact, then its sidecar with the artefact's sha256."""
    place.mkdir(parents=True, exist_ok=True)
    name = artefact(moment, suffix)
    data = f"age-encryption.org/v1\nseeded {name}\n".encode()
    (place / name).write_bytes(data)
    if sidecar:
        digest = hashlib.sha256(data).hexdigest()
        (place / f"{name}.sha256").write_text(f"{digest}  {name}\n")
    return name


def record_copy(box: Box, name: str, target: str) -> None:
    """What a run records once a target's copy of ``name`` is read back and matches."""
    ledger = box.backups / "status" / "offsite"
    ledger.mkdir(parents=True, exist_ok=True)
    with (ledger / f"{name}.targets").open("a") as file:
        file.write(f"{target}\n")


def good(place: Path) -> list[datetime]:
    """The backups at ``place`` (artefact and sidecar both there), oldest first."""
    pattern = re.compile(rf"^{STACK}-(\d{{8}}T\d{{6}}Z)\.dump(\.age)?$")
    found = []
    for path in place.iterdir() if place.exists() else []:
        match = pattern.match(path.name)
        if match and (place / f"{path.name}.sha256").exists():
            found.append(at(match.group(1)))
    return sorted(found)


Period = Callable[[datetime], object]
PERIODS: Mapping[str, Period] = {
    "hourly": lambda t: (t.year, t.month, t.day, t.hour),
    "daily": lambda t: t.date(),
    "weekly": lambda t: t.isocalendar()[:2],  # ISO year and week
    "monthly": lambda t: (t.year, t.month),
}


def gfs(backups: Iterable[datetime], rules: Mapping[str, int]) -> set[datetime]:
    """What grandfather-father-son keeps, computed differently from the script: group the
    backups by period, keep the newest of each group, and of the groups the newest N."""
    kept: set[datetime] = set()
    for rule, count in rules.items():
        newest_of: dict[object, datetime] = {}
        for moment in backups:
            key = PERIODS[rule](moment)
            newest_of[key] = max(moment, newest_of.get(key, moment))
        kept |= set(sorted(newest_of.values(), reverse=True)[:count])
    return kept


def keep_env(rules: Mapping[str, int]) -> dict[str, str]:
    return {f"DEPOT_BACKUP_KEEP_{rule.upper()}": str(rules.get(rule, 0)) for rule in PERIODS}


def simulate(
    box: Box, moments: list[datetime], rules: Mapping[str, int], **env: str
) -> list[datetime]:
    """Seeds a backup at each moment and prunes as a run does, checking the model every time."""
    expected: set[datetime] = set()
    for moment in moments:
        seed(box.backups, moment)
        pruned = box.run("prune", "--now", stamp(moment), **keep_env(rules), **env)
        assert pruned.returncode == 0, pruned.stderr
        expected = gfs(expected | {moment}, rules)
        assert set(good(box.backups)) == expected, moment
    return good(box.backups)


def daily(start: str, days: int, *, skip: Iterable[str] = ()) -> list[datetime]:
    """A 24 h schedule's runs: just after 00:00 UTC (0-4 s late), except the days skipped."""
    first = at(start)
    moments = [first + timedelta(days=n, seconds=n % 5) for n in range(days)]
    return [m for m in moments if m.strftime("%Y%m%d") not in set(skip)]


# --- retention ------------------------------------------------------------------------------


def test_retention_of_a_daily_schedule_over_seven_weeks_keeps_exactly_the_promise(
    box: Box,
) -> None:
    """prod's rules (7 daily, 4 weekly, 6 monthly) from 1 December to 20 January, with the
    run of 15 January failed and an extra backup by hand on 10 January at 14:30."""
    rules = {"daily": 7, "weekly": 4, "monthly": 6}
    moments = daily("20241201T000000Z", 51, skip=["20250115"])
    moments.append(at("20250110T143000Z"))
    moments.sort()

    survivors = simulate(box, moments, rules)

    # By hand: the 7 newest days that have a backup (the 15th has none, so the 13th is the
    # 7th); ISO weeks 2025-W04..W01 end with the 20th, 19th, 12th and 5 January (week 1 of
    # 2025 began on Monday 30 December); the months: January's newest, December's 31st.
    # The 10 January 14:30 backup was its day's newest, but that day is no longer among the 7.
    assert [m.strftime("%Y-%m-%d") for m in survivors] == [
        "2024-12-31",
        "2025-01-05",
        "2025-01-12",
        "2025-01-13",
        "2025-01-14",
        "2025-01-16",
        "2025-01-17",
        "2025-01-18",
        "2025-01-19",
        "2025-01-20",
    ]
    assert survivors == sorted(gfs(moments, rules))  # pruned run by run = pruned once


def test_retention_of_a_six_hour_schedule_over_five_weeks_keeps_exactly_the_promise(
    box: Box,
) -> None:
    rules = {"hourly": 6, "daily": 3, "weekly": 2, "monthly": 2}
    first = at("20250220T000000Z")
    moments = [first + timedelta(hours=6 * n) for n in range(36 * 4)]  # to 27 March 18:00

    survivors = simulate(box, moments, rules, DEPOT_BACKUP_INTERVAL="21600")

    # hourly: the 6 newest runs; daily: 27th, 26th, 25th at 18:00; weekly: W13's newest (27th),
    # W12's (Sunday the 23rd); monthly: March's newest and 28 February 18:00.
    assert [stamp(m) for m in survivors] == [
        "20250228T180000Z",
        "20250323T180000Z",
        "20250325T180000Z",
        "20250326T120000Z",
        "20250326T180000Z",
        "20250327T000000Z",
        "20250327T060000Z",
        "20250327T120000Z",
        "20250327T180000Z",
    ]
    assert survivors == sorted(gfs(moments, rules))


# Retention over 20 days with a stand-in rclone (use_the_stand_in_rclone): some 50 rclone calls
# per shell. The same path with the real rclone, under both shells (a target listed and pruned
# by its rules, its debris removed, the local volume keeping its newest), in
#   test_a_target_is_pruned_by_its_rules_through_the_real_rclone, just below;
# in the real image, over SFTP, tests/engine/test_backup_agent.py::
# test_backups_taken_while_the_target_is_down_stay_until_they_are_on_it has the local volume
# keep its newest once the copies are verified (what the target's rules remove there, it does
# not assert).
def test_with_a_target_the_local_volume_keeps_the_newest_and_the_target_the_history(
    box: Box,
) -> None:
    use_the_stand_in_rclone(box)
    rules = {"daily": 3, "weekly": 2}
    moments = daily("20250301T000000Z", 20)
    target = str(box.offsite)
    for moment in moments:
        name = seed(box.backups, moment)
        seed(box.offsite, moment)
        record_copy(box, name, target)  # as a run records a copy it has read back
        pruned = box.run(
            "prune", "--now", stamp(moment), DEPOT_BACKUP_TARGETS=target, **keep_env(rules)
        )
        assert pruned.returncode == 0, pruned.stderr
    assert good(box.backups) == moments[-2:]  # DEPOT_BACKUP_KEEP_LOCAL=2
    assert good(box.offsite) == sorted(gfs(moments, rules))
    assert [m.day for m in good(box.offsite)] == [16, 18, 19, 20]


def test_a_target_is_pruned_by_its_rules_through_the_real_rclone(box: Box) -> None:
    """What the simulation above proves over weeks with the stand-in, once with the real rclone:
    the target is listed (lsf) and what its rules drop, and its debris, is removed (deletefile);
    a file that is not ours stays; the local volume keeps its newest."""
    rules = {"daily": 2, "weekly": 1}
    days = daily("20250301T000000Z", 5)  # Saturday 1 to Wednesday 5 March
    target = str(box.offsite)
    for day in days:
        name = seed(box.backups, day)
        seed(box.offsite, day)
        record_copy(box, name, target)
    debris = seed(box.offsite, at("20250226T000000Z"), sidecar=False)
    (box.offsite / "notes.txt").write_text("not ours")

    pruned = box.run(
        "prune", "--now", stamp(days[-1]), DEPOT_BACKUP_TARGETS=target, **keep_env(rules)
    )

    assert pruned.returncode == 0, pruned.stderr
    assert good(box.offsite) == days[-2:] == sorted(gfs(days, rules))  # the 4th and 5th
    assert sorted(path.name for path in box.offsite.iterdir()) == sorted(
        [*(artefact(day) for day in days[-2:]), *(f"{artefact(day)}.sha256" for day in days[-2:]),
         "notes.txt"]
    )  # fmt: skip
    assert f"{target}: 2 backups kept, 7 files removed" in pruned.stdout
    assert not (box.offsite / debris).exists()
    assert good(box.backups) == days[-2:]  # DEPOT_BACKUP_KEEP_LOCAL=2


# --- leaving the host: nothing pruned here before every target holds a verified copy ---------


def copied(box: Box) -> list[str]:
    """The artefacts rclone copied to a target, in order ("rclone-copyto <destination>")."""
    found = []
    for line in box.calls("rclone-copyto"):
        destination = line.split(" ", 1)[1]
        if destination.startswith(str(box.offsite)) and not destination.endswith(".sha256"):
            found.append(Path(destination).name)
    return found


def test_copies_failing_for_three_days_leave_the_host_oldest_first_before_any_is_pruned(
    box: Box,
) -> None:
    # The reproduction of issue 19: KEEP_LOCAL=2, daily 7; the copy fails on days 1-3, works
    # on day 4. Day 4's prune removed days 1 and 2 everywhere; the target held day 4 alone.
    target = str(box.offsite)
    days = daily("20250301T000000Z", 4)
    for n, day in enumerate(days[:3], start=1):
        ran = box.run("run", "--now", stamp(day), DEPOT_BACKUP_TARGETS=target, FAKE_DOWN=target)
        assert ran.returncode == 1
        assert f"{n} backup{'s' if n > 1 else ''} (" in ran.stderr  # each waits, counted
        assert ran.stderr.splitlines()[-1] == (
            f"depot-backup: {artefact(day)} is kept locally but not verified on: {target}"
        )
    assert good(box.backups) == days[:3]  # none pruned: none has left the host
    assert good(box.offsite) == []
    assert len(box.calls("rclone-copyto-failed")) == 3  # one attempt a run, not one a backup

    ran = box.run("run", "--now", stamp(days[3]), DEPOT_BACKUP_TARGETS=target)

    assert ran.returncode == 0, ran.stderr
    assert copied(box) == [artefact(day) for day in days]  # the oldest first
    assert good(box.offsite) == days
    assert good(box.backups) == days[2:]  # only now does KEEP_LOCAL=2 apply
    assert f"backup {artefact(days[3])} is good" in ran.stdout
    last_good = (box.backups / "status" / "last-good").read_text()
    assert last_good == f"{int(days[3].timestamp())}\n"


# Under the production shell only (busybox ash, the Alpine image's; dash where busybox is
# missing): 22 runs of the script, seconds of the unit tier per shell (with the real rclone, its
# final run alone made some 110 rclone calls).
# Under dash the same code paths run in the tests beside it, under both shells: runs while the
# target is down keep every backup and count them (the test above: three down days, then the
# copies oldest first and KEEP_LOCAL only once they are off the host; the health test below),
# a run spends one copy on a down target and skips its pruning (..._costs_a_run_one_copy...),
# `waiting` lists several backups oldest first (test_waiting_lists_each_backup...), held
# backups stay through a prune (test_prune_never_removes_a_backup_no_target_holds...), and the
# target keeps the rules' history (test_with_a_target_the_local_volume_keeps_the_newest...).
# It proves retention and ordering with a stand-in rclone (use_the_stand_in_rclone; the target
# is down as in every test, by FAKE_RCLONE's FAKE_DOWN in front of it). The same copy, verify
# and prune path runs the real rclone, under both shells, in
#   test_copies_failing_for_three_days_leave_the_host_oldest_first_before_any_is_pruned
#     (copies oldest first once the target is back, KEEP_LOCAL only once they are off the host),
#   test_a_run_encrypts_places_copies_verifies_and_leaves_no_secret_or_plaintext (a copy read
#     back and recorded),
#   test_a_target_that_corrupts_the_copy_fails_the_run_and_holds_no_backup (a bad read-back
#     removed, the backup kept and waiting),
#   test_a_target_is_pruned_by_its_rules_through_the_real_rclone (the target's retention);
# and in the real image, over SFTP with the target stopped and started again, in
#   tests/engine/test_backup_agent.py::
#     test_backups_taken_while_the_target_is_down_stay_until_they_are_on_it.
@pytest.mark.parametrize("shell", ["busybox" if shutil.which("busybox") else "sh"], indirect=True)
def test_a_target_down_for_three_weeks_loses_nothing_and_the_rules_apply_once_it_is_back(
    box: Box,
) -> None:
    use_the_stand_in_rclone(box)
    target = str(box.offsite)
    rules = {"daily": 7, "weekly": 4, "monthly": 6}  # the box's, as prod's
    days = daily("20250301T000000Z", 22)
    first = box.run("run", "--now", stamp(days[0]), DEPOT_BACKUP_TARGETS=target)
    assert first.returncode == 0, first.stderr
    for n, day in enumerate(days[1:-1], start=1):
        ran = box.run("run", "--now", stamp(day), DEPOT_BACKUP_TARGETS=target, FAKE_DOWN=target)
        assert ran.returncode == 1
        # Every backup since the outage began stays (day 0, off the host, goes by the rule).
        assert good(box.backups) == (days[1 : n + 1] if n >= 2 else days[: n + 1]), day
        assert good(box.offsite) == days[:1]
        assert f"{n} backup{'s' if n > 1 else ''} (" in ran.stderr
    waiting = box.run("waiting", "--now", stamp(days[-1]), DEPOT_BACKUP_TARGETS=target)
    assert [line.split("\t")[0] for line in waiting.stdout.splitlines()] == [
        artefact(day) for day in days[1:-1]
    ]

    ran = box.run("run", "--now", stamp(days[-1]), DEPOT_BACKUP_TARGETS=target)

    assert ran.returncode == 0, ran.stderr
    assert copied(box) == [artefact(day) for day in days]  # each once, the oldest first
    assert good(box.offsite) == sorted(gfs(days, rules))
    assert good(box.backups) == days[-2:]
    assert box.run("waiting", "--now", stamp(days[-1]), DEPOT_BACKUP_TARGETS=target).stdout == ""


# The script's own rclone flags (the retries a copy spends), as it states them.
RCLONE_FLAGS = re.findall(r'^RCLONE_FLAGS="([^"]*)"$', SCRIPT.read_text(), re.M)[0].split()


def test_a_target_down_costs_a_run_one_copy_with_retries_and_nothing_more(box: Box) -> None:
    """The copy spends rclone's retries; its cleanup tries once, and pruning does not list the
    target again (each would wait as long on a vanished host: tests/engine/test_backup_agent.py
    times that). The target's pruning counts as failed, as when its list cannot be read."""
    # The calls while the target is down stop in FAKE_RCLONE, before any rclone; the first
    # run's copy goes through the stand-in. The same copy with the real rclone: test_copies_
    # failing_for_three_days_leave_the_host_oldest_first_before_any_is_pruned, just below.
    use_the_stand_in_rclone(box)
    target = str(box.offsite)
    first = box.run("run", "--now", "20250301T000000Z", DEPOT_BACKUP_TARGETS=target)
    assert first.returncode == 0, first.stderr
    ran = box.run("run", "--now", "20250302T000000Z", DEPOT_BACKUP_TARGETS=target, FAKE_DOWN=target)
    assert ran.returncode == 1
    down = [line.split()[1:] for line in box.calls("rclone-down")]
    commands = [next(word for word in call if not word.startswith("-") and not word[0].isdigit())
                for call in down]  # fmt: skip
    assert commands == ["copyto", "deletefile"]
    copy, cleanup = down
    assert copy[: copy.index("copyto")] == RCLONE_FLAGS
    assert cleanup[: cleanup.index("deletefile")] == [
        *RCLONE_FLAGS, "--retries", "1", "--low-level-retries", "1"
    ]  # fmt: skip
    assert f"pruning failed on: {target}" in ran.stderr
    assert good(box.backups) == [at("20250301T000000Z"), at("20250302T000000Z")]


def test_a_local_backup_that_no_longer_matches_its_checksum_never_leaves_the_host(
    box: Box,
) -> None:
    # The script checks the local checksum before it asks rclone to copy: the stand-in rclone
    # (use_the_stand_in_rclone) does the copies of the good ones, as the test above does them
    # with the real rclone; in the real image, tests/engine/test_backup_agent.py::
    # test_a_local_copy_that_rotted_is_skipped_and_a_rotten_everywhere_backup_is_refused.
    use_the_stand_in_rclone(box)
    target = str(box.offsite)
    days = daily("20250301T000000Z", 4)
    for day in days[:2]:  # two backups wait: the target is down
        ran = box.run("run", "--now", stamp(day), DEPOT_BACKUP_TARGETS=target, FAKE_DOWN=target)
        assert ran.returncode == 1
    rotten = box.backups / artefact(days[1])
    rotten.write_bytes(rotten.read_bytes() + b"rot")  # its sidecar still names the old bytes
    warning = f"local: {artefact(days[1])} does not match its checksum: it cannot leave the host"

    # Still down: the oldest's copy fails, and a backup no other target lacks is not read at all.
    down = box.run("run", "--now", stamp(days[2]), DEPOT_BACKUP_TARGETS=target, FAKE_DOWN=target)
    assert down.returncode == 1
    assert warning not in down.stderr
    assert len(box.calls("rclone-copyto-failed")) == 3  # one a run

    ran = box.run("run", "--now", stamp(days[3]), DEPOT_BACKUP_TARGETS=target)

    assert warning in ran.stderr
    assert copied(box) == [artefact(day) for day in (days[0], days[2], days[3])]
    assert good(box.offsite) == [days[0], days[2], days[3]]
    assert days[1] in good(box.backups)  # kept: it has not left the host
    assert f"1 backup ({rotten.stat().st_size} bytes) waits to leave the host" in ran.stderr


def test_prune_never_removes_a_backup_no_target_holds_a_verified_copy_of(box: Box) -> None:
    target = str(box.offsite)
    days = daily("20250301T000000Z", 5)
    names = [seed(box.backups, day) for day in days]
    for day in days:
        seed(box.offsite, day)  # there, but never read back by this agent: not verified
    record_copy(box, names[0], target)
    record_copy(box, names[1], "another:target")  # a target that is not one any more

    pruned = box.run(
        "prune", "--now", stamp(days[-1]), DEPOT_BACKUP_TARGETS=target, DEPOT_BACKUP_KEEP_LOCAL="1"
    )

    assert pruned.returncode == 0, pruned.stderr
    assert good(box.backups) == days[1:]  # only the verified one left the host's retention
    assert "local: 1 backups kept, 3 more waiting to leave the host, 2 files removed" in (
        pruned.stdout
    )
    offsite = box.backups / "status" / "offsite"
    assert not (offsite / f"{names[0]}.targets").exists()  # its record went with it
    assert (offsite / f"{names[1]}.targets").exists()


# Ordering with a stand-in rclone (use_the_stand_in_rclone): some 28 rclone calls per shell. The
# same path (a target that lacks backups is given each, oldest first, before the local volume
# prunes one) runs the real rclone, under both shells, in
#   test_copies_failing_for_three_days_leave_the_host_oldest_first_before_any_is_pruned,
# and in the real image in
#   tests/engine/test_backup_agent.py::
#     test_backups_taken_while_the_target_is_down_stay_until_they_are_on_it.
def test_a_new_target_is_given_every_local_backup_before_one_is_pruned(box: Box) -> None:
    use_the_stand_in_rclone(box)
    old, new = str(box.offsite), str(box.root / "second")
    days = daily("20250301T000000Z", 3)
    for day in days[:2]:
        assert box.run("run", "--now", stamp(day), DEPOT_BACKUP_TARGETS=old).returncode == 0
    ran = box.run("run", "--now", stamp(days[2]), DEPOT_BACKUP_TARGETS=f"{old} {new}")
    assert ran.returncode == 0, ran.stderr
    assert good(box.root / "second") == days  # what the host still had, then the new one
    assert good(box.backups) == days[1:]


def test_debris_goes_after_a_day_and_is_never_counted_and_foreign_files_stay(box: Box) -> None:
    now = at("20250310T000000Z")
    kept = seed(box.backups, now - timedelta(days=2))
    # Newer than the good backup, but without sidecars: no backup, so they cannot displace it.
    fresh_debris = seed(box.backups, now - timedelta(hours=3), sidecar=False)
    old_debris = seed(box.backups, now - timedelta(days=1, seconds=1), sidecar=False)
    orphan = seed(box.backups, now - timedelta(days=3))
    (box.backups / orphan).unlink()  # its sidecar stays behind
    foreign = [
        "prod-eu-20250101T000000Z.dump.age",  # another stack sharing the prefix
        "prod-20250101T000000Z.dump.age.partial",
        "prod-20250231T000000Z.dump.age",  # no such day
        "notes.txt",
    ]
    for name in foreign:
        (box.backups / name).write_text("not ours")

    pruned = box.run("prune", "--now", stamp(now), **keep_env({"daily": 1}))

    assert pruned.returncode == 0, pruned.stderr
    names = {path.name for path in box.backups.iterdir()}
    assert names == {kept, f"{kept}.sha256", fresh_debris, *foreign, "status"}
    assert old_debris not in names
    assert f"{orphan}.sha256" not in names


def test_a_target_that_cannot_be_pruned_fails_prune_and_is_recorded(box: Box) -> None:
    seed(box.backups, at("20250101T000000Z"))
    pruned = box.run("prune", DEPOT_BACKUP_TARGETS=f"nosuchremote:depot {box.offsite}")
    assert pruned.returncode == 1
    assert pruned.stderr.splitlines()[-1] == "depot-backup: pruning failed on: nosuchremote:depot"
    assert "pruning failed on: nosuchremote:depot" in (
        (box.backups / "status" / "last-failure").read_text()
    )
    assert good(box.backups) == [at("20250101T000000Z")]


def test_prune_refuses_when_no_rule_keeps_anything(box: Box) -> None:
    seed(box.backups, at("20250101T000000Z"))
    pruned = box.run("prune", **keep_env({}))
    assert pruned.returncode == 1
    assert "no retention rule keeps a backup" in pruned.stderr
    assert len(good(box.backups)) == 1


# --- the stand-in rclone, held to the real one ----------------------------------------------

# The script's flag for a single try (after RCLONE_FLAGS), as it states it.
ONE_TRY = re.findall(r'^ONE_TRY="([^"]*)"', SCRIPT.read_text(), re.M)[0].split()
BACKUP = "prod-20250301T000000Z.dump.age"
CONTRACT_FILES = {  # the sources the operations copy, with fixed times (rclone keeps them)
    BACKUP: b"age-encryption.org/v1\nseeded\n",
    f"{BACKUP}.sha256": f"{'0' * 64}  {BACKUP}\n".encode(),
    "with space": b"two words\n",
    "back\\slash": b"a\\tb\n",
    ".hidden": b"dot\n",
    "empty": b"",
    "sub/inner": b"in a directory: never listed\n",
}


def contract_operations(root: Path) -> list[list[str]]:
    """What depot-backup asks of rclone, with the flags it passes, and how each can fail: a
    target not made yet, a missing file, a file where a directory is wanted (unwritable even
    for root), a directory where a file is, names with spaces, backslashes and glob characters."""
    src = f"{root}/src"
    target = f"{root}/off site/a\\nb\\\\c"
    globbed = f"{root}/t*[1]"
    lsf = [*RCLONE_FLAGS, "lsf", "--files-only", "--format", "ps", "--separator", " "]
    flags, once = RCLONE_FLAGS, [*RCLONE_FLAGS, *ONE_TRY]
    return [
        [*lsf, target],  # not made yet: exit 3, which the script reads as an empty target
        [*lsf, src],  # sorted; spaces, a backslash, a dotfile, an empty file; no dir, no symlink
        [*lsf, f"{src}/"],
        [*lsf, f"{src}/empty"],  # a file: listed alone
        [*lsf, f"{root}/blocker/x"],  # under a file: not found
        [*flags, "copyto", f"{src}/{BACKUP}", f"{target}/{BACKUP}"],  # its directories made
        [*flags, "cat", f"{target}/{BACKUP}"],
        [*flags, "copyto", f"{src}/{BACKUP}.sha256", f"{target}/{BACKUP}.sha256"],
        [*flags, "cat", f"{target}/{BACKUP}.sha256"],
        [*flags, "copyto", f"{src}/with space", f"{target}/with space"],
        [*flags, "copyto", f"{src}/back\\slash", f"{globbed}/back\\slash"],
        [*flags, "copyto", f"{src}/empty", f"{target}/empty"],
        [*lsf, target],
        [*lsf, globbed],
        [*flags, "cat", f"{target}/empty"],
        [*flags, "copyto", f"{src}/with space", f"{target}/{BACKUP}"],  # overwritten
        [*flags, "cat", f"{target}/{BACKUP}"],
        [*flags, "copyto", f"{src}/missing", f"{target}/missing"],
        [*flags, "copyto", f"{src}/empty", f"{root}/blocker/x"],
        [*flags, "copyto", f"{src}/empty", f"{root}/blocker/y/x"],
        [*flags, "copyto", f"{src}/empty", f"{src}/sub"],  # onto a directory
        [*flags, "copyto", f"{src}/empty", f"{root}/read-only/x"],  # fails unless run as root
        [*flags, "cat", f"{target}/missing"],
        [*flags, "cat", f"{root}/nowhere/x"],
        [*once, "deletefile", f"{target}/missing"],
        [*once, "deletefile", f"{root}/blocker/x"],
        [*flags, "deletefile", f"{src}/sub"],  # a directory
        [*flags, "deletefile", f"{target}/{BACKUP}.sha256"],
        [*once, "deletefile", f"{globbed}/back\\slash"],
        [*lsf, target],
        [*lsf, globbed],  # empty now
        [*flags, "--no-such-flag", "cat", f"{src}/empty"],
    ]


def contract_tree(root: Path) -> None:
    for number, (name, data) in enumerate(CONTRACT_FILES.items()):
        path = root / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        moment = 1_740_787_200_123_456_789 + number * 1_000_000_007
        os.utime(path, ns=(moment, moment))
    (root / "src" / "link").symlink_to("empty")  # rclone skips symlinks without -L
    (root / "blocker").write_bytes(b"a file where a directory is wanted\n")
    os.utime(root / "blocker", ns=(1_740_787_200_000_000_000, 1_740_787_200_000_000_000))
    (root / "read-only").mkdir(mode=0o555)


def contract_files(root: Path) -> dict[str, tuple[object, ...]]:
    """Every path under ``root``: a file's bytes, mode and mtime (rclone keeps the source's), a
    directory's mode, a symlink's target."""
    found: dict[str, tuple[object, ...]] = {}
    for path in root.rglob("*"):
        info = path.lstat()
        if path.is_symlink():
            found[str(path.relative_to(root))] = ("symlink", os.readlink(path))
        elif path.is_dir():
            found[str(path.relative_to(root))] = ("dir", oct(info.st_mode & 0o7777))
        else:
            found[str(path.relative_to(root))] = (
                "file", path.read_bytes(), oct(info.st_mode & 0o7777), info.st_mtime_ns
            )  # fmt: skip
    return found


@dataclass(frozen=True)
class Outcome:
    operation: str
    status: int
    stdout: bytes
    files: dict[str, tuple[object, ...]]


def run_the_contract(rclone: str, root: Path, path: str) -> list[Outcome]:
    """The operations, in order, as the script runs them (umask 077, no config, LC_ALL=C)."""
    contract_tree(root)
    outcomes = []
    for operation in contract_operations(root):
        ran = subprocess.run(
            ["sh", "-c", 'umask 077 && exec "$0" "$@"', rclone, *operation],
            capture_output=True,
            check=False,
            timeout=COMMAND_TIMEOUT,
            stdin=subprocess.DEVNULL,
            env={"PATH": path, "HOME": str(root), "RCLONE_CONFIG": "/dev/null", "LC_ALL": "C"},
        )
        shown = " ".join(word.replace(str(root), "ROOT") for word in operation)
        outcomes.append(Outcome(shown, ran.returncode, ran.stdout, contract_files(root)))
    return outcomes


def test_the_stand_in_rclone_does_what_the_real_one_does(
    shells: dict[str, Shell], tmp_path: Path
) -> None:
    """tests/fakes/rclone, which the long simulations run (use_the_stand_in_rclone), against the
    real rclone: the same operations from the same files give the same stdout, exit status and
    files after each one, with this machine's tools and with busybox's (as each shell's tests
    run it)."""
    real = shutil.which("rclone")
    assert real is not None
    expected = run_the_contract(real, tmp_path / "real", os.environ["PATH"])
    # The operations do fail, each way the script tells apart: 3 (not found), 1 (refused).
    assert {outcome.status for outcome in expected} == {0, 1, 3}
    assert sum(outcome.status != 0 for outcome in expected) >= 10
    for shell in shells.values():
        got = run_the_contract(
            str(STAND_IN_RCLONE), tmp_path / f"stand-in-{shell.name}", shell.path
        )
        for want, have in zip(expected, got, strict=True):
            assert have == want, f"{shell.name}: {want.operation}"


# --- list -----------------------------------------------------------------------------------


def test_list_shows_good_backups_newest_first_once_per_place(box: Box) -> None:
    old = seed(box.backups, at("20250102T000001Z"))
    both = seed(box.backups, at("20250103T000002Z"))
    seed(box.offsite, at("20250103T000002Z"))
    remote_only = seed(box.offsite, at("20250101T000000Z"), suffix=".dump")
    seed(box.backups, at("20250104T000000Z"), sidecar=False)  # not a backup
    target = str(box.offsite)

    listed = box.run("list", DEPOT_BACKUP_TARGETS=target)

    assert listed.returncode == 0, listed.stderr
    size = len(f"age-encryption.org/v1\nseeded {both}\n")
    assert listed.stdout.splitlines() == [
        f"{both}\t2025-01-03T00:00:02Z\t{size}\tlocal",
        f"{both}\t2025-01-03T00:00:02Z\t{size}\t{target}",
        f"{old}\t2025-01-02T00:00:01Z\t{size}\tlocal",
        f"{remote_only}\t2025-01-01T00:00:00Z\t{size - 4}\t{target}",
    ]


def test_a_target_not_written_yet_lists_empty(box: Box) -> None:
    name = seed(box.backups, at("20250102T000000Z"))
    listed = box.run("list", DEPOT_BACKUP_TARGETS=str(box.offsite / "not-yet"))
    assert listed.returncode == 0, listed.stderr
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == [name]


def test_list_prints_what_it_can_and_fails_naming_a_target_it_cannot_list(box: Box) -> None:
    name = seed(box.backups, at("20250102T000000Z"))
    listed = box.run("list", DEPOT_BACKUP_TARGETS=f"{box.offsite} nosuchremote:depot")
    assert listed.returncode == 1
    assert listed.stdout.split("\t")[0] == name
    assert "cannot list: nosuchremote:depot" in listed.stderr


# --- health ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "healthy"),
    [(0, True), (DAY, True), (2 * DAY - 1, True), (2 * DAY, False), (9 * DAY, False)],
)
def test_health_is_good_while_the_newest_good_backup_is_younger_than_twice_the_interval(
    box: Box, age: int, healthy: bool
) -> None:
    now = at("20250310T120000Z")
    (box.backups / "status").mkdir()
    last = int((now - timedelta(seconds=age)).timestamp())
    (box.backups / "status" / "last-good").write_text(f"{last}\n")
    checked = box.run("health", "--now", stamp(now))
    assert checked.returncode == (0 if healthy else 1), checked.stdout + checked.stderr
    if not healthy:
        assert "not younger than twice the 86400 s schedule" in checked.stderr


def test_health_without_any_good_backup_is_unhealthy_and_says_the_last_failure(box: Box) -> None:
    checked = box.run("health")
    assert checked.returncode == 1
    assert "no good backup yet" in checked.stderr
    (box.backups / "status").mkdir()
    (box.backups / "status" / "last-failure").write_text("2025-03-10T00:00:00Z pg_dump failed\n")
    checked = box.run("health")
    assert "last failure: 2025-03-10T00:00:00Z pg_dump failed" in checked.stderr


def test_health_counts_the_backups_waiting_to_leave_the_host_and_fails_after_an_interval(
    box: Box,
) -> None:
    # What health reads is the script's own records: the stand-in rclone makes the first copy
    # (the same with the real rclone: test_copies_failing_for_three_days_leave_the_host_...).
    use_the_stand_in_rclone(box)
    target = str(box.offsite)
    day0, day1 = daily("20250301T000000Z", 2)
    assert box.run("run", "--now", stamp(day0), DEPOT_BACKUP_TARGETS=target).returncode == 0
    failed = box.run("run", "--now", stamp(day1), DEPOT_BACKUP_TARGETS=target, FAKE_DOWN=target)
    assert failed.returncode == 1
    size = (box.backups / artefact(day1)).stat().st_size
    waiting = (
        f"1 backup ({size} bytes) waits to leave the host, the oldest ({artefact(day1)}) for "
        "{} s; no verified copy on: " + target + "; kept here until there is one"
    )

    soon = box.run("health", "--now", stamp(day1 + timedelta(hours=1)), DEPOT_BACKUP_TARGETS=target)
    assert soon.returncode == 0, soon.stderr
    assert soon.stdout.endswith(f"; {waiting.format(3600)}\n")

    # Longer than one interval: unhealthy, although the last good backup is not yet 2 days old.
    late = box.run(
        "health", "--now", stamp(day1 + timedelta(days=1, seconds=1)), DEPOT_BACKUP_TARGETS=target
    )
    assert late.returncode == 1
    [line] = late.stderr.splitlines()
    assert line.startswith(
        "depot-backup: unhealthy: a backup has waited longer than the 86400 s schedule to leave "
        f"the host; {waiting.format(86401)}; last failure: "
    )
    assert line.endswith(f"{artefact(day1)} is kept locally but not verified on: {target}")


def test_waiting_lists_each_backup_not_yet_off_the_host_oldest_first(box: Box) -> None:
    target, other = str(box.offsite), str(box.root / "second")
    days = daily("20250301T000000Z", 3)
    names = [seed(box.backups, day) for day in days]
    record_copy(box, names[0], target)
    record_copy(box, names[0], other)  # off the host
    record_copy(box, names[2], other)
    size = (box.backups / names[0]).stat().st_size
    listed = box.run(
        "waiting", "--now", "20250303T120000Z", DEPOT_BACKUP_TARGETS=f"{target} {other}"
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        f"{names[1]}\t2025-03-02T00:00:01Z\t{size}\t129599\toverdue\t{target} {other}",
        f"{names[2]}\t2025-03-03T00:00:02Z\t{size}\t43198\trecent\t{target}",
    ]
    assert box.run("waiting", DEPOT_BACKUP_TARGETS="").stdout == ""  # no target: none waits


@pytest.mark.parametrize("where", ["last-good", "a local backup"])
def test_a_backup_stamped_in_the_future_is_unhealthy_in_one_line(box: Box, where: str) -> None:
    # The clock went back (or was ahead when the backup was taken): its age would be negative.
    now = at("20250310T120000Z")
    future = at("20280101T000000Z")
    (box.backups / "status").mkdir()
    last = future if where == "last-good" else now - timedelta(hours=1)
    (box.backups / "status" / "last-good").write_text(f"{int(last.timestamp())}\n")
    seed(box.backups, now - timedelta(hours=1))
    if where == "a local backup":
        seed(box.backups, future)
    checked = box.run("health", "--now", stamp(now))
    assert checked.returncode == 1, checked.stdout
    assert checked.stdout == ""
    assert checked.stderr.splitlines() == [
        "depot-backup: unhealthy: the newest backup is stamped 2028-01-01T00:00:00Z, "
        f"{int((future - now).total_seconds())} s after this clock's 2025-03-10T12:00:00Z: a "
        "clock is or was wrong; set it right, then move that backup aside (README, Backups)"
    ]


def test_health_uses_the_real_clock_without_now(box: Box) -> None:
    (box.backups / "status").mkdir()
    (box.backups / "status" / "last-good").write_text(f"{int(time.time()) - 60}\n")
    assert box.run("health").returncode == 0
    assert box.run("health", DEPOT_BACKUP_INTERVAL="30").returncode == 1


# --- run (fake postgres clients, real age and rclone) ----------------------------------------


def files_under(*places: Path) -> dict[Path, bytes]:
    return {
        path: path.read_bytes() for place in places for path in place.rglob("*") if path.is_file()
    }


def test_a_run_encrypts_places_copies_verifies_and_leaves_no_secret_or_plaintext(
    box: Box, identity: Identity
) -> None:
    target = str(box.offsite)
    ran = box.run("run", "--now", "20250310T000003Z", DEPOT_BACKUP_TARGETS=target)

    assert ran.returncode == 0, ran.stderr
    name = "prod-20250310T000003Z.dump.age"
    for place in (box.backups, box.offsite):
        data = (place / name).read_bytes()
        assert data.startswith(b"age-encryption.org/v1\n")
        sidecar = (place / f"{name}.sha256").read_text()
        assert sidecar == f"{hashlib.sha256(data).hexdigest()}  {name}\n"
    decrypted = subprocess.run(
        ["age", "-d", "-i", str(identity.file), str(box.backups / name)],
        capture_output=True,
        check=True,
        timeout=30,
    )
    assert decrypted.stdout.startswith(b"PGDMP fake custom-format dump")
    # Verified with pg_restore: its table of contents, then every byte.
    restores = box.calls("pg_restore")
    assert len(restores) == 2
    assert "--list" in restores[0]
    assert "--file=/dev/null" in restores[1]
    # The password reached pg_dump in its environment, and nowhere else.
    [dump] = box.calls("pg_dump")
    [password] = box.calls("pg_dump-password")
    assert password.split()[1] == hashlib.sha256(CANARY_PASSWORD.encode()).hexdigest()
    assert CANARY_PASSWORD not in dump
    for path, data in files_under(box.backups, box.offsite).items():
        assert CANARY_PASSWORD.encode() not in data, path
        assert b"PGDMP" not in data, path
    assert CANARY_PASSWORD not in ran.stdout + ran.stderr
    assert not (box.backups / ".work").exists()
    status = box.backups / "status"
    assert (status / "last-good").read_text() == f"{int(at('20250310T000003Z').timestamp())}\n"
    assert f"{name} is good" in ran.stdout
    assert box.run("health", "--now", "20250311T000000Z").returncode == 0
    listed = box.run("list", DEPOT_BACKUP_TARGETS=target)
    assert [line.split("\t")[3] for line in listed.stdout.splitlines()] == ["local", target]


def add_fake_psql(box: Box) -> None:
    psql = box.root / "fakes" / "psql"
    psql.write_text(FAKE_PSQL)
    psql.chmod(0o755)


def restore_from_the_target(box: Box, identity: Identity, target: str) -> str:
    """A backup taken to ``target``, its local copy gone: a restore must fetch it with rclone."""
    taken = box.run("run", "--now", "20250310T000000Z", DEPOT_BACKUP_TARGETS=target)
    assert taken.returncode == 0, taken.stderr
    name = artefact(at("20250310T000000Z"))
    (box.backups / f"{name}.sha256").unlink()
    (box.backups / name).unlink()
    add_fake_psql(box)
    box.log.unlink()  # the restore's calls only
    return name


def test_during_a_restore_only_age_sees_the_identity(box: Box, identity: Identity) -> None:
    # FAKE_RCLONE looks at the descriptors it is started with, which are those the script gives
    # rclone, then runs the stand-in (use_the_stand_in_rclone). A restore that lists and fetches
    # from a target with the real rclone: test_a_target_with_backslashes_is_listed_and_restored_
    # from_as_written, below; in the real image, tests/engine/test_backup_agent.py::
    # test_a_run_of_100000_rows_and_a_restore_from_the_target_after_losing_everything.
    use_the_stand_in_rclone(box)
    target = str(box.offsite)
    name = restore_from_the_target(box, identity, target)

    restored = box.feed(
        identity.file.read_text(), "restore", "latest", DEPOT_BACKUP_TARGETS=target, FAKE_PEEK="1"
    )

    log = box.log.read_text()
    assert "identity-seen-by" not in log  # (a fake that read it took it from age, too)
    assert "peek psql" in log  # before the decryption (is there a database?) and after
    assert "peek rclone" in log  # listing and fetching the copy
    assert restored.returncode == 0, restored.stderr
    assert f"restored {name} into dispatch" in restored.stdout
    # The fakes do find an identity they are given (the check above can fail).
    subprocess.run(
        ["sh", "-c", '"$0" 3<"$1"', str(box.root / "fakes" / "psql"), str(identity.file)],
        env={**box.env, "FAKE_PEEK": "1"},
        check=True,
        timeout=30,
    )
    assert "identity-seen-by psql on-fd 3" in box.log.read_text()


def test_a_target_with_backslashes_is_listed_and_restored_from_as_written(
    box: Box, identity: Identity
) -> None:
    # awk -v and echo would read these as a tab, a newline and one backslash.
    target = str(box.root / "off\\tsite" / "a\\nb\\\\c")
    assert "\\t" in target
    assert "\t" not in target
    name = restore_from_the_target(box, identity, target)

    listed = box.run("list", DEPOT_BACKUP_TARGETS=target)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        f"{name}\t2025-03-10T00:00:00Z\t{len(good_bytes(box, target, name))}\t{target}"
    ]
    restored = box.feed(identity.file.read_text(), "restore", "latest", DEPOT_BACKUP_TARGETS=target)
    assert restored.returncode == 0, restored.stderr
    assert f"fetching {name} from {target}\n" in restored.stdout
    assert f"restored {name} into dispatch" in restored.stdout


def test_a_target_with_glob_characters_is_never_expanded(box: Box) -> None:
    # The stand-in rclone (use_the_stand_in_rclone) is held to the real one on a target named
    # with glob characters (test_the_stand_in_rclone_does_what_the_real_one_does); what could
    # expand it is the script. A run and a list with the real rclone: test_a_run_encrypts_
    # places_copies_verifies_and_leaves_no_secret_or_plaintext.
    use_the_stand_in_rclone(box)
    target = str(box.root / "off*site[1]")
    decoy = box.root / "offXsite1"  # what the pattern would match
    decoy.mkdir()
    ran = box.run("run", "--now", "20250310T000000Z", DEPOT_BACKUP_TARGETS=target)
    assert ran.returncode == 0, ran.stderr
    assert good(Path(target)) == [at("20250310T000000Z")]
    assert list(decoy.iterdir()) == []
    listed = box.run("list", DEPOT_BACKUP_TARGETS=target)
    assert [line.split("\t")[3] for line in listed.stdout.splitlines()] == ["local", target]


def good_bytes(box: Box, target: str, name: str) -> bytes:
    return (Path(target) / name).read_bytes()


RCLONE_SECRET_CANARY = "RcloneSecretCanary5b1e"  # as a remote's credentials would stand there


@pytest.mark.parametrize(
    "command", [["run", "--now", "20250310T000000Z"], ["list"], ["restore", "latest", "--dry-run"]]
)
def test_rclone_saves_into_a_private_copy_of_its_read_only_config_removed_after(
    box: Box, command: list[str]
) -> None:
    # The secret arrives as a read-only file; rclone must still be able to save into its config.
    config = box.root / "secrets" / "backup_rclone_config"
    config.write_text(f"[offsite]\ntype = local\ndescription = {RCLONE_SECRET_CANARY}\n")
    config.chmod(0o400)
    original = config.read_bytes()
    target = f"offsite:{box.offsite}"
    if command[0] != "run":  # a backup on the target to list or restore
        seeded = box.run("run", DEPOT_BACKUP_TARGETS=target, RCLONE_CONFIG=str(config))
        assert seeded.returncode == 0, seeded.stderr
    ran = box.run(*command, DEPOT_BACKUP_TARGETS=target, RCLONE_CONFIG=str(config), FAKE_SAVE="1")
    if command[0] == "restore":  # it lists the targets, then finds no postgres here
        assert "cannot reach postgres at postgres:5432" in ran.stderr, ran.stderr
    else:
        assert ran.returncode == 0, ran.stderr
    seen = {tuple(line.split()[1:]) for line in box.calls("rclone-config")}
    assert seen, "rclone was not run"
    ((copy, mode),) = seen  # one copy for the whole command
    assert Path(copy).parent == box.root / "tmp"  # the container's tmpfs
    assert mode == "600"
    assert not Path(copy).exists()  # removed when the command ended
    assert config.read_bytes() == original
    assert list((box.root / "tmp").iterdir()) == []
    assert RCLONE_SECRET_CANARY not in ran.stdout + ran.stderr


@side_by_side  # it waits on the schedule's 2 s slots
def test_the_schedule_keeps_one_private_rclone_config_and_removes_it_on_term(
    box: Box, stop: Callable[[subprocess.Popen[str]], tuple[int, str, str]]
) -> None:
    config = box.root / "secrets" / "backup_rclone_config"
    config.write_text("[offsite]\ntype = local\n")
    config.chmod(0o400)
    loop = box.start(
        "schedule",
        DEPOT_BACKUP_TARGETS=f"offsite:{box.offsite}",
        RCLONE_CONFIG=str(config),
        FAKE_SAVE="1",
        DEPOT_BACKUP_INTERVAL="2",
    )
    try:
        assert wait_for(lambda: len(good(box.offsite)) >= 2, 20), good(box.offsite)
    finally:
        status, _, err = stop(loop)
    assert status == 0, err
    copies = {line.split()[1] for line in box.calls("rclone-config")}
    assert len(copies) == 1  # the loop's, used by each run's subshell and not removed by it
    assert list((box.root / "tmp").iterdir()) == []
    assert config.read_text() == "[offsite]\ntype = local\n"


def test_a_run_without_recipients_keeps_a_plain_dump_on_the_host_only(box: Box) -> None:
    ran = box.run("run", "--now", "20250310T000000Z", DEPOT_BACKUP_RECIPIENTS="")
    assert ran.returncode == 0, ran.stderr
    assert good(box.backups) == [at("20250310T000000Z")]
    assert (box.backups / "prod-20250310T000000Z.dump").read_bytes().startswith(b"PGDMP")


def test_a_target_without_recipients_is_refused_before_anything_runs(box: Box) -> None:
    ran = box.run("run", DEPOT_BACKUP_RECIPIENTS="", DEPOT_BACKUP_TARGETS=str(box.offsite))
    assert ran.returncode == 1
    assert "an unencrypted dump never leaves the host" in ran.stderr
    assert box.calls("pg_dump") == []


def test_a_dump_pg_restore_cannot_read_is_a_failed_backup_never_counted(box: Box) -> None:
    (box.backups / "status").mkdir()
    (box.backups / "status" / "last-good").write_text("1700000000\n")
    ran = box.run("run", "--now", "20250310T000000Z", FAKE_RESTORE_FAIL="1")

    assert ran.returncode == 1
    assert ran.stderr.splitlines()[-1] == (
        "depot-backup: the dump of 20250310T000000Z cannot be read back by pg_restore: "
        "failed, not counted"
    )
    assert good(box.backups) == []
    assert {p.name for p in box.backups.iterdir()} == {"status"}  # .work emptied
    assert (box.backups / "status" / "last-good").read_text() == "1700000000\n"
    failure = (box.backups / "status" / "last-failure").read_text()
    assert "cannot be read back by pg_restore" in failure


def test_a_target_that_corrupts_the_copy_fails_the_run_and_holds_no_backup(box: Box) -> None:
    target = str(box.offsite)
    ran = box.run("run", "--now", "20250310T000000Z", DEPOT_BACKUP_TARGETS=target, FAKE_GARBLE="1")

    assert ran.returncode == 1
    assert f"{target}: prod-20250310T000000Z.dump.age read back does not match" in ran.stderr
    assert ran.stderr.splitlines()[-1] == (
        "depot-backup: prod-20250310T000000Z.dump.age is kept locally but not verified on: "
        + target
    )
    assert good(box.offsite) == []  # the garbled copy was removed, and has no sidecar
    assert good(box.backups) == [at("20250310T000000Z")]  # the local one is verified
    assert not (box.backups / "status" / "last-good").exists()  # the run was not good


def test_a_failed_dump_is_reported_and_a_second_run_of_the_same_second_is_refused(
    box: Box,
) -> None:
    failed = box.run("run", "--now", "20250310T000000Z", FAKE_DUMP_FAIL="1")
    assert failed.returncode == 1
    assert failed.stderr.splitlines()[-1] == "depot-backup: pg_dump of database dispatch failed"
    assert box.run("run", "--now", "20250310T000000Z").returncode == 0
    again = box.run("run", "--now", "20250310T000000Z")
    assert again.returncode == 1
    assert "a backup named prod-20250310T000000Z.dump.age exists already" in again.stderr


@side_by_side
def test_a_run_waits_for_postgres_to_accept_connections_before_dumping(box: Box) -> None:
    # On Swarm the backup task starts beside postgres' (a stack has no depends_on).
    ran = box.run("run", "--now", "20250310T000000Z", FAKE_DB_DOWN_CALLS="2")
    assert ran.returncode == 0, ran.stderr
    assert "waiting up to 120 s for postgres at postgres:5432" in ran.stdout
    calls = [line.split()[0] for line in box.log.read_text().splitlines()]
    assert calls[:4] == ["pg_isready", "pg_isready", "pg_isready", "pg_dump"]
    assert "pg_isready-was-given-a-password" not in calls  # it never authenticates
    assert good(box.backups) == [at("20250310T000000Z")]


@side_by_side
def test_a_database_that_never_answers_fails_the_run_once_the_wait_is_over(box: Box) -> None:
    began = time.monotonic()
    # 2 s: the shortest wait that still polls twice (pg_isready every 2 s).
    ran = box.run(
        "run", "--now", "20250310T000000Z", FAKE_DB_DOWN_CALLS="1000", DEPOT_BACKUP_DB_WAIT="2"
    )
    took = time.monotonic() - began
    assert ran.returncode == 1
    message = "postgres at postgres:5432 did not accept connections within 2 s"
    assert ran.stderr.splitlines()[-1] == f"depot-backup: {message}"
    assert message in (box.backups / "status" / "last-failure").read_text()
    assert box.calls("pg_dump") == []
    assert 2 <= len(box.calls("pg_isready")) <= 4  # every 2 s for 2 s (2 polls), bounded in count
    assert took < 15
    assert good(box.backups) == []


def test_a_run_waits_for_no_one_while_another_live_process_holds_the_lock(box: Box) -> None:
    holder = subprocess.Popen(["sleep", "30"])
    try:
        lock = box.root / "tmp" / "depot-backup.lock"
        lock.mkdir()
        (lock / "pid").write_text(f"{holder.pid}\n")
        ran = box.run("run")
        assert ran.returncode == 1
        assert f"another backup, prune or restore is running (pid {holder.pid})" in ran.stderr
    finally:
        holder.kill()
        holder.wait()
    # Its holder gone, the lock is stale and taken over.
    assert box.run("run", "--now", "20250310T000000Z").returncode == 0
    assert not (box.root / "tmp" / "depot-backup.lock").exists()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEPOT_BACKUP_STACK": ""}, "DEPOT_BACKUP_STACK is not set"),
        ({"DEPOT_BACKUP_STACK": "a/b"}, "DEPOT_BACKUP_STACK=a/b: only letters"),
        ({"DEPOT_BACKUP_INTERVAL": "0"}, "DEPOT_BACKUP_INTERVAL=0: a whole number"),
        ({"DEPOT_BACKUP_KEEP_DAILY": "-1"}, "DEPOT_BACKUP_KEEP_DAILY=-1: a whole number"),
        ({"DEPOT_BACKUP_KEEP_LOCAL": "0"}, "DEPOT_BACKUP_KEEP_LOCAL=0: at least 1"),
        ({"DATABASE_PASSWORD_FILE": "/nonexistent"}, "cannot read the database password file"),
        ({"RCLONE_CONFIG": "/nonexistent"}, "RCLONE_CONFIG=/nonexistent cannot be read"),
        ({"DEPOT_BACKUP_DB_WAIT": "soon"}, "DEPOT_BACKUP_DB_WAIT=soon: a whole number"),
    ],
)
def test_bad_settings_fail_with_one_line_naming_them(
    box: Box, env: dict[str, str], message: str
) -> None:
    ran = box.run("run", **env)
    assert ran.returncode == 1
    assert ran.stderr.startswith(f"depot-backup: {message}")
    assert len(ran.stderr.splitlines()) == 1
    assert box.calls("pg_dump") == []


@pytest.mark.parametrize(
    "args", [[], ["nope"], ["run", "--now"], ["run", "--later"], ["restore"], ["list", "x"]]
)
def test_usage_errors_exit_2(box: Box, args: list[str]) -> None:
    ran = box.run(*args)
    assert ran.returncode == 2
    assert ran.stderr.startswith("depot-backup: usage:")


@pytest.mark.parametrize("now", ["20250231T000000Z", "20250310T240000Z", "2025-03-10", "x"])
def test_now_must_be_a_real_utc_instant(box: Box, now: str) -> None:
    ran = box.run("prune", "--now", now)
    assert ran.returncode == 1
    assert f"--now {now}: a UTC time YYYYmmddTHHMMSSZ" in ran.stderr


# --- schedule -------------------------------------------------------------------------------


@side_by_side
def test_the_schedule_runs_at_once_then_on_each_slot_and_stops_cleanly_on_term(
    box: Box, stop: Callable[[subprocess.Popen[str]], tuple[int, str, str]]
) -> None:
    interval = 3
    printed = box.root / "schedule.out"  # followed while it runs: TERM once 3 runs are good
    began = time.time()
    with printed.open("w") as sink:
        loop = box.start("schedule", DEPOT_BACKUP_INTERVAL=str(interval), stdout=sink)
        try:
            assert wait_for(lambda: printed.read_text().count(" is good") >= 3, 20), (
                printed.read_text()
            )
        finally:
            status, _, err = stop(loop)
    out = printed.read_text()
    assert status == 0, err
    # Each run's backup (the daily rule then keeps one of them: they share a day).
    made = [at(stamp) for stamp in re.findall(r"backup prod-(\S+)\.dump\.age is good", out)]
    assert len(made) >= 3, out
    assert made[-1] in good(box.backups)  # (TERM may have come while it was pruning)
    first, *later = made
    assert first.timestamp() - began < 2  # no backup yet: the first run at once
    for moment in later:  # then on the slots: multiples of the interval since the epoch
        assert moment.timestamp() % interval < 2, moment
    assert "depot-backup: stopped" in out
    assert not (box.backups / ".work").exists()
    assert not (box.root / "tmp" / "depot-backup.lock").exists()


@side_by_side
def test_the_schedule_waits_for_the_next_slot_after_a_fresh_backup(
    box: Box, stop: Callable[[subprocess.Popen[str]], tuple[int, str, str]]
) -> None:
    (box.backups / "status").mkdir()
    (box.backups / "status" / "last-good").write_text(f"{int(time.time())}\n")
    loop = box.start("schedule", DEPOT_BACKUP_INTERVAL="3600")
    time.sleep(2)
    began = time.monotonic()
    status, out, _ = stop(loop)
    assert time.monotonic() - began < 3  # TERM ends its sleep at once, not after a minute
    assert status == 0
    assert box.calls("pg_dump") == []
    assert "the newest good backup is" in out
    assert re.search(r"next run at \d{4}-\d\d-\d\dT\d\d:00:00Z", out), out


@side_by_side
def test_a_rebuilt_host_waits_when_a_target_holds_a_fresh_backup(
    box: Box, stop: Callable[[subprocess.Popen[str]], tuple[int, str, str]]
) -> None:
    # The lost host's backup of a minute ago is on the target; the new host's volume is empty.
    # Backing up its new, empty database now would make that the newest backup and prune the
    # real one of the same day from the target. The target is read by the stand-in rclone
    # (use_the_stand_in_rclone); a target listed by the real one: the tests of `list` and
    # test_a_target_is_pruned_by_its_rules_through_the_real_rclone.
    use_the_stand_in_rclone(box)
    target = str(box.offsite)
    taken = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    ran = box.run("run", "--now", stamp(taken), DEPOT_BACKUP_TARGETS=target)
    assert ran.returncode == 0, ran.stderr
    shutil.rmtree(box.backups)
    box.backups.mkdir()
    loop = box.start("schedule", DEPOT_BACKUP_TARGETS=target)
    try:
        assert wait_for((box.backups / "status" / "last-good").exists, 10)
        time.sleep(1)
    finally:
        status, out, err = stop(loop)
    assert status == 0, err
    assert len(box.calls("pg_dump")) == 1  # the lost host's run only
    assert f"the newest good backup is on {target}, of {taken:%Y-%m-%dT%H:%M:%SZ}" in out
    assert re.search(r"next run at \d{4}-\d\d-\d\dT00:00:00Z", out), out
    assert good(box.offsite) == [taken]
    # It is the newest good backup: the service is healthy, not "no good backup yet".
    assert box.run("health", DEPOT_BACKUP_TARGETS=target).returncode == 0


@side_by_side
def test_a_failed_run_is_retried_sooner_three_times_as_far_apart_each_time(
    box: Box, stop: Callable[[subprocess.Popen[str]], tuple[int, str, str]]
) -> None:
    # The retries must start before the next slot (00:00 UTC): keep clear of it.
    if DAY - time.time() % DAY < 30:
        time.sleep(DAY - time.time() % DAY + 1)
    began = time.monotonic()
    loop = box.start("schedule", DEPOT_BACKUP_RETRY_DELAY="1", FAKE_DUMP_FAIL="1")
    try:
        assert wait_for(lambda: len(box.calls("pg_dump")) >= 3, 15)
        third = time.monotonic() - began
        time.sleep(1)
    finally:
        status, _, err = stop(loop)
    assert status == 0
    assert len(box.calls("pg_dump")) == 3  # at once, +1 s, +3 s; the next one +9 s later
    # 1 s then 3 s apart, by a clock of whole seconds (`date +%s`): each wait may be up to a
    # second short, and a loaded machine makes the whole slower, never faster.
    assert 2 <= third < 10
    assert "retry 1 of 3" in err
    assert "retry 2 of 3" in err
    assert (
        "pg_dump of database dispatch failed"
        in (box.backups / "status" / "last-failure").read_text()
    )


@side_by_side
def test_a_failed_copy_is_retried_without_a_new_dump_until_it_is_off_the_host(
    box: Box, stop: Callable[[subprocess.Popen[str]], tuple[int, str, str]]
) -> None:
    if DAY - time.time() % DAY < 30:  # the retries must start before the next slot
        time.sleep(DAY - time.time() % DAY + 1)
    # The copy, once the target is back, by the stand-in rclone (use_the_stand_in_rclone); with
    # the real one: test_copies_failing_for_three_days_leave_the_host_oldest_first_before_....
    use_the_stand_in_rclone(box)
    target = str(box.offsite)
    loop = box.start(
        "schedule", DEPOT_BACKUP_RETRY_DELAY="1", DEPOT_BACKUP_TARGETS=target, FAKE_DOWN=target
    )
    try:
        assert wait_for(lambda: len(box.calls("rclone-copyto-failed")) >= 2, 15)
        (box.root / "up").touch()  # the target is back for the next retry
        assert wait_for(lambda: len(good(box.offsite)) == 1, 15)
        time.sleep(1)
    finally:
        status, _, err = stop(loop)
    assert status == 0, err
    assert len(box.calls("pg_dump")) == 1  # the retries copied the dump they had
    assert "retry 1 of 3 at " in err
    assert ": copying what waits to leave the host" in err
    assert good(box.backups) == good(box.offsite)
    assert box.run("health", DEPOT_BACKUP_TARGETS=target).returncode == 0


def test_term_during_a_run_stops_the_dump_and_empties_the_work_directory(
    box: Box, stop: Callable[[subprocess.Popen[str]], tuple[int, str, str]]
) -> None:
    pid_file = box.root / "pg_dump.pid"
    loop = box.start("schedule", FAKE_DUMP_SLEEP="60")
    try:
        assert wait_for(pid_file.exists, 10)
        assert (box.backups / ".work").is_dir()
    finally:
        began = time.monotonic()
        status, _, err = stop(loop)
    assert time.monotonic() - began < 5, err
    assert status == 0
    dump = int(pid_file.read_text())
    assert wait_for(lambda: not Path(f"/proc/{dump}").exists(), 5), "pg_dump still runs"
    assert not (box.backups / ".work").exists()
    assert not (box.root / "tmp" / "depot-backup.lock").exists()
    assert good(box.backups) == []


# --- the script and its image ---------------------------------------------------------------


def test_the_script_is_executable_in_the_repository() -> None:
    # The image's COPY keeps this mode: the classic builder has no --chmod.
    assert SCRIPT.stat().st_mode & 0o755 == 0o755
    listed = subprocess.run(
        ["git", "ls-files", "--stage", str(SCRIPT)],
        capture_output=True,
        text=True,
        check=False,
        cwd=PROJECT_DIR,
        timeout=30,
    )
    if listed.returncode == 0 and listed.stdout:
        assert listed.stdout.startswith("100755 ")


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
@pytest.mark.parametrize(
    "script", [SCRIPT, STAND_IN_RCLONE], ids=["depot-backup", "stand-in-rclone"]
)
def test_the_script_passes_shellcheck_as_posix_sh(script: Path) -> None:
    checked = subprocess.run(
        ["shellcheck", "--shell=sh", str(script)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout


def test_the_dockerfile_runs_the_script_as_postgres_with_the_contracts_healthcheck() -> None:
    text = DOCKERFILE.read_text()
    assert "ARG POSTGRES_IMAGE=postgres:17.2-alpine\nFROM ${POSTGRES_IMAGE}\n" in text
    assert (
        "HEALTHCHECK --interval=10s --timeout=5s --start-period=300s --retries=3 \\\n"
        '    CMD ["depot-backup", "health"]'
    ) in text
    tail = text[text.index("HEALTHCHECK") :]
    assert re.findall(r"^(USER|ENTRYPOINT|CMD) (.*)$", tail, flags=re.MULTILINE) == [
        ("USER", "70:70"),
        ("ENTRYPOINT", '["depot-backup"]'),
        ("CMD", '["schedule"]'),
    ]
    assert "COPY depot-backup /usr/local/bin/depot-backup" in text
    ignored = (SCRIPT.parent / ".dockerignore").read_text().split()
    assert ignored[-2:] == ["*", "!depot-backup"]
