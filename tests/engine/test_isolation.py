"""The networks as the engine built them: postgres only on the internal database network."""

from __future__ import annotations

import json
import socket
import urllib.request
from urllib.parse import urlsplit

import pytest

from depot.catalog import DATABASE_NETWORK, DEPOT_NETWORK
from depot.model import deployments
from tests.engine.harness import TierDepot, docker

pytestmark = pytest.mark.engine

CONNECT_SECONDS = "2"  # every probe below is one connection attempt, bounded by this


def reaches(depot: TierDepot, container: str, host: str, port: int) -> bool:
    """Whether ``container`` opens a TCP connection to ``host:port`` (one bounded attempt)."""
    probe = depot.exec(container, "nc", "-w", CONNECT_SECONDS, host, str(port), timeout=10)
    return probe.returncode == 0


def network(name: str) -> dict[str, object]:
    inspected: list[dict[str, object]] = json.loads(docker("network", "inspect", name).stdout)
    return inspected[0]


def address_on(depot: TierDepot, container: str, network_name: str) -> str:
    networks = depot.inspect(container)["NetworkSettings"]["Networks"]
    address: str = networks[network_name]["IPAddress"]
    return address


def test_postgres_is_unreachable_from_the_depot_network(depot: TierDepot) -> None:
    postgres_ip = address_on(depot, "depot-postgres", DATABASE_NETWORK)
    assert not reaches(depot, "depot-discovery", "postgres", 5432)
    assert not reaches(depot, "depot-discovery", postgres_ip, 5432)


def test_dispatch_reaches_postgres_by_its_alias(depot: TierDepot) -> None:
    assert reaches(depot, "depot-dispatch", "postgres", 5432)


def test_the_database_network_is_internal(depot: TierDepot) -> None:
    assert network(DATABASE_NETWORK)["Internal"] is True
    assert network(DEPOT_NETWORK)["Internal"] is False


def test_nothing_is_forwarded_out_of_the_database_network(depot: TierDepot) -> None:
    # Docker still gives an internal network's containers a default route; its firewall drops
    # what they send out of the subnet. The proof is a connection to discovery's address on the
    # depot network: dropped from postgres' position, open from grafana's (the control). What
    # this cannot show: the Docker host's own addresses stay reachable (README "Engine tier").
    discovery = address_on(depot, "depot-discovery", DEPOT_NETWORK)
    assert _connects_from(depot, "depot-grafana", discovery, 4860)
    assert not _connects_from(depot, "depot-postgres", discovery, 4860)


def _connects_from(depot: TierDepot, container: str, host: str, port: int) -> bool:
    """One bounded TCP connection from ``container``'s network namespace."""
    probe = depot.run_helper(
        depot.images["rust-service"],
        "-c",
        f"nc -w {CONNECT_SECONDS} {host} {port} < /dev/null",
        options=["--network", f"container:{container}", "--entrypoint", "sh"],
        timeout=20,
    )
    return probe.returncode == 0


def test_published_ports_listen_only_on_the_stacks_address(depot: TierDepot) -> None:
    published = [d for d in deployments(depot.settings) if d.published]
    assert published, "the stack publishes nothing"
    for deployment in published:
        port, container = deployment.published, deployment.spec.container_name
        address = deployment.publish_address
        assert port is not None
        bindings = depot.inspect(container)["NetworkSettings"]["Ports"][f"{port.target}/tcp"]
        assert bindings == [{"HostIp": address, "HostPort": str(port.published)}], container
        # The healthcheck's own URL, from the host; traffic only through 127.0.0.1, which every
        # address published here includes.
        path = urlsplit(deployment.spec.healthcheck.test[-1]).path
        url = f"http://127.0.0.1:{port.published}{path}"
        with urllib.request.urlopen(url, timeout=3) as answer:
            assert answer.status == 200, url
        if address == "127.0.0.1":
            assert not _listens(_host_address_on_depot_network(), port.published), container


def _host_address_on_depot_network() -> str:
    """An address of this host that is not loopback: its end of the depot network's bridge."""
    gateway: str = network(DEPOT_NETWORK)["IPAM"]["Config"][0]["Gateway"]  # type: ignore[index]
    return gateway


def _listens(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False
