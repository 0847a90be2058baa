"""The depot's two bridge networks; the database network has no route outside Docker."""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from depot.catalog import DATABASE_NETWORK, DEPOT_NETWORK, NetworkName


class DepotNetworks(pulumi.ComponentResource):
    """``depot-network`` for the services, ``database-network`` (internal) for postgres."""

    networks: dict[NetworkName, docker.Network]

    def __init__(self, name: str, *, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("depot:network:Networks", name, None, opts)
        # Fixed names: a replacement must delete the old network before creating the new one.
        child = pulumi.ResourceOptions(parent=self, delete_before_replace=True)
        self.networks = {
            network: docker.Network(
                network,
                name=network,
                driver="bridge",
                internal=network == DATABASE_NETWORK,
                opts=child,
            )
            for network in (DEPOT_NETWORK, DATABASE_NETWORK)
        }
        self.register_outputs({name: net.name for name, net in self.networks.items()})
