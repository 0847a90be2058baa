"""The hardening as the engine applied it (``docker inspect``) and as it behaves."""

from __future__ import annotations

import pytest

from depot.catalog import LOG_OPTIONS, SCRATCH, ServiceSpec
from depot.model import deployments
from tests.engine.harness import TierDepot, docker

pytestmark = pytest.mark.engine

MIB = 1024 * 1024
NANO = 1_000_000_000


def test_the_engine_applied_the_catalogues_hardening(depot: TierDepot) -> None:
    for deployment in deployments(depot.settings):
        spec = deployment.spec
        if spec.profile is not None:
            continue
        inspected = depot.inspect(spec.container_name)
        host, config = inspected["HostConfig"], inspected["Config"]
        assert host["ReadonlyRootfs"] is (spec.writable_root is None), spec.name
        assert host["CapDrop"] == ["ALL"], spec.name
        added = sorted(cap.removeprefix("CAP_") for cap in host["CapAdd"] or [])
        assert added == sorted(spec.capabilities), spec.name
        assert host["SecurityOpt"] == ["no-new-privileges:true"], spec.name
        if spec.user is not None:
            assert config["User"] == spec.user, spec.name
        tmpfs = dict.fromkeys(spec.tmpfs, SCRATCH.mount_options)
        assert (host.get("Tmpfs") or {}) == tmpfs, spec.name
        assert bool(host.get("Init")) is bool(spec.init), spec.name
        assert config["StopTimeout"] == spec.stop_grace_seconds, spec.name
        assert host["LogConfig"] == {"Type": "json-file", "Config": LOG_OPTIONS}, spec.name
        restart = deployment.restart
        assert host["RestartPolicy"] == {
            "Name": restart.name,
            "MaximumRetryCount": restart.max_retries or 0,
        }, spec.name
        limits = deployment.limits
        assert host["Memory"] == (limits.memory * MIB if limits else 0), spec.name
        assert host["NanoCpus"] == (round(limits.cpus * NANO) if limits else 0), spec.name
        reservation = limits.memory_reservation if limits else None
        assert host["MemoryReservation"] == (reservation or 0) * MIB, spec.name


def process_uids(spec: ServiceSpec) -> list[str]:
    """The numeric uids that run the service's processes, as the host's ps sees them.

    Not its healthcheck's: Docker runs the probe with ``exec`` as the container's user, which is
    root where the image's entrypoint drops privileges itself (postgres' ``pg_isready``, every
    5 s for a few ms) — a process of the engine's, not of the service, caught now and then.
    """
    probe = " ".join(spec.healthcheck.test[1:]) if spec.healthcheck.test[0] == "CMD" else None
    # pid first: docker top needs it. Rows below the header: "<pid> <uid> <argv joined>".
    rows = docker("top", spec.container_name, "-eo", "pid,uid,args").stdout.splitlines()[1:]
    fields = [row.split(None, 2) for row in rows if row.strip()]
    return sorted(
        {
            found[1]
            for found in fields
            if len(found) >= 2 and (found[2] if len(found) == 3 else "") != probe
        }
    )


def test_no_process_user_can_write_outside_the_writable_paths(depot: TierDepot) -> None:
    for spec in depot.services:
        container = spec.container_name
        for uid in process_uids(spec):
            for path in ("/depot-probe", "/etc/depot-probe", "/usr/depot-probe"):
                wrote = depot.exec(container, "sh", "-c", f"echo x > {path}", user=uid)
                assert wrote.returncode != 0, f"{spec.name}: user {uid} wrote {path}"
            if spec.writable_root is None:
                assert "Read-only file system" in wrote.stderr, (spec.name, wrote.stderr)
        for path in spec.tmpfs:
            # The control: the declared paths are writable mounts, so the refusals above are
            # the root file system's and the users', not a shell that cannot write at all.
            wrote = depot.exec(container, "sh", "-c", f"echo x > {path}/depot-probe", user="0")
            assert wrote.returncode == 0, (spec.name, path, wrote.stderr)


def test_tmp_is_writable_scratch_space_for_the_service(depot: TierDepot) -> None:
    for spec in depot.services:
        if "/tmp" in spec.tmpfs:
            for uid in process_uids(spec):
                wrote = depot.exec(spec.container_name, "sh", "-c", "echo x > /tmp/p$$", user=uid)
                assert wrote.returncode == 0, (spec.name, uid, wrote.stderr)


def test_a_read_only_root_refuses_even_root(depot: TierDepot) -> None:
    for spec in depot.services:
        if spec.writable_root is None:
            wrote = depot.exec(spec.container_name, "sh", "-c", "echo x > /depot-probe", user="0")
            assert "Read-only file system" in wrote.stderr, (spec.name, wrote.stderr)


def test_tmp_is_not_executable(depot: TierDepot) -> None:
    with_tmp = [spec for spec in depot.services if "/tmp" in spec.tmpfs]
    assert with_tmp, "no container with a /tmp tmpfs"
    for spec in with_tmp:
        ran = depot.exec(
            spec.container_name,
            "sh",
            "-c",
            "cp /bin/sh /tmp/depot-sh && chmod 0755 /tmp/depot-sh && /tmp/depot-sh -c true",
        )
        assert ran.returncode != 0, spec.name
        assert "Permission denied" in ran.stderr, (spec.name, ran.stderr)


def test_every_process_runs_as_the_user_the_catalogue_expects(depot: TierDepot) -> None:
    for spec in depot.services:
        uids = process_uids(spec)
        if spec.user is not None:
            assert uids == [spec.user.split(":")[0]], spec.name
        elif spec.secret_files:
            # postgres and grafana: the user their password file is given to, never root
            assert uids == [str(spec.secret_files[0].owner)], spec.name
        else:
            # nginx: the master as root (it binds and drops), every worker as another user
            assert "0" in uids, (spec.name, uids)
            assert len(uids) == 2, (spec.name, uids)
