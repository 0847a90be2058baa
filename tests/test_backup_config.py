"""depot:backup and depot:backupRcloneConfig: what a stack may set, and one clear error otherwise.

Each bad value is refused before anything is registered, by a message that names the stack file,
the key, the value (never a secret's, never a credential's) and what is allowed.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from depot.catalog import BACKUP
from depot.config import ConfigError, RawConfig, load_settings
from depot.config.settings import UNDECRYPTED, BackupSettings, rclone_sections
from depot.config.stack_file import parse_stack_file
from depot.model import image_for
from depot.program import deploy
from depot.recording import Recording, record
from depot.types import parse_rclone_target
from tests.conftest import PROJECT_DIR, stack_config

# A real age public key (age-keygen, its private key discarded) and the same with one character
# changed: only the bech32 checksum tells them apart.
RECIPIENT = "age1xk72a7fvfupmssj73newmhv3pz0exes6n7tzwqytn4aepy3sjecq4q2jpc"
MISTYPED = "age1xk72a7fvfupmssj73newmhv3pz0exes6n7tzwqytn4aepy3sjecq4q2jpq"
OTHER_RECIPIENT = "age1967cg380lwgpdxsnrfgg9zznx9nhak5dnzk7g5uk5kwny3vdfecqza320m"
CANARY = "Canary-rclone-5e1c-do-not-print"
RCLONE_CONFIG = f"[offsite]\ntype = s3\nprovider = AWS\nsecret_access_key = {CANARY}\n"
S3 = ":s3,provider=AWS,env_auth=true,region=eu-central-1:depot-backups/prod"


def backup(**settings: Any) -> dict[str, Any]:
    """A ``depot:backup`` override: prod's own settings with ``settings`` on top."""
    shipped: dict[str, Any] = {
        "enabled": True,
        "schedule": "24h",
        "retention": {"daily": 7, "weekly": 4, "monthly": 6, "local": 2},
        "recipients": [RECIPIENT],
        "targets": [S3],
    }
    return {"depot:backup": {**shipped, **settings}}


def with_rclone(config: RawConfig, text: str = RCLONE_CONFIG) -> RawConfig:
    key = "depot:backupRcloneConfig"
    return RawConfig({**config.values, key: text}, config.secret_keys | {key}, config.positions)


def refused(config: RawConfig, stack: str = "prod") -> str:
    """The message ``config`` is refused with; nothing may be registered first."""
    recording = Recording(stack=stack)
    with pytest.raises(ConfigError) as error:
        record(deploy, stack=stack, config=config, into=recording)
    assert recording.registrations == []
    message = str(error.value)
    assert CANARY not in message
    return message


# --- what is accepted --------------------------------------------------------------------------


def test_the_shipped_stacks_back_up_as_the_contract_says() -> None:
    dev = load_settings("dev", stack_config("dev")).backup
    assert (dev.enabled, dev.schedule, dev.recipients, dev.targets) == (True, 86400, (), ())
    assert (dev.retention.daily, dev.retention.weekly, dev.retention.local) == (7, 0, 7)
    for stack in ("prod", "cluster"):
        shipped = load_settings(stack, stack_config(stack)).backup
        assert shipped.enabled
        assert shipped.schedule == 86400
        assert shipped.retention.model_dump() == {
            "hourly": 0,
            "daily": 7,
            "weekly": 4,
            "monthly": 6,
            "local": 2,
        }
        assert shipped.recipients == (RECIPIENT,)
        [target] = shipped.targets
        parsed = parse_rclone_target(target)
        assert parsed is not None
        assert parsed.backend == "s3"
        assert ("env_auth", "true") in parsed.parameters


def test_the_shipped_recipient_is_marked_as_an_example_to_replace() -> None:
    for stack in ("prod", "cluster"):
        text = (PROJECT_DIR / f"Pulumi.{stack}.yaml").read_text()
        assert RECIPIENT in text
        assert "REPLACE this recipient" in text
        assert "AGE-SECRET-KEY" not in text


def test_backups_are_off_unless_a_stack_turns_them_on() -> None:
    settings = BackupSettings()
    assert not settings.enabled
    assert settings.schedule == 86400
    assert (settings.retention.daily, settings.retention.weekly) == (7, 4)
    assert settings.retention.local == 2


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("15m", 900), ("59m", 3540), ("1h", 3600), ("6h", 21600), ("168h", 604800), ("7d", 604800)],
)
def test_a_schedule_is_an_interval_in_minutes_hours_or_days(written: str, seconds: int) -> None:
    config = stack_config("prod", backup(schedule=written))
    assert load_settings("prod", config).backup.schedule == seconds


