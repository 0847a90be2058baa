"""The depot's persistent data: postgres' volume and its backups', which no ``up`` or
``destroy`` may lose."""

from __future__ import annotations

from collections.abc import Iterable

import pulumi
import pulumi_docker as docker

from depot.catalog import POSTGRES_BACKUPS_VOLUME, POSTGRES_DATA_VOLUME, VolumeName


class DepotData(pulumi.ComponentResource):
    """The named volumes the enabled services hold data in: retained on delete always,
    protected where asked.

    ``postgres-data`` always; ``postgres-backups`` when the stack runs backups (the recent
    dumps on the host are data too: on the day they are needed, they are all there is).
    ``adopt``: ``postgres-data`` exists already (``depot:data.adoptVolume``) and is imported.
    """

    volumes: dict[VolumeName, docker.Volume]

    def __init__(
        self,
        name: str,
        *,
        protect: bool,
        adopt: bool = False,
        used: Iterable[VolumeName] = (POSTGRES_DATA_VOLUME,),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("depot:data:Data", name, None, opts)
        self.volumes = {
            volume: docker.Volume(
                volume,
                name=volume,
                opts=pulumi.ResourceOptions(
                    parent=self,
                    # protect: `pulumi destroy` and replacements refuse to touch it.
                    protect=protect,
                    # retain: if it is ever deleted from the stack, Docker keeps the volume.
                    retain_on_delete=True,
                    delete_before_replace=True,
                    # A volume `depot migrate` made and filled: taken over, never created (an
                    # import of a volume that is not there fails instead of starting empty).
                    import_=volume if adopt and volume == POSTGRES_DATA_VOLUME else None,
                ),
            )
            for volume in dict.fromkeys(used)
        }
        outputs = {"volume": self.volumes[POSTGRES_DATA_VOLUME].name}
        if POSTGRES_BACKUPS_VOLUME in self.volumes:
            outputs["backups"] = self.volumes[POSTGRES_BACKUPS_VOLUME].name
        self.register_outputs(outputs)

    @property
    def volume(self) -> docker.Volume:
        """``postgres-data``."""
        return self.volumes[POSTGRES_DATA_VOLUME]
