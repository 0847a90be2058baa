"""Where each container's image comes from: built here, or pulled at a pinned version.

Built images use ``pulumi_docker_build.Image`` (BuildKit; the provider the Pulumi maintainers
recommend over ``docker.Image``), loaded into the target daemon. Its ``digest`` output is the
manifest digest, which the daemon cannot run (pulumi-docker-build#260), so a
``docker.RemoteImage`` looks the loaded tag up and yields the image ID. The ID changes with every
rebuild, and the container takes it as ``image``: a rebuilt image replaces its container.
"""

from __future__ import annotations

import pulumi
import pulumi_docker as docker
import pulumi_docker_build as docker_build

from depot.catalog import BuiltImage
from depot.model import DOCKERFILE, ServiceDeployment


class ServiceImage(pulumi.ComponentResource):
    """The image one service runs; ``image_id`` is what its container refers to."""

    image_id: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        deployment: ServiceDeployment,
        docker_provider: docker.Provider,
        build_provider: docker_build.Provider,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("depot:images:ServiceImage", name, None, opts)
        pull_options = pulumi.ResourceOptions(parent=self, provider=docker_provider)
        if isinstance(deployment.spec.image, BuiltImage):
            build = docker_build.Image(
                f"{name}-build",
                tags=[deployment.local_tag],
                context=docker_build.BuildContextArgs(location=deployment.build_context or ""),
                dockerfile=docker_build.DockerfileArgs(location=str(DOCKERFILE)),
                build_args={"BINARY": deployment.spec.image.binary},
                load=True,
                push=False,
                # Builds are slow and touch the daemon: previews (e.g. on pull requests)
                # build only when the stack asks for it.
                build_on_preview=deployment.build_on_preview,
                opts=pulumi.ResourceOptions(parent=self, provider=build_provider),
            )
            image = docker.RemoteImage(
                name,
                name=build.ref,
                pull_triggers=[build.digest],
                keep_locally=True,  # removing it would break a rollback to this build
                opts=pull_options,
            )
        else:
            image = docker.RemoteImage(
                name,
                name=deployment.image_reference or "",
                keep_locally=True,
                opts=pull_options,
            )
        self.image_id = image.image_id
        self.register_outputs({"image_id": self.image_id})
