"""The catalog is the one place that says what a service is: the types and settings follow it."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest
from pydantic import SecretStr

import depot.config as config_package
import depot.review.plan as plan_module
from depot.catalog import SECRETS, SERVICES, BindSetting, BuiltImage, SecretName
from depot.cli import main
from depot.config import loader
from depot.config.loader import RawConfig, load_settings
from depot.config.settings import SECRET_KEYS, DepotSettings
from depot.config.stack_file import stack_config
from depot.model import bind_source
from depot.paths import PROJECT_ROOT, ProjectPath
from depot.types import ServiceName


def test_every_service_name_is_a_catalog_entry_and_back() -> None:
    assert SERVICES, "an empty catalog would pass the comparison below"
    assert [spec.name for spec in SERVICES] == list(dict.fromkeys(s.name for s in SERVICES))
    assert {spec.name for spec in SERVICES} == set(get_args(ServiceName))


def test_every_secret_a_service_reads_is_held_by_the_stack() -> None:
    read = {f.secret for spec in SERVICES for f in spec.secret_files}
    read |= {env.secret for spec in SERVICES for env in spec.secret_env}
    assert read, "no service reads a secret: the check below would pass on nothing"
    assert read == {secret.name for secret in SECRETS} == set(get_args(SecretName))


def test_every_secret_has_a_secret_setting() -> None:
    fields = {field.alias: field for field in DepotSettings.model_fields.values()}
    for secret in SECRETS:
        assert secret.setting in SECRET_KEYS
        assert SecretStr in get_args(fields[secret.setting].annotation)


def test_a_given_secret_is_found_by_its_setting() -> None:
    raw = stack_config("dev")
    settings = load_settings(
        "dev",
        RawConfig(
            {**raw.values, "depot:grafanaAdminPassword": "given"},
            raw.secret_keys | {"depot:grafanaAdminPassword"},
        ),
    )
    given = settings.secret("grafanaAdminPassword")
    assert given is not None
    assert given.get_secret_value() == "given"
    assert settings.secret("databasePassword") is None


def test_every_bind_a_service_declares_has_a_setting_for_its_host_path() -> None:
    declared = {bind.setting for spec in SERVICES for bind in spec.binds}
    assert declared == set(get_args(BindSetting))
    settings = load_settings("prod", stack_config("prod"))
    assert bind_source(settings, "console.distPath") == "/srv/depot/console/dist"
    assert bind_source(settings, "console.sessionsPath") == "/data/sessions"


def test_only_built_services_take_a_build_context() -> None:
    built = {spec.name for spec in SERVICES if isinstance(spec.image, BuiltImage)}
    assert built == {"discovery", "dispatch", "splat-worker", "rtk-base"}
    settings = load_settings("prod", stack_config("prod"))
    assert set(settings.build.contexts) == built


def test_a_project_path_knows_both_of_its_forms() -> None:
    beside = ProjectPath("../console/dist")
    assert beside.host == str((PROJECT_ROOT.parent / "console" / "dist").resolve())
    assert beside.relative == "../console/dist"
    inside = ProjectPath("docker")
    assert (inside.host, inside.relative) == (str(PROJECT_ROOT / "docker"), "./docker")
    absolute = ProjectPath("/srv/depot/console/dist")
    assert absolute.host == absolute.relative == "/srv/depot/console/dist"
    elsewhere = ProjectPath("x", root=Path("/a/b"))
    assert (elsewhere.host, elsewhere.relative) == ("/a/b/x", "./x")


@pytest.mark.parametrize(
    "command",
    [
        ["check", "--stack", "prod"],
        ["plan", "--stack", "dev", "--profile", "gpu"],
        ["graph", "--stack", "prod"],
        ["compose", "--stack", "dev", "--profile", "rtk"],
    ],
)
def test_a_command_validates_the_settings_once(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[str] = []
    real = loader.load_settings

    def counted(stack: str, raw: RawConfig) -> DepotSettings:
        calls.append(stack)
        return real(stack, raw)

    for module in (loader, plan_module, config_package):
        monkeypatch.setattr(module, "load_settings", counted)
    assert main(command) in (0, 1)
    capsys.readouterr()
    assert len(calls) == 1
