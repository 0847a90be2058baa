"""Images through a registry: dev builds locally; prod pushes by commit and runs the digest."""

from __future__ import annotations

from typing import Any

import pytest

from depot.config import ConfigError, load_settings
from depot.config import loader as config_loader
from depot.recording import Recording, Secret
from depot.resource_types import BUILD, REMOTE_IMAGE
from depot.review.diff import diff_plans
from depot.review.plan import plan_from
from tests.conftest import containers, run_stack, stack_config, walk

COMMIT = "0123456789abcdef0123456789abcdef01234567"
DIGEST = "sha256:" + "d" * 64
OTHER_DIGEST = "sha256:" + "e" * 64
REGISTRY = "registry.example.com"
BUILT = ("discovery", "dispatch", "splat-worker", "rtk-base")


def prod(overrides: dict[str, Any] | None = None, **kwargs: Any) -> Recording:
    return run_stack("prod", {"depot:release": {"commit": COMMIT}, **(overrides or {})}, **kwargs)


def test_dev_pushes_nothing_and_holds_no_registry_credentials(
    shipped: dict[str, Recording],
) -> None:
    dev = shipped["dev"]
    for build in dev.of_type(BUILD):
        assert build.inputs["push"] is False
        assert "registries" not in build.inputs
        assert "cacheTo" not in build.inputs
    assert "registryAuth" not in dev.named("docker", "pulumi:providers:docker").inputs


def test_prod_pushes_each_build_tagged_with_the_commit() -> None:
    for build in prod().of_type(BUILD):
        service = build.name.removesuffix("-image-build")
        assert build.inputs["push"] is True
        assert build.inputs["tags"] == [f"{REGISTRY}/depot-{service}:{COMMIT}"]
        assert "load" not in build.inputs


def test_a_release_version_is_tagged_too() -> None:
    build = prod({"depot:release": {"commit": COMMIT, "version": "1.4.0"}}).named(
        "discovery-image-build"
    )
    assert build.inputs["tags"] == [
        f"{REGISTRY}/depot-discovery:{COMMIT}",
        f"{REGISTRY}/depot-discovery:1.4.0",
    ]


def test_pushed_builds_share_a_registry_layer_cache() -> None:
    build = prod().named("dispatch-image-build")
    cache = f"{REGISTRY}/depot-dispatch:buildcache"
    assert build.inputs["cacheFrom"] == [{"registry": {"ref": cache}}]
    [cache_to] = build.inputs["cacheTo"]
    assert (cache_to["registry"]["ref"], cache_to["registry"]["mode"]) == (cache, "max")


def test_prod_containers_run_the_pushed_image_by_digest() -> None:
    recording = prod()
    for service in BUILT:
        build = recording.named(f"{service}-image-build")
        pull = recording.named(f"{service}-image", REMOTE_IMAGE)
        container = containers(recording)[service]
        assert build.urn in pull.property_dependencies["name"]
        assert pull.inputs["name"].startswith(f"{REGISTRY}/depot-{service}@sha256:")
        assert container.inputs["image"] == pull.inputs["name"]


def test_the_commit_comes_from_the_environment_when_not_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEPOT_RELEASE_COMMIT", "abcdef1")
    assert load_settings("prod", stack_config("prod")).release.commit == "abcdef1"


def test_the_commit_falls_back_to_this_checkouts_head(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEPOT_RELEASE_COMMIT", raising=False)
    monkeypatch.setattr(config_loader, "_checkout_commit", lambda: "fedcba9876543")
    assert load_settings("prod", stack_config("prod")).release.commit == "fedcba9876543"


def test_without_any_commit_the_stack_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEPOT_RELEASE_COMMIT", raising=False)
    monkeypatch.setattr(config_loader, "_checkout_commit", lambda: None)
    with pytest.raises(
        ConfigError,
        match=r"Pulumi\.prod\.yaml: depot:release\.commit: \(not set\) is required to tag "
        r"pushed images; set it, or DEPOT_RELEASE_COMMIT, or deploy from a git checkout",
    ):
        load_settings("prod", stack_config("prod"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"depot:release": {"commit": "main"}},
         r"depot:release\.commit: 'main' is not a git commit"),
        ({"depot:release": {"commit": COMMIT, "version": "latest"}},
         r"depot:release\.version: 'latest' is not a release version"),
        ({"depot:registry": {"address": "https://registry.example.com"}},
         r"depot:registry\.address: 'https://registry\.example\.com' is not a registry address"),
        ({"depot:images": {"discovery": f"{REGISTRY}/depot-discovery:{COMMIT}"}},
         r"depot:images: .* names discovery by tag only; our own images run by digest"),
    ],
)  # fmt: skip
def test_bad_registry_settings_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings("prod", stack_config("prod", overrides))


