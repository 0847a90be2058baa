"""The depot's networks; the database network has no route outside Docker."""

from __future__ import annotations

from collections.abc import Iterable
from typing import get_args

import pulumi
import pulumi_docker as docker

from depot.catalog import DATABASE_NETWORK, DEPOT_NETWORK, NetworkName


class DepotNetworks(pulumi.ComponentResource):
    """``depot-network`` for the services, ``database-network`` (internal) for postgres, and
    ``backup-network`` for the backup service alone: its way to the targets off the host.

    Only the networks an enabled service joins are created (``used``): a stack without backups
    has no ``backup-network``. On one host they are bridges; on a Swarm, overlays spanning its
    nodes. ``depot-network`` is then attachable, so an operator's one-off container (a probe, a
    migration) can join it; the database and backup networks never are.
    """

    networks: dict[NetworkName, docker.Network]

    def __init__(
        self,
        name: str,
        *,
        used: Iterable[NetworkName] = (DEPOT_NETWORK, DATABASE_NETWORK),
        overlay: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("depot:network:Networks", name, None, opts)
        # Fixed names: a replacement must delete the old network before creating the new one.
        child = pulumi.ResourceOptions(parent=self, delete_before_replace=True)
        wanted = set(used)
        self.networks = {
            network: docker.Network(
                network,
                name=network,
                driver="overlay" if overlay else "bridge",
                internal=network == DATABASE_NETWORK,
                attachable=True if overlay and network == DEPOT_NETWORK else None,
                opts=child,
            )
            for network in get_args(NetworkName)
            if network in wanted
        }
        self.register_outputs({name: net.name for name, net in self.networks.items()})