def test_a_retention_count_not_written_is_zero_but_local_keeps_two() -> None:
    config = stack_config("prod", backup(retention={"hourly": 24}))
    retention = load_settings("prod", config).backup.retention
    assert retention.model_dump() == {
        "hourly": 24,
        "daily": 0,
        "weekly": 0,
        "monthly": 0,
        "local": 2,
    }


def test_switched_off_a_stack_keeps_its_backup_settings() -> None:
    config = stack_config("prod", backup(enabled=False))
    settings = load_settings("prod", config)
    assert not settings.backup.enabled
    assert settings.backup.targets == (S3,)


def test_a_named_remote_is_defined_by_the_secret_rclone_config() -> None:
    config = with_rclone(stack_config("prod", backup(targets=["offsite:depot/prod", S3])))
    settings = load_settings("prod", config)
    assert settings.backup.targets == ("offsite:depot/prod", S3)
    secret = settings.secret("backupRcloneConfig")
    assert secret is not None
    assert CANARY not in repr(settings)


def test_a_secure_rclone_config_only_the_cli_can_read_is_not_second_guessed() -> None:
    undecrypted = f"{UNDECRYPTED} 0123456789abcdef"
    config = with_rclone(stack_config("prod", backup(targets=["offsite:x"])), undecrypted)
    assert load_settings("prod", config).backup.targets == ("offsite:x",)


def test_sections_of_an_rclone_config_are_its_remotes() -> None:
    text = "# comment\n[offsite]\ntype = sftp\n\n [b2 backups] \nkey = x\n[]\n"
    assert rclone_sections(text) == {"offsite", "b2 backups"}


@pytest.mark.parametrize(
    ("target", "remote", "backend", "parameters", "path"),
    [
        ("offsite:depot/prod", "offsite", None, (), "depot/prod"),
        ("b2:", "b2", None, (), ""),
        (":sftp,host=backup.example.com,user=depot:/srv/depot", None, "sftp",
         (("host", "backup.example.com"), ("user", "depot")), "/srv/depot"),
        (":s3,endpoint='https://s3.example.com:9000',env_auth:b/p", None, "s3",
         (("endpoint", "https://s3.example.com:9000"), ("env_auth", "true")), "b/p"),
        (':webdav,url="http://h/""q""":dav', None, "webdav", (("url", 'http://h/"q"'),), "dav"),
    ],
)  # fmt: skip
def test_a_target_is_read_as_rclone_reads_a_remote(
    target: str,
    remote: str | None,
    backend: str | None,
    parameters: tuple[tuple[str, str], ...],
    path: str,
) -> None:
    parsed = parse_rclone_target(target)
    assert parsed is not None
    assert (parsed.remote, parsed.backend, parsed.parameters, parsed.path) == (
        remote,
        backend,
        parameters,
        path,
    )


# --- what is refused ---------------------------------------------------------------------------

