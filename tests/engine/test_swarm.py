"""The cluster stack's stack file on a real single-node Swarm (README "Docker Swarm").

One deployment for the module (``swarm_depot``): converged, then updated in the order below —
the tests share it and run in file order. The tests that update discovery first shorten its
healthcheck (interval 1 s, timeout 1 s, start period 0 s) and set its update and rollback
monitor to the worst case the program derives from that healthcheck: with the catalogue's 10 s
interval and 30 s start period each would take minutes. Nothing else is shortened.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from depot.catalog import SERVICES, Healthcheck
from depot.outputs.secret_files import SECRETS_DIR, secret_file_name
from depot.swarm import go_duration
from tests.engine.conftest import FIGURES, engine_in_a_swarm
from tests.engine.harness import docker, logged_first_probe_delay
from tests.engine.swarm import (
    NAMESPACE_LABEL,
    SwarmDepot,
    container_health,
    converged,
    file_digest,
    inspect_service,
    left_behind,
    running_tasks,
    service_name,
    swarm_depot,
    swarm_unavailable,
    task_containers,
    update_state,
    wait_until,
)

pytestmark = pytest.mark.engine

CONVERGE_TIMEOUT = 180  # seconds; converging takes about 14 s here
# Seconds from `docker stack deploy` to every task healthy, the backup's after its first backup.
# Tasks start at once, each probed every start_interval; without it dispatch alone (waiting for
# postgres) took 13-15 s on Engine 20.10. Loose for a loaded machine: the first-probe check of
# the postgres update below is what fails without start_interval.
CONVERGE_BOUND = 30
# Seconds of postgres' stop-first update: the old task stopped, the new one healthy.
POSTGRES_UPDATE_BOUND = 15
FIRST_PROBE_BOUND = 3  # seconds from a start to its first probe: start_interval's, not interval's
# Discovery's healthcheck for the update tests: the catalogue's probe, one second apart.
FAST_CHECK = Healthcheck(
    test=next(spec for spec in SERVICES if spec.name == "discovery").healthcheck.test,
    interval=1,
    timeout=1,
    retries=3,
    start_period=0,
)
PROBE_LIMIT = 3000  # requests: the probe loop's bound in count (and PROBE_SECONDS in time)
PROBE_SECONDS = 90
DISCOVERY_PORT = 4860
NANOSECONDS = 1_000_000_000  # the engine's unit for healthcheck durations
# The engine the tier's `docker` commands talk to: the swarm's only node.
LOCAL_ENGINE = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


@pytest.fixture(scope="module")
def swarm(standin_images: dict[str, str]) -> Iterator[SwarmDepot]:
    reason = swarm_unavailable()
    if reason:
        pytest.skip(f"swarm test: {reason}")
    with (
        engine_in_a_swarm(),
        tempfile.TemporaryDirectory(prefix="depot-engine-swarm-") as directory,
        swarm_depot(standin_images, Path(directory), CONVERGE_TIMEOUT) as depot,
    ):
        FIGURES["swarm: init, registry, stand-ins pushed"] = f"{depot.setup_seconds:.0f} s"
        FIGURES["swarm: stack converged healthy"] = (
            f"{depot.converge_seconds:.1f} s (bound {CONVERGE_BOUND} s)"
        )
        yield depot
    state = docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()
    assert state == "inactive", f"the engine is left in swarm state {state!r}"
    left = left_behind(depot)
    assert not left, f"the swarm test left {left} on the engine"


def test_every_service_runs_its_replicas_healthy(swarm: SwarmDepot) -> None:
    stack = {
        line.split()[0]
        for line in docker(
            "service", "ls", "--filter", f"label={NAMESPACE_LABEL}=depot", "--format", "{{.Name}}"
        ).stdout.splitlines()
    }
    assert stack == {service_name(name) for name in swarm.replicas}
    assert "splat-worker" not in swarm.replicas
    assert "rtk-base" not in swarm.replicas
    assert swarm.replicas["discovery"] == 2
    assert swarm.replicas["postgres"] == 1
    for name, replicas in swarm.replicas.items():
        assert converged(name, replicas), name
        spec = inspect_service(name)["Spec"]
        assert spec["EndpointSpec"]["Mode"] == "dnsrr"
        image = spec["TaskTemplate"]["ContainerSpec"]["Image"]
        assert "@sha256:" in image, f"{name} runs {image}, not a digest"
        # The stack file (no version key) carries start_interval to the service spec.
        health = spec["TaskTemplate"]["ContainerSpec"]["Healthcheck"]
        expected = next(s for s in SERVICES if s.name == name).healthcheck.start_interval
        assert health.get("StartInterval") == expected * NANOSECONDS, name
    assert swarm.converge_seconds < CONVERGE_BOUND


def test_the_console_answers_on_its_host_mode_port(swarm: SwarmDepot) -> None:
    url = f"http://127.0.0.1:{swarm.console_port}/"
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        assert b"depot console" in response.read()


@pytest.mark.parametrize(
    ("service", "secret", "owner"),
    [("postgres", "database_password", 70), ("grafana", "grafana_admin_password", 472)],
)
def test_secrets_are_files_with_their_owner_and_mode_0400(
    swarm: SwarmDepot, service: str, secret: str, owner: int
) -> None:
    expected = file_digest((swarm.directory / SECRETS_DIR / secret_file_name(secret)).read_text())
    for container in task_containers(service):
        path = f"/run/secrets/{secret}"
        mode = docker("exec", container, "stat", "-c", "%u %g %a", path).stdout.split()
        assert mode == [str(owner), str(owner), "400"], f"{service}: {path} is {mode}"
        digest = docker("exec", container, "sha256sum", path).stdout.split()[0]
        assert digest == expected, f"{service}: {path} is not the secret file's content"


def test_postgres_is_unreachable_from_the_depot_network(swarm: SwarmDepot) -> None:
    (postgres,) = running_tasks("postgres")
    addresses = [
        attachment["Addresses"][0].split("/")[0] for attachment in postgres["NetworksAttachments"]
    ]
    # Postgres answers an SSLRequest with one byte, "N" or "S": only postgres says that.
    ssl_request = r"\000\000\000\010\004\322\026\057"
    probes = [
        f"printf '{ssl_request}' | nc -w 2 {target} 5432 | grep -q '[NS]' "
        f"&& echo 'open {target}' || echo 'closed {target}'"
        for target in ["postgres", "tasks.postgres", *addresses]
    ]
    # The client's default route leads out of the node (docker_gwbridge): removed, so every
    # packet stays on depot-network, and what answers is reached through the overlay or not.
    script = "; ".join(
        [
            "ip route del default",
            *probes,
            f"nc -w 2 tasks.discovery {DISCOVERY_PORT} < /dev/null && echo 'reached discovery'",
        ]
    )
    answers = swarm.client(script, root_with_net_admin=True)
    assert "reached discovery" in answers, f"the client reaches nothing at all: {answers}"
    assert "open" not in answers, answers
    # The same probe from dispatch, on both networks, gets postgres' answer.
    dispatch = task_containers("dispatch")[0]
    probe = f"printf '{ssl_request}' | nc -w 2 postgres 5432 | grep -q '[NS]'"
    reached = docker("exec", dispatch, "sh", "-c", probe, check=False)
    assert reached.returncode == 0, reached.stderr


def _shorten_discovery_healthcheck() -> None:
    """Discovery's probe 1 s apart; update and rollback watched for that probe's worst case.

    Once per deployment: the rollback test, run alone, shortens it too.
    """
    health = inspect_service("discovery")["Spec"]["TaskTemplate"]["ContainerSpec"]["Healthcheck"]
    if health.get("Interval") == FAST_CHECK.interval * NANOSECONDS:
        return
    monitor = go_duration(FAST_CHECK.worst_case_seconds)
    docker(
        "service",
        "update",
        "--detach",
        "--health-interval",
        go_duration(FAST_CHECK.interval),
        "--health-timeout",
        go_duration(FAST_CHECK.timeout),
        "--health-retries",
        str(FAST_CHECK.retries),
        "--health-start-period",
        go_duration(FAST_CHECK.start_period),
        "--update-monitor",
        monitor,
        "--rollback-monitor",
        monitor,
        service_name("discovery"),
    )
    wait_until("discovery's healthcheck shortened", _update_done("discovery"), timeout=90)


def _update_done(service: str) -> Callable[[], bool]:
    def done() -> bool:
        state = update_state(service)
        assert state not in ("paused", "rollback_started", "rollback_completed"), state
        return state == "completed"

    return done


PROBE_SCRIPT = r"""
i=0; ok=0; failed=0; end=$(( $(date +%s) + {seconds} ))
while [ "$i" -lt {limit} ] && [ "$(date +%s)" -lt "$end" ] && [ ! -e /tmp/stop ]; do
  i=$((i + 1))
  set -- $(nslookup tasks.discovery 2>/dev/null | sed -n 's/^Address: *//p' | grep -v ':53$')
  if [ "$#" -eq 0 ]; then echo "fail none"; failed=$((failed + 1)); continue; fi
  shift $(( i % $# ))
  if printf 'GET /health HTTP/1.0\r\n\r\n' | nc -w 2 "$1" {port} | grep -q '200 OK'; then
    ok=$((ok + 1))
  else
    echo "fail $1"; failed=$((failed + 1))
  fi
  sleep 0.05
done
echo "requests $i ok $ok failed $failed"
"""


@dataclass(frozen=True)
class ProbedUpdate:
    """An update of discovery with the probe loop running: how long, how many requests failed."""

    seconds: float
    requests: int
    failed: int
    log: str


def _probe_during_update(swarm: SwarmDepot, *update: str) -> ProbedUpdate:
    """``docker service update <update…> depot_discovery`` while a client probes it."""
    _shorten_discovery_healthcheck()
    probe = swarm.client(
        PROBE_SCRIPT.format(seconds=PROBE_SECONDS, limit=PROBE_LIMIT, port=DISCOVERY_PORT),
        detach=True,
    )
    try:
        time.sleep(2)  # requests before the update, too
        docker("service", "update", "--detach", *update, service_name("discovery"))
        seconds = wait_until("discovery updated", _update_done("discovery"), timeout=90)
        time.sleep(2)
        docker("exec", probe, "touch", "/tmp/stop", check=False)
        wait_until(
            "the probe loop ended",
            lambda: "requests" in docker("logs", probe).stdout,
            timeout=15,
        )
        log = docker("logs", probe).stdout
    finally:
        docker("rm", "--force", probe, check=False)
    summary = re.search(r"requests (\d+) ok (\d+) failed (\d+)", log)
    assert summary, log[-2000:]
    requests, failed = int(summary.group(1)), int(summary.group(3))
    assert requests >= 20, f"too few requests to tell: {log[-500:]}"
    return ProbedUpdate(seconds, requests, failed, log)


def test_a_rolling_update_of_discovery_fails_no_request(swarm: SwarmDepot) -> None:
    before = set(task_containers("discovery"))
    probed = _probe_during_update(swarm, "--env-add", "DEPOT_TIER_ROLL=1")
    FIGURES["swarm: rolling update of discovery (2 replicas, start-first)"] = (
        f"{probed.seconds:.0f} s, {probed.requests} requests, {probed.failed} failed"
    )
    assert probed.failed == 0, probed.log[-2000:]
    after = set(task_containers("discovery"))
    assert len(after) == 2
    assert not after & before, "both tasks are new ones"
    env = inspect_service("discovery")["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"]
    assert "DEPOT_TIER_ROLL=1" in env


def test_an_update_that_never_turns_healthy_rolls_back_by_itself(swarm: SwarmDepot) -> None:
    _shorten_discovery_healthcheck()
    before = set(task_containers("discovery"))
    # The new tasks serve on another port: their healthcheck, on 4860, never answers.
    docker("service", "update", "--detach", "--env-add", "PORT=4999", "depot_discovery")

    def rolled_back() -> bool:
        return update_state("discovery") == "rollback_completed"

    seconds = wait_until("discovery rolled back by Swarm", rolled_back, timeout=120)
    FIGURES["swarm: failed update of discovery rolled back"] = f"{seconds:.0f} s"
    spec = inspect_service("discovery")["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert f"PORT={DISCOVERY_PORT}" in spec["Env"]
    assert converged("discovery", 2)
    assert set(task_containers("discovery")) == before, "the old tasks kept serving"


def test_the_probe_sees_the_failures_of_an_update_with_downtime(swarm: SwarmDepot) -> None:
    """The control: both tasks stopped before their successors start, the probe counts failures.

    After the rollback test: this leaves discovery with stop-first updates, which no later test
    updates.
    """
    probed = _probe_during_update(
        swarm, "--update-order", "stop-first", "--update-parallelism", "2", "--env-add", "X=2"
    )
    FIGURES["swarm: control, stop-first update of both discovery tasks at once"] = (
        f"{probed.seconds:.0f} s, {probed.requests} requests, {probed.failed} failed"
    )
    assert probed.failed > 0, "the probe saw no failure during downtime: it proves nothing"


def test_postgres_data_survives_a_stop_first_update(swarm: SwarmDepot) -> None:
    (old,) = task_containers("postgres")
    marker = secrets.token_hex(8)
    sql = f"CREATE TABLE tier_marker (v text); INSERT INTO tier_marker VALUES ('{marker}');"  # noqa: S608 - a hex token of ours
    psql = ["psql", "-U", "postgres", "-d", "dispatch", "-tA", "-c"]
    docker("exec", "--user", "postgres", old, *psql, sql)
    started = time.monotonic()
    docker("service", "update", "--detach", "--env-add", "DEPOT_TIER_ROLL=1", "depot_postgres")

    def replaced() -> bool:
        containers = task_containers("postgres")
        return (
            len(containers) == 1
            and containers[0] != old
            and container_health(containers[0]) == "healthy"
        )

    wait_until("postgres' new task healthy", replaced, timeout=120)
    took = time.monotonic() - started
    (new,) = task_containers("postgres")
    delay = logged_first_probe_delay(json.loads(docker("inspect", new).stdout)[0])
    FIGURES["swarm: postgres updated (stop-first), healthy again"] = (
        f"{took:.1f} s (bound {POSTGRES_UPDATE_BOUND} s; first probe {delay:.1f} s after start)"
    )
    assert took < POSTGRES_UPDATE_BOUND
    assert delay < FIRST_PROBE_BOUND
    stopped = _engine_time(docker("inspect", "--format", "{{.State.FinishedAt}}", old).stdout)
    began = _engine_time(docker("inspect", "--format", "{{.State.StartedAt}}", new).stdout)
    assert stopped <= began, f"the old postgres stopped at {stopped}, the new began at {began}"
    rows = docker("exec", "--user", "postgres", new, *psql, "SELECT v FROM tier_marker").stdout
    assert rows.strip() == marker


SWARM_ROWS = 20_000
SWARM_FINGERPRINT = (
    "SELECT count(*) || ' ' || md5(string_agg(note, ',' ORDER BY id)) FROM swarm_rows"
)
SWARM_TABLE = (
    "CREATE TABLE swarm_rows (id bigint PRIMARY KEY, note text NOT NULL);"  # noqa: S608 - constants
    f"INSERT INTO swarm_rows SELECT g, md5(g::text) FROM generate_series(1, {SWARM_ROWS}) g;"
)


def test_a_dropped_table_comes_back_from_a_backup_on_the_swarm(swarm: SwarmDepot) -> None:
    """``depot backup`` and ``depot restore`` find the backup task on the swarm's node and work
    there: after postgres' task was replaced above, so the backup follows postgres' new task."""
    (postgres,) = task_containers("postgres")
    psql = ["psql", "-U", "postgres", "-d", "dispatch", "-tA", "-v", "ON_ERROR_STOP=1", "-c"]

    def query(statement: str) -> str:
        return docker("exec", "--user", "postgres", postgres, *psql, statement).stdout.strip()

    query(SWARM_TABLE)
    written = query(SWARM_FINGERPRINT)
    assert written.startswith(f"{SWARM_ROWS} ")

    began = time.monotonic()
    backed_up = _depot("backup")
    backup_seconds = time.monotonic() - began
    assert backed_up.returncode == 0, backed_up.stderr[-1000:]
    (name,) = re.findall(r"backup (cluster-\d{8}T\d{6}Z\.dump\.age) is good", backed_up.stdout)
    listed = _depot("backups")
    assert listed.returncode == 0, listed.stderr[-500:]
    assert name in listed.stdout

    query("DROP TABLE swarm_rows")  # the mistake a backup is for
    began = time.monotonic()
    restored = _depot("restore", "--from", name, "--identity", str(swarm.identity))
    restore_seconds = time.monotonic() - began
    assert restored.returncode == 0, restored.stderr[-1000:]
    assert query(SWARM_FINGERPRINT) == written
    FIGURES["swarm: depot backup, depot restore"] = (
        f"{SWARM_ROWS:,} rows: {backup_seconds:.1f} s, {restore_seconds:.1f} s"
    )
    (backup,) = task_containers("backup")
    assert container_health(backup) == "healthy"


def _depot(*args: str) -> subprocess.CompletedProcess[str]:
    """``depot ARGS --stack cluster`` against this engine, the swarm's only node."""
    return subprocess.run(
        [sys.executable, "-m", "depot", *args, "--stack", "cluster", "--docker-host", LOCAL_ENGINE],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip


def _engine_time(text: str) -> datetime:
    """The engine's RFC 3339 time (nanoseconds, trailing zeros cut) as a datetime, to the µs."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z", text.strip())
    assert match, f"not an engine time: {text!r}"
    fraction = (match.group(2) or "0")[:6].ljust(6, "0")
    return datetime.fromisoformat(f"{match.group(1)}.{fraction}+00:00")


def test_a_rotated_secret_updates_its_service_without_in_use(swarm: SwarmDepot) -> None:
    old_name = "depot_grafana_admin_password"
    content = secrets.token_hex(16)
    new_name = f"depot_grafana_admin_password_{file_digest(content)[:12]}"
    rotated_file = swarm.directory / SECRETS_DIR / "grafana_admin_password.rotated.txt"
    rotated_file.write_text(content)
    docker("secret", "create", "--label", f"{NAMESPACE_LABEL}=depot", new_name, str(rotated_file))
    before = set(task_containers("grafana"))
    started = time.monotonic()
    updated = docker(
        "service",
        "update",
        "--detach",
        "--secret-rm",
        old_name,
        "--secret-add",
        f"source={new_name},target=grafana_admin_password,uid=472,gid=472,mode=0400",
        "depot_grafana",
        check=False,
    )
    assert updated.returncode == 0, updated.stderr
    assert "in use" not in updated.stderr

    def rotated() -> bool:
        containers = task_containers("grafana")
        return (
            len(containers) == 1
            and containers[0] not in before
            and container_health(containers[0]) == "healthy"
        )

    wait_until("grafana's new task healthy with the new secret", rotated, timeout=120)
    FIGURES["swarm: secret rotated, grafana healthy again"] = f"{time.monotonic() - started:.0f} s"
    (container,) = task_containers("grafana")
    path = "/run/secrets/grafana_admin_password"
    digest = docker("exec", container, "sha256sum", path).stdout.split()[0]
    assert digest == file_digest(content)
    removed = docker("secret", "rm", old_name, check=False)
    assert removed.returncode == 0, removed.stderr
