"""The depot's persistent data: postgres' named volume, which no ``up`` or ``destroy`` may lose."""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from depot.catalog import POSTGRES_DATA_VOLUME


class DepotData(pulumi.ComponentResource):
    """The ``postgres-data`` volume: retained on delete always, protected where asked."""

    volume: docker.Volume

    def __init__(
        self, name: str, *, protect: bool, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("depot:data:Data", name, None, opts)
        self.volume = docker.Volume(
            POSTGRES_DATA_VOLUME,
            name=POSTGRES_DATA_VOLUME,
            opts=pulumi.ResourceOptions(
                parent=self,
                # protect: `pulumi destroy` and replacements refuse to touch it.
                protect=protect,
                # retain: if it is ever deleted from the stack, Docker keeps the volume.
                retain_on_delete=True,
                delete_before_replace=True,
            ),
        )
        self.register_outputs({"volume": self.volume.name})