BAD_BACKUPS: list[tuple[str, dict[str, Any], str]] = [
    ("schedule without a unit", backup(schedule="24"),
     r"^Pulumi\.prod\.yaml: depot:backup\.schedule: '24' is not a backup interval; use 15m to "
     r"59m, 1h to 168h or 1d to 7d, e\.g\. 24h$"),
    ("schedule too often", backup(schedule="5m"), r"depot:backup\.schedule: '5m' is not a backup"),
    ("schedule too rare", backup(schedule="8d"), r"depot:backup\.schedule: '8d' is not a backup"),
    ("schedule a bare number", backup(schedule=86400),
     r"depot:backup\.schedule: 86400 is not a backup interval"),
    ("negative count", backup(retention={"daily": -1}),
     r"^Pulumi\.prod\.yaml: depot:backup\.retention\.daily: -1 should be greater than or equal "
     r"to 0$"),
    ("count beyond reason", backup(retention={"monthly": 1001}),
     r"depot:backup\.retention\.monthly: 1001 should be less than or equal to 1000"),
    ("nothing kept", backup(retention={"local": 3}),
     r"^Pulumi\.prod\.yaml: depot:backup\.retention: \{\"local\": 3\} keeps no backup; set at "
     r"least one of hourly, daily, weekly or monthly to 1 or more$"),
    ("no local copy", backup(retention={"daily": 7, "local": 0}),
     r"depot:backup\.retention\.local: 0 should be greater than or equal to 1"),
    ("unknown retention key", backup(retention={"daily": 7, "yearly": 1}),
     r"depot:backup\.retention\.yearly: is not a known setting; known keys here: daily, "
     r"hourly, local, monthly, weekly$"),
    ("misspelt key", {"depot:backup": {"enabled": True, "target": [S3]}},
     r"depot:backup\.target: is not a known setting \(did you mean targets\?\)"),
    ("not an age key", backup(recipients=["ssh-ed25519 AAAA"]),
     r"^Pulumi\.prod\.yaml: depot:backup\.recipients\[0\]: 'ssh-ed25519 AAAA' is not an age "
     r"public key; use the 'age1…' line age-keygen prints"),
    ("a mistyped age key", backup(recipients=[RECIPIENT, MISTYPED]),
     r"depot:backup\.recipients\[1\]: 'age1xk72.*' is not an age public key; .*its checksum "
     r"intact"),
    ("an age private key", backup(recipients=["AGE-SECRET-KEY-1QQQ"]),
     r"depot:backup\.recipients\[0\]: 'AGE-SECRET-KEY-1QQQ' is not an age public key"),
    ("a recipient twice", backup(recipients=[RECIPIENT, OTHER_RECIPIENT, RECIPIENT]),
     r"^Pulumi\.prod\.yaml: depot:backup\.recipients\[2\]: 'age1xk72.*' is listed twice; list "
     r"each once$"),
    ("recipients not a list", backup(recipients=RECIPIENT),
     r"depot:backup\.recipients: 'age1.*' should be a valid tuple; expected a list of age "
     r"public keys"),
    ("targets without recipients", backup(recipients=[]),
     r"^Pulumi\.prod\.yaml: depot:backup\.targets: \[withheld\] would receive unencrypted "
     r"dumps: an unencrypted dump never leaves the host; set depot:backup\.recipients"),
    ("a local path", backup(targets=["/mnt/nas/depot"]),
     r"^Pulumi\.prod\.yaml: depot:backup\.targets\[0\]: \[withheld\] does not leave this "
     r"host: it is a local path, inside the backup container"),
    ("an option for a target", backup(targets=["--config=/etc/x:y"]),
     r"depot:backup\.targets\[0\]: \[withheld\] does not leave this host: it is a local path"),
    ("whitespace", backup(targets=["off site:depot"]),
     r"depot:backup\.targets\[0\]: \[withheld\] holds a space or a control character at "
     r"character 4; use one rclone remote and path without either \(a target is one word\)$"),
    ("a control character", backup(targets=["offsite:depot\x1b[2J"]),
     r"depot:backup\.targets\[0\]: \[withheld\] holds a space or a control character at "
     r"character 14;"),
    ("an unterminated quote", backup(targets=[":s3,endpoint='https://x:b"]),
     r"depot:backup\.targets\[0\]: \[withheld\] is not a backup target at character 14: a "
     r"quoted value is not closed; use name:path \(a remote of depot:backupRcloneConfig\) or "
     r":backend,option=value:path, e\.g\. :s3,provider=AWS,env_auth=true:depot-backups/prod$"),
    ("too many targets", backup(targets=[f":s3,env_auth:b{n}" for n in range(9)]),
     r"^Pulumi\.prod\.yaml: depot:backup\.targets: \[withheld\] lists 9 targets; list at most "
     r"8$"),
    ("a target twice", backup(targets=[S3, S3]),
     r"depot:backup\.targets\[1\]: \[withheld\] is listed twice; list each once"),
    ("a named remote without a config", backup(targets=["offsite:depot/prod"]),
     r"^Pulumi\.prod\.yaml: depot:backup\.targets\[0\]: \[withheld\] names an rclone remote "
     r"\(before its first ':'\), but depot:backupRcloneConfig is not set; define it there "
     r"\(pulumi config set --secret depot:backupRcloneConfig < rclone\.conf\), or write the "
     r"remote inline"),
    ("a second backup task", {"depot:replicas": {"backup": 2}},
     r"depot:replicas\.backup: 2 runs the backup service more than once"),
    ("a build context for it", {"depot:build": {"contexts": {
         "discovery": "../d", "dispatch": "../x", "splat-worker": "../s", "rtk-base": "../r",
         "backup": "../backup"}}},
     r"^Pulumi\.prod\.yaml: depot:build\.contexts\.backup: '\.\./backup' names backup, whose "
     r"image is built from this repository \(docker/backup\.Dockerfile\) on the stack's postgres "
     r"image, never from a crate; remove contexts\.backup$"),
    ("its image by tag", {"depot:images": {"backup": "registry.example.com/depot-backup:1.0.0"}},
     r"depot:images: .* names backup by tag only; our own images run by digest"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("overrides", "message"),
    [pytest.param(o, m, id=case) for case, o, m in BAD_BACKUPS],
)
def test_bad_backup_settings_are_refused_before_anything_is_registered(
    overrides: dict[str, Any], message: str
) -> None:
    found = refused(stack_config("prod", overrides))
    assert len(found.splitlines()) == 1, found
    assert re.search(message, found), found


def test_a_credential_in_an_inline_target_is_named_and_never_shown() -> None:
    target = f":s3,provider=AWS,access_key_id=AKIA1,secret_access_key={CANARY}:bucket/prod"
    message = refused(stack_config("prod", backup(targets=[S3, target])))
    assert message == (
        "Pulumi.prod.yaml: depot:backup.targets[1]: [withheld] sets option access_key_id at "
        "character 18, which may hold a credential; an inline target takes only acl, bucket_acl, "
        "endpoint, env_auth, force_path_style, host, location_constraint, no_check_bucket, "
        "object_acl, port, provider, region, server_side_encryption, sse_kms_key_id, "
        "storage_class, user; define the remote in depot:backupRcloneConfig (pulumi config set "
        "--secret) and name it here as name:path"
    )
    assert "AKIA1" not in message


def test_a_named_remote_the_config_does_not_define_is_named_without_the_config() -> None:
    config = with_rclone(stack_config("prod", backup(targets=["cold:depot"])))
    assert refused(config) == (
        "Pulumi.prod.yaml: depot:backup.targets[0]: [withheld] names an rclone remote (before "
        "its first ':'), but depot:backupRcloneConfig has no section of that name; define it "
        "there (pulumi config set --secret depot:backupRcloneConfig < rclone.conf), or write "
        "the remote inline (:backend,option=value:path)"
    )


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("  \n", "[secret] is empty; set it to an rclone.conf, or remove it"),
        (
            f"# Encrypted rclone configuration File\n\nRCLONE_ENCRYPT_V0:\n{CANARY}\n",
            "[secret] is an rclone.conf encrypted with its own password, which the backup "
            "service is never given",
        ),
    ],
    ids=["empty", "encrypted by rclone"],
)
def test_an_unusable_rclone_config_is_refused_as_a_secret(text: str, rule: str) -> None:
    message = refused(with_rclone(stack_config("prod"), text))
    assert message.startswith(f"Pulumi.prod.yaml: depot:backupRcloneConfig: {rule}")


