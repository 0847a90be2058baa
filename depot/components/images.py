"""Where each container's image comes from, per stack.

- **Loaded** (dev): ``pulumi_docker_build.Image`` (BuildKit; the provider the Pulumi maintainers
  recommend over ``docker.Image``) builds and loads into the stack's daemon. Its ``digest`` is
  the manifest digest, which a daemon cannot run (pulumi-docker-build#260), so a
  ``docker.RemoteImage`` looks the loaded tag up and the container runs the image ID: a rebuilt
  image replaces its container.
- **Pushed** (prod with ``depot:registry``): the build runs where ``pulumi up`` runs, pushes
  ``<registry>/depot-<service>:<commit>`` (and the release version) with a registry layer
  cache, and the host pulls and runs ``<registry>/depot-<service>@<digest>``: a changed digest
  replaces the container, an unchanged one never does — whatever the tags say.
- **Pinned** (``depot:images``): a third-party image at its pinned version, or one of ours that
  CI already pushed, by digest; nothing is built.
- **Pulled by Swarm nodes** (``depot:runtime: swarm``): pinned or pushed as above, always by
  digest, and no ``RemoteImage``: each node that runs a task pulls the image itself.

Ours are the Rust services (``docker/rust-service.Dockerfile`` on a crate) and the backup service
(``docker/backup.Dockerfile`` on the stack's own postgres image): built, loaded or pushed alike.
"""

from __future__ import annotations

import pulumi
import pulumi_docker as docker
import pulumi_docker_build as docker_build

from depot.model import RegistryPush, ServiceDeployment


class ServiceImage(pulumi.ComponentResource):
    """The image one service runs; ``runs`` is the container's ``image``."""

    runs: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        deployment: ServiceDeployment,
        docker_provider: docker.Provider,
        build_provider: docker_build.Provider,
        registry_password: pulumi.Output[str] | None = None,
        pulled_by_nodes: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("depot:images:ServiceImage", name, None, opts)
        on_host = pulumi.ResourceOptions(parent=self, provider=docker_provider)
        if pulled_by_nodes:
            self.runs = self._for_nodes(name, deployment, build_provider, registry_password)
        elif deployment.build_context is None:
            reference = deployment.image_reference or ""
            image = docker.RemoteImage(name, name=reference, keep_locally=True, opts=on_host)
            # Ours run by the digest CI pushed; third-party ones by the image ID of their pin.
            self.runs = image.name if deployment.from_registry else image.image_id
        else:
            build = docker_build.Image(
                f"{name}-build",
                args=image_build_args(deployment, registry_password),
                opts=pulumi.ResourceOptions(parent=self, provider=build_provider),
            )
            if deployment.push is None:
                image = docker.RemoteImage(
                    name,
                    name=build.ref,
                    pull_triggers=[build.digest],
                    keep_locally=True,  # removing it would break a rollback to this build
                    opts=on_host,
                )
                self.runs = image.image_id
            else:
                by_digest = pulumi.Output.concat(deployment.push.repository, "@", build.digest)
                image = docker.RemoteImage(name, name=by_digest, keep_locally=True, opts=on_host)
                self.runs = image.name
        self.register_outputs({"runs": self.runs})

    def _for_nodes(
        self,
        name: str,
        deployment: ServiceDeployment,
        build_provider: docker_build.Provider,
        registry_password: pulumi.Output[str] | None,
    ) -> pulumi.Output[str]:
        """A reference by digest that every Swarm node pulls itself; nothing is pulled here.

        The settings guarantee a digest: a pinned ``depot:images`` one, or a build pushed to
        ``depot:registry`` (a swarm stack never loads a build into one daemon).
        """
        if deployment.build_context is None:
            return pulumi.Output.from_input(deployment.image_reference or "")
        if deployment.push is None:
            raise TypeError(f"{deployment.name}: a swarm stack runs only pushed builds")
        build = docker_build.Image(
            f"{name}-build",
            args=image_build_args(deployment, registry_password),
            opts=pulumi.ResourceOptions(parent=self, provider=build_provider),
        )
        return pulumi.Output.concat(deployment.push.repository, "@", build.digest)


def image_build_args(
    deployment: ServiceDeployment, registry_password: pulumi.Output[str] | None
) -> docker_build.ImageArgs:
    """The build of one service: loaded into the stack's daemon, or pushed with a cache."""
    if deployment.build_context is None:
        raise TypeError(f"{deployment.name} is not built by this stack")
    context = docker_build.BuildContextArgs(location=deployment.build_context.relative)
    dockerfile = docker_build.DockerfileArgs(location=deployment.dockerfile.relative)
    build_args = dict(deployment.build_args)
    # Builds are slow and touch a daemon: previews (e.g. on pull requests) build only when
    # the stack asks for it.
    on_preview = deployment.build_on_preview
    push = deployment.push
    if push is None:
        return docker_build.ImageArgs(
            tags=[deployment.local_tag],
            load=True,
            push=False,
            context=context,
            dockerfile=dockerfile,
            build_args=build_args,
            build_on_preview=on_preview,
        )
    return docker_build.ImageArgs(
        tags=push.references,
        push=True,
        registries=_registries(push, registry_password),
        cache_from=[
            docker_build.CacheFromArgs(registry=docker_build.CacheFromRegistryArgs(ref=push.cache))
        ],
        cache_to=[
            docker_build.CacheToArgs(
                registry=docker_build.CacheToRegistryArgs(
                    ref=push.cache, mode=docker_build.CacheMode.MAX
                )
            )
        ],
        context=context,
        dockerfile=dockerfile,
        build_args=build_args,
        build_on_preview=on_preview,
    )


def _registries(
    push: RegistryPush, password: pulumi.Output[str] | None
) -> list[docker_build.RegistryArgs] | None:
    """Credentials for the push, from secret config; None: the builder's own `docker login`.

    They go to this resource as a secret input, which the engine encrypts in state. The Docker
    provider's ``registry_auth`` is not used for them: provider configuration is stored
    unencrypted (pulumi-docker#643).
    """
    if push.username is None or password is None:
        return None
    return [
        docker_build.RegistryArgs(
            address=push.address, username=push.username, password=pulumi.Output.secret(password)
        )
    ]