CANARY = "registry-canary-Kq81"


def test_registry_credentials_stay_secret() -> None:
    recording = prod(secrets={"depot:registryPassword": CANARY})
    for build in recording.of_type(BUILD):
        [registry] = build.inputs["registries"]
        assert registry["address"] == REGISTRY
        assert registry["username"] == "deploy"
        assert registry["password"] == Secret(CANARY)
    leaks = [
        r.name
        for r in recording.registrations
        for leaf, secret in walk(r.inputs)
        if not secret and isinstance(leaf, str) and CANARY in leaf
    ]
    assert leaks == []


def test_the_host_pulls_with_docker_login_never_a_configured_password() -> None:
    # Provider configuration is stored unencrypted (pulumi-docker#643): no password goes there.
    recording = prod(secrets={"depot:registryPassword": CANARY})
    provider = recording.named("docker", "pulumi:providers:docker")
    assert CANARY not in str(provider.inputs)
    assert REGISTRY in str(provider.inputs["registryAuth"])


def test_without_a_password_the_builders_own_login_pushes() -> None:
    for build in prod().of_type(BUILD):
        assert "registries" not in build.inputs


def test_images_ci_pushed_run_by_digest_and_are_not_built() -> None:
    reference = f"{REGISTRY}/depot-discovery@{DIGEST}"
    recording = prod({"depot:images": {"discovery": reference}})
    assert "discovery-image-build" not in {r.name for r in recording.of_type(BUILD)}
    assert recording.named("discovery-image", REMOTE_IMAGE).inputs["name"] == reference
    assert containers(recording)["discovery"].inputs["image"] == reference


def test_a_changed_digest_in_config_replaces_the_container() -> None:
    before = plan_from(
        prod({"depot:images": {"discovery": f"{REGISTRY}/depot-discovery@{DIGEST}"}})
    )
    after = plan_from(
        prod({"depot:images": {"discovery": f"{REGISTRY}/depot-discovery@{OTHER_DIGEST}"}})
    )
    changes = {
        c.after.name: c.replaces
        for c in diff_plans(before, after, base_label="a", head_label="b").changed
    }
    assert changes == {"discovery-image": True, "discovery-container": True}


def test_a_new_commit_with_the_same_content_never_replaces_a_container() -> None:
    before = plan_from(prod())
    after = plan_from(prod({"depot:release": {"commit": "1" * 40}}))
    diff = diff_plans(before, after, base_label="a", head_label="b")
    assert {c.after.type for c in diff.changed} == {BUILD}
    assert not diff.replacements


def test_changed_content_is_a_new_digest_and_replaces_the_container() -> None:
    before = plan_from(prod())
    contexts = {s: f"../{s}" for s in BUILT}
    after = plan_from(
        prod({"depot:build": {"contexts": {**contexts, "discovery": "../discovery-v2"}}})
    )
    diff = diff_plans(before, after, base_label="a", head_label="b")
    replaced = {c.after.name for c in diff.replacements}
    assert replaced == {"discovery-image", "discovery-container"}


def test_a_changed_tag_in_config_replaces_the_container() -> None:
    before = plan_from(prod({"depot:images": {"postgres": "postgres:17.2-alpine"}}))
    after = plan_from(prod({"depot:images": {"postgres": "postgres:17.3-alpine"}}))
    diff = diff_plans(before, after, base_label="a", head_label="b")
    changes = {c.after.name: c.replaces for c in diff.changed}
    # The backup image is built FROM the stack's postgres image (pg_dump of the server's own
    # version): a new postgres rebuilds it, and its container runs the new build.
    assert changes == {
        "postgres-image": True,
        "postgres-container": True,
        "backup-image-build": False,
        "backup-image": True,
        "backup-container": True,
    }