def test_the_rclone_config_must_be_set_as_a_secret() -> None:
    config = stack_config("prod", {"depot:backupRcloneConfig": RCLONE_CONFIG})
    assert refused(config) == (
        "Pulumi.prod.yaml: depot:backupRcloneConfig: is stored in plaintext; set it with "
        "`pulumi config set --secret depot:backupRcloneConfig`"
    )


def test_a_swarm_stack_pushes_the_backup_image_or_names_its_digest() -> None:
    shipped = stack_config("cluster")
    values = {k: v for k, v in shipped.values.items() if k != "depot:registry"}
    values["depot:build"] = '{"contexts": {}}'
    values["depot:images"] = (
        '{"postgres": "postgres:17.2-alpine@sha256:' + "a" * 64 + '", '
        '"grafana": "grafana/grafana:11.4.0@sha256:' + "b" * 64 + '", '
        '"console": "nginx:1.27.3-alpine@sha256:'
        + "c" * 64
        + '", '
        + ", ".join(
            f'"{s}": "registry.example.com/depot-{s}@sha256:' + "d" * 64 + '"'
            for s in ("discovery", "dispatch", "splat-worker", "rtk-base")
        )
        + "}"
    )
    message = refused(RawConfig(values, shipped.secret_keys), stack="cluster")
    assert message == (
        "Pulumi.cluster.yaml: depot:backup.enabled: true builds the backup image "
        "(docker/backup.Dockerfile) into one Docker daemon, but Swarm nodes pull their images "
        "from a registry; set depot:registry (it is pushed and run by digest), or "
        "depot:images.backup to a pushed digest"
    )
    digest = "registry.example.com/depot-backup@sha256:" + "e" * 64
    images = values["depot:images"].removesuffix("}") + f', "backup": "{digest}"}}'
    settings = load_settings("cluster", RawConfig({**values, "depot:images": images}))
    assert image_for(settings, BACKUP) == digest


def test_the_backup_service_is_pinned_with_postgres_never_by_itself() -> None:
    config = stack_config("cluster", {"depot:swarm": {"nodeLabels": {"backup": "depot.x"}}})
    assert refused(config, stack="cluster") == (
        "Pulumi.cluster.yaml: depot:swarm.nodeLabels.backup: 'depot.x' names backup, which runs "
        "on postgres's node under postgres's label (its volume is kept there); set "
        "nodeLabels.postgres instead"
    )


def test_a_problem_in_the_stack_file_names_its_line_and_column() -> None:
    text = (PROJECT_DIR / "Pulumi.prod.yaml").read_text().replace("schedule: 24h", "schedule: 1y")
    raw = parse_stack_file(text.encode(), "Pulumi.prod.yaml")
    with pytest.raises(ConfigError) as error:
        load_settings("prod", raw)
    line = next(
        n for n, row in enumerate(text.splitlines(), 1) if row.strip().startswith("schedule: 1y")
    )
    assert str(error.value).startswith(
        f"Pulumi.prod.yaml:{line}:15: depot:backup.schedule: '1y' is not a backup interval"
    )
