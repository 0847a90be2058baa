"""depot:backup.targets: what an rclone target may say in a stack file, and what it never says.

A target is rclone's connection string, read as rclone reads it. Inline, it may set only the
options of ``INLINE_TARGET_OPTIONS`` (none a credential, none running a program); a remote that
needs anything else is defined in the secret ``depot:backupRcloneConfig`` and named. A target
that is, or wraps, a place on this host is refused. No refusal shows a target's text: it names
the key, the position and, where it helps, the option.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from depot.config import ConfigError, RawConfig, load_settings
from depot.config.settings import UNDECRYPTED
from depot.config.stack_file import encode
from depot.program import deploy
from depot.recording import Recording, record
from depot.types import INLINE_TARGET_OPTIONS, WRAPPED_REMOTE_OPTIONS, parse_rclone_target
from tests.conftest import PROJECT_DIR, run_depot, stack_config
from tests.test_review import main_in_project

RECIPIENT = "age1xk72a7fvfupmssj73newmhv3pz0exes6n7tzwqytn4aepy3sjecq4q2jpc"
S3 = ":s3,provider=AWS,env_auth=true,region=eu-central-1:depot-backups/prod"
# In a value that must never be shown, nor accepted (a credential's place).
SECRET = "Canary-secret-41d7"
# In a value that may be accepted, but must never be shown in a refusal.
PLAIN = "Canary-plain-8b02"
# In the secret rclone config: never shown by anything.
IN_CONFIG = "Canary-config-e6a9"
RCLONE_CONFIG = f"[offsite]\ntype = s3\nprovider = AWS\nsecret_access_key = {IN_CONFIG}\n"
BASE = stack_config("prod")
WITHHELD = "Pulumi.prod.yaml: depot:backup.targets[0]: [withheld] "
ALLOWED = (
    "acl, bucket_acl, endpoint, env_auth, force_path_style, host, location_constraint, "
    "no_check_bucket, object_acl, port, provider, region, server_side_encryption, "
    "sse_kms_key_id, storage_class, user"
)
TO_THE_CONFIG = (
    f"an inline target takes only {ALLOWED}; define the remote in depot:backupRcloneConfig "
    "(pulumi config set --secret) and name it here as name:path"
)
WHAT_A_TARGET_IS = (
    "use name:path (a remote of depot:backupRcloneConfig) or :backend,option=value:path, e.g. "
    ":s3,provider=AWS,env_auth=true:depot-backups/prod"
)


def given_targets(*targets: str, rclone: str | None = RCLONE_CONFIG) -> RawConfig:
    """Prod with these targets (and ``rclone`` as its secret rclone config, decrypted)."""
    return with_backup(list(targets), rclone)


def with_backup(targets: object, rclone: str | None = RCLONE_CONFIG, **backup: Any) -> RawConfig:
    """Prod with ``targets`` as written (a list, or not) and ``backup``'s other settings."""
    values = dict(BASE.values)
    values["depot:backup"] = encode(
        {
            "enabled": True,
            "retention": {"daily": 7},
            "recipients": [RECIPIENT],
            "targets": targets,
            **backup,
        }
    )
    secret_keys = set(BASE.secret_keys)
    if rclone is not None:
        values["depot:backupRcloneConfig"] = rclone
        secret_keys.add("depot:backupRcloneConfig")
    return RawConfig(values, frozenset(secret_keys))


def refused(config: RawConfig) -> str:
    """The one-line message ``config`` is refused with; nothing registered, no canary in it."""
    recording = Recording(stack="prod")
    with pytest.raises(ConfigError) as error:
        record(deploy, stack="prod", config=config, into=recording)
    assert recording.registrations == []
    message = str(error.value)
    for canary in (SECRET, PLAIN, IN_CONFIG):
        assert canary not in message
    assert len(message.splitlines()) == 1, message
    return message


def accepted(config: RawConfig) -> tuple[str, ...]:
    return load_settings("prod", config).backup.targets


# --- 4. a target that is the host after all ---------------------------------------------------


@pytest.mark.parametrize(
    ("target", "what"),
    [
        (":alias,remote=/backups:", "rclone's alias backend around a local path"),
        (":union,upstreams=/backups:", "rclone's union backend around a local path"),
        (":alias,remote=':local:':backups", "rclone's alias backend around rclone's local backend"),
        (":chunker,remote=relative/dir:", "rclone's chunker backend around a local path"),
        (":compress,remote=backups:", "rclone's compress backend around a local path"),
        (":hasher,remote=':alias,remote=''/backups'':':", "rclone's hasher backend around "
         "rclone's alias backend around a local path"),
        (":cache,remote=':memory:':", "rclone's cache backend around rclone's memory backend"),
        (":combine,upstreams=dir=/backups:", "rclone's combine backend around a local path"),
        (":archive:/backups/2026.zip", "rclone's archive backend around a local path"),
        (":archive,remote=/backups:2026.zip", "rclone's archive backend around a local path"),
        (":local:/mnt/nas", "rclone's local backend"),
        (":memory:", "rclone's memory backend"),
        ("/backups", "a local path"),
        ("backups", "a local path"),
        ("./offsite:depot", "a local path"),
    ],
)  # fmt: skip
def test_a_target_that_is_or_wraps_this_host_is_refused(target: str, what: str) -> None:
    assert refused(given_targets(target, S3)) == (
        f"{WITHHELD}does not leave this host: it is {what}, inside the backup container (where "
        "the local retention prunes too); use a remote on another machine (S3, SFTP, B2, …)"
    )


@pytest.mark.parametrize(
    "target",
    [
        ":alias,remote='offsite:depot':",
        ":chunker,remote=':s3,env_auth:bucket':prod",
        ":union,upstreams='offsite:a':",
        ":combine,upstreams='prod=offsite:depot':",
        ":archive:offsite:depot/2026.zip",
    ],
)
def test_a_wrapper_of_another_machine_is_a_target(target: str) -> None:
    assert accepted(given_targets(target)) == (target,)


@pytest.mark.parametrize(
    ("rclone", "what"),
    [
        ("[offsite]\ntype = alias\nremote = /backups\n", "a local path"),
        ("[offsite]\ntype: local\n", "rclone's local backend"),
        (f"[offsite]\ntype = crypt\nremote = nas:depot\npassword = {IN_CONFIG}\n"
         "[nas]\ntype = memory\n", "rclone's memory backend"),
        ('[offsite]\ntype = union\nupstreams = s3:bucket "/backups/with space:ro"\n'
         "[s3]\ntype = s3\nenv_auth = true\n", "a local path"),
        ("[offsite]\ntype = union\nremotes = s3:bucket /backups\n[s3]\ntype = s3\n",
         "a local path"),  # union's older key
        ("[offsite]\ntype = combine\nupstreams = a=s3:bucket b=:local:/x\n[s3]\ntype = s3\n",
         "rclone's local backend"),
        ("[offsite]\ntype = alias\nremote = cyc:\n[cyc]\ntype = alias\nremote = offsite:\n",
         "remotes wrapping each other in a loop or more than 8 deep"),
        ("".join(f"[r{n}]\ntype = alias\nremote = r{n + 1}:\n" for n in range(9))
         .replace("[r0]", "[offsite]") + "[r9]\ntype = s3\n",
         "remotes wrapping each other in a loop or more than 8 deep"),
    ],
)  # fmt: skip
def test_a_named_remote_is_judged_by_its_section_where_the_config_is_read(
    rclone: str, what: str
) -> None:
    # Nothing of the secret is told, not its remotes' names nor types: what they come to.
    message = refused(given_targets("offsite:depot", rclone=rclone))
    assert message == (
        f"{WITHHELD}does not leave this host: it is a remote that depot:backupRcloneConfig "
        f"defines as, or around, {what}, inside the backup container (where the local retention "
        "prunes too); use a remote on another machine (S3, SFTP, B2, …)"
    )
    assert not re.search(r"\b(nas|cyc|r\d|crypt|union|combine|alias|s3)\b", message)


def test_an_inline_wrapper_of_a_named_remote_is_judged_by_its_section_too() -> None:
    rclone = "[nas]\ntype = alias\nremote = /srv\n"
    message = refused(given_targets(":alias,remote='nas:depot':", rclone=rclone))
    assert "it is rclone's alias backend around a remote that depot:backupRcloneConfig " in message
    assert "defines as, or around, a local path," in message


def test_a_named_remote_only_the_pulumi_cli_can_read_is_judged_by_pulumi_up() -> None:
    # `depot check` reads the stack file, where the config is `secure:`; `pulumi up` hands the
    # program the decrypted config, where the tests above hold.
    config = given_targets("offsite:depot", rclone=f"{UNDECRYPTED} v1:abc")
    assert accepted(config) == ("offsite:depot",)


# --- 5. credentials: an allowlist of inline options ------------------------------------------


@pytest.mark.parametrize(
    ("target", "option", "position"),
    [
        (f":storj,access_grant={SECRET}:bucket", "access_grant", 8),
        (f":azurefiles,connection_string='DefaultEndpointsProtocol=https;AccountKey={SECRET}'"
         ":share", "connection_string", 13),
        (f":http,url='https://user:{SECRET}@host/':x", "url", 7),
        (f":webdav,headers='Authorization,Basic_{SECRET}':dav", "headers", 9),
        (f":s3,provider=AWS,session_token={SECRET}:b", "session_token", 18),
        (f":b2,account=id,key={SECRET}:b", "account", 5),
        (f":azureblob,sas_url='https://a.blob/c?sig={SECRET}':c", "sas_url", 12),
        (f":drive,token='{{\"access_token\":\"{SECRET}\"}}':d", "token", 8),
        (f":s3,env_auth,sse_customer_key={SECRET}:b", "sse_customer_key", 14),
        (f":s3,Region={SECRET}:b", "Region", 5),
        (f":sftp,host=h,key_pem={SECRET}:x", "key_pem", 14),
        (f":alias,remote=':s3,secret_access_key={SECRET}:b':", "secret_access_key (inside "
         "remote)", 8),
    ],
)  # fmt: skip
def test_an_inline_option_off_the_allowlist_is_refused_and_sent_to_the_rclone_config(
    target: str, option: str, position: int
) -> None:
    assert refused(given_targets(target)) == (
        f"{WITHHELD}sets option {option} at character {position}, which may hold a credential; "
        f"{TO_THE_CONFIG}"
    )


@pytest.mark.parametrize("option", sorted(INLINE_TARGET_OPTIONS))
def test_every_allowed_option_is_accepted_inline(option: str) -> None:
    target = f":s3,{option}=x{PLAIN}:bucket/prod"
    assert accepted(given_targets(target)) == (target,)


@pytest.mark.parametrize(
    "target",
    [
        # The property's find: a quoted value of an allowed option carrying a second option.
        f":s3,acl={PLAIN},acl='{PLAIN},secret_access_key={SECRET},acl=':{PLAIN}':",
        f":s3,region='eu-west-1,secret_access_key={SECRET}':depot",
        f':sftp,user="depot""{SECRET}":depot',
    ],
)
def test_an_allowed_option_holds_a_plain_value_only(target: str) -> None:
    message = refused(given_targets(target))
    assert SECRET not in message
    assert PLAIN not in message
    assert "to a value with a character none of its values needs" in message


@pytest.mark.parametrize(
    "target",
    [
        ":s3,endpoint='https://s3.eu.example.com:9000':depot/prod",
        ":s3,server_side_encryption='aws:kms',sse_kms_key_id='arn:aws:kms:eu-west-1:1:key/a-b':d",
        ":s3,provider=Ceph,region=eu-1,storage_class=STANDARD_IA,acl=private:depot",
    ],
)
def test_allowed_options_take_the_values_real_stores_need(target: str) -> None:
    assert accepted(given_targets(target)) == (target,)


@pytest.mark.parametrize(
    ("target", "where"),
    [
        (f":s3,endpoint='https://key:{SECRET}@s3.example.com':b", "in option endpoint at "
         "character 5"),
        (f":s3,endpoint='key:{SECRET}@s3.example.com':b", "in option endpoint at character 5"),
        (f":sftp,host='u:{SECRET}@backup.example.com':x", "in option host at character 7"),
        (f":alias,remote='https://u:{SECRET}@h/x':", "in option remote at character 8"),
        (f":s3,env_auth:b/https://u:{SECRET}@h/", "in its path at character 16"),
    ],
)  # fmt: skip
def test_a_url_with_user_information_is_refused_wherever_it_is(target: str, where: str) -> None:
    message = refused(given_targets(target))
    assert message.startswith(
        f"{WITHHELD}holds a URL with user information (user:password@) {where}; define the "
        "remote with its credentials in depot:backupRcloneConfig"
    )


def test_an_unquoted_url_is_judged_whole_though_rclone_reads_its_rest_as_the_path() -> None:
    # `endpoint=https` and the path `//key:…@s3.example.com`: neither is a URL on its own.
    target = f":s3,endpoint=https://key:{SECRET}@s3.example.com:b"
    assert refused(given_targets(target)) == (
        f"{WITHHELD}holds a URL with user information at character 14; write the URL without "
        "it, or define the remote in depot:backupRcloneConfig and name it here as name:path"
    )


def test_a_url_with_a_query_is_refused_as_a_token_carrier() -> None:
    target = f":s3,env_auth,endpoint='https://s3.example.com/?X-Amz-Signature={SECRET}':b"
    assert refused(given_targets(target)) == (
        f"{WITHHELD}holds a URL with a query or fragment, which can carry a token, in option "
        "endpoint at character 14; write the URL without one, or define the remote in "
        "depot:backupRcloneConfig"
    )


# Options rclone's backends hold credentials in (their `IsPassword`/`Sensitive` ones that are
# secrets, and the connection strings, headers and tokens): none may be inline.
RCLONE_CREDENTIAL_OPTIONS = {
    "access_key_id", "secret_access_key", "session_token", "sse_customer_key",
    "sse_customer_key_base64", "pass", "password", "password2", "key", "account", "token",
    "client_id", "client_secret", "sas_url", "connection_string", "access_grant", "api_key",
    "bearer_token", "service_account_credentials", "service_account_file", "key_pem",
    "key_file_pass", "headers", "auth_url", "application_key", "shared_credentials_file",
}  # fmt: skip


def test_the_allowlist_holds_no_credential_option_of_rclone() -> None:
    assert INLINE_TARGET_OPTIONS.isdisjoint(RCLONE_CREDENTIAL_OPTIONS)
    assert not {o for o in INLINE_TARGET_OPTIONS if re.search(r"pass|secret|token|_key$", o)}


def test_the_manual_lists_exactly_the_allowed_inline_options() -> None:
    page = (PROJECT_DIR / "docs" / "backups.md").read_text()
    sentence = re.search(r"Inline targets may set\s+only\s+(?P<list>[^.]*)\.", page)
    assert sentence is not None
    assert set(re.findall(r"`([a-z_]+)`", sentence["list"])) == INLINE_TARGET_OPTIONS


# --- 6. a malformed target is never printed ---------------------------------------------------


@pytest.mark.parametrize(
    ("target", "rule"),
    [
        (f":s3,access_key_id=AKIA{SECRET},secret_access_key={SECRET}",
         "is not a backup target at character 77: the remote's options end with ':' and a path; "
         + WHAT_A_TARGET_IS),
        (f":s3,endpoint='https://h/{SECRET} x':b",
         "holds a space or a control character at character 43; use one rclone remote and path "
         "without either (a target is one word)"),
        (f":s3,endpoint='{SECRET}:b",
         "is not a backup target at character 14: a quoted value is not closed; "
         + WHAT_A_TARGET_IS),
        (f":s3,endpoint='{SECRET}'x:b",
         "is not a backup target at character 34: a quoted value ends with its quote, then ',' "
         "or ':'; " + WHAT_A_TARGET_IS),
        (f"offsite,pass={SECRET}:x",
         "sets option pass at character 9 on a named remote; set a named remote's options in "
         "its section of depot:backupRcloneConfig"),
        (f":s3,session-token={SECRET}:b",
         "is not a backup target at character 12: an option's name holds only letters, digits, "
         "_ and .; " + WHAT_A_TARGET_IS),
        (f":S3,secret_access_key={SECRET}:b",
         "is not a backup target at character 2: an inline remote starts with its backend in "
         "lower case (:s3,); " + WHAT_A_TARGET_IS),
        (f"off$site:{SECRET}",
         "is not a backup target at character 1: a remote's name starts with a letter, a digit "
         "or _, and holds only those and .+@-; " + WHAT_A_TARGET_IS),
        (f":s3,env_auth:{SECRET}/../other",
         "has a '..' in its path at character 33; write the path without it"),
        ("offsite:../other", "has a '..' in its path at character 9; write the path without it"),
        (f":s3,acl=private:,secret_access_key={SECRET}:",
         "has an '=' in its path at character 35: an option whose value holds ':' ended there; "
         "quote such a value ('…')"),
        (f"offsite:depot,pass={SECRET}",
         "has an '=' in its path at character 19: an option whose value holds ':' ended there; "
         "quote such a value ('…')"),
        ("x" * 513, "is 513 characters long; use one rclone remote and path of 1 to 512"),
    ],
)  # fmt: skip
def test_a_malformed_target_is_refused_by_position_never_shown(target: str, rule: str) -> None:
    assert refused(given_targets(target)) == WITHHELD + rule


def test_a_path_may_hold_dots_that_are_not_a_parent() -> None:
    targets = ("offsite:a..b/.c/d..", ":s3,env_auth:b/...")
    assert accepted(given_targets(*targets)) == targets


@pytest.mark.parametrize(
    ("targets", "backup", "rule"),
    [
        ([f":s3,region={PLAIN}:b", f":s3,region={PLAIN}:b"], {},
         "depot:backup.targets[1]: [withheld] is listed twice; list each once"),
        ([f":s3,env_auth:{PLAIN}{n}" for n in range(9)], {},
         "depot:backup.targets: [withheld] lists 9 targets; list at most 8"),
        ([f":s3,env_auth:{PLAIN}"], {"recipients": []},
         "depot:backup.targets: [withheld] would receive unencrypted dumps"),
        (f":s3,secret_access_key={SECRET}:b", {},
         "depot:backup.targets: [withheld] should be a valid tuple"),
        ([{"secret_access_key": SECRET}], {},
         "depot:backup.targets[0]: [withheld] should be a valid string"),
        ([f"cold:{PLAIN}"], {},
         "depot:backup.targets[0]: [withheld] names an rclone remote (before its first ':'), "
         "but depot:backupRcloneConfig has no section of that name"),
    ],
)  # fmt: skip
def test_every_other_refusal_of_targets_withholds_them(
    targets: object, backup: dict[str, Any], rule: str
) -> None:
    message = refused(with_backup(targets, **backup))
    assert message.startswith(f"Pulumi.prod.yaml: {rule}"), message


# --- 7. options that make rclone run a program -------------------------------------------------

# Every option of rclone (v1.72's backends and global flags) that runs a program: sftp's `ssh`
# runs it here, its `*_command`s on the server; webdav's token command, and the global flags a
# `global.`/`override.` option would set.
RCLONE_PROGRAM_OPTIONS = (
    "ssh", "server_command", "md5sum_command", "sha1sum_command", "crc32sum_command",
    "sha256sum_command", "blake3sum_command", "xxh3sum_command", "xxh128sum_command",
    "bearer_token_command", "global.password_command", "override.metadata_mapper",
    "global.name_transform",
)  # fmt: skip


@pytest.mark.parametrize("option", RCLONE_PROGRAM_OPTIONS)
def test_an_option_that_makes_rclone_run_a_program_is_refused_as_such(option: str) -> None:
    target = f":sftp,host=backup.example.com,{option}='/bin/sh -c id':x".replace(" ", "_")
    assert refused(given_targets(target)) == (
        f"{WITHHELD}sets option {option} at character 31, which would make rclone run a "
        f"program; {TO_THE_CONFIG}"
    )


def test_no_allowed_option_runs_a_program() -> None:
    bare = {option.partition(".")[2] or option for option in RCLONE_PROGRAM_OPTIONS}
    assert INLINE_TARGET_OPTIONS.isdisjoint(bare)
    assert not any("." in option for option in INLINE_TARGET_OPTIONS)  # no global flag


def test_a_global_flag_is_refused_as_such() -> None:
    assert refused(given_targets(":s3,env_auth,global.bwlimit=1M:b")) == (
        f"{WITHHELD}sets option global.bwlimit at character 14, which sets one of rclone's "
        f"global flags; {TO_THE_CONFIG}"
    )


# --- named remotes ----------------------------------------------------------------------------


def test_a_remote_whose_name_starts_with_a_dash_is_refused_even_where_defined() -> None:
    # rclone would read `-offsite:depot` as an option; rclone itself refuses such a name.
    rclone = "[-offsite]\ntype = s3\nenv_auth = true\n[offsite]\ntype = s3\n"
    assert refused(given_targets("-offsite:depot", rclone=rclone)) == (
        f"{WITHHELD}is not a backup target at character 1: a remote's name starts with a "
        f"letter, a digit or _, and holds only those and .+@-; {WHAT_A_TARGET_IS}"
    )
    assert accepted(given_targets("offsite:depot", rclone=rclone)) == ("offsite:depot",)


# --- the property: whatever is refused, no value of it is shown -------------------------------

NAMES = st.sampled_from(["offsite", "b2.eu", "nas_2"])
BACKENDS = st.sampled_from(["s3", "sftp", "webdav", "storj", "azurefiles", "http", "local",
                            *WRAPPED_REMOTE_OPTIONS])  # fmt: skip
REFUSED_OPTIONS = st.sampled_from(["secret_access_key", "access_grant", "connection_string",
                                   "pass", "token", "headers", "url", "ssh", "server_command",
                                   "global.password_command", "key", "account"])  # fmt: skip
NOISE = st.text(alphabet=",:'\"/=@?x-", max_size=4)  # what may break a value's reading


@st.composite
def values(draw: st.DrawFn, canary: str) -> str:
    """A value as a target writes it: bare, quoted (quotes doubled) or broken, canary inside."""
    raw = draw(NOISE) + canary + draw(NOISE)
    shape = draw(st.sampled_from(["bare", "'", '"', "unterminated", "spaced", "url", "query"]))
    if shape == "spaced":
        raw = f"'{raw} {raw}'"
    elif shape == "url":
        raw = f"'https://user:{SECRET}@{raw}'".replace(" ", "")
    elif shape == "query":
        raw = f"https://h/?sig={SECRET}"
    elif shape in ("'", '"'):
        raw = shape + raw.replace(shape, shape * 2) + shape
    elif shape == "unterminated":
        raw = "'" + raw
    return raw


@st.composite
def options(draw: st.DrawFn) -> str:
    allowed = st.tuples(st.sampled_from(sorted(INLINE_TARGET_OPTIONS)), values(PLAIN))
    refused = st.tuples(REFUSED_OPTIONS, values(SECRET))
    wrapped = st.tuples(st.sampled_from(["remote", "upstreams"]), values(PLAIN))
    chosen = draw(st.lists(st.one_of(allowed, refused, wrapped), max_size=4))
    return "".join(f",{key}={value}" for key, value in chosen)


@st.composite
def targets(draw: st.DrawFn) -> str:
    remote = draw(st.one_of(NAMES, BACKENDS.map(lambda backend: ":" + backend)))
    path = draw(st.sampled_from(["", "depot/prod", PLAIN, f"{PLAIN}/x", "../x"]))
    return f"{remote}{draw(options())}:{path}"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(target=targets())
def test_whatever_is_refused_no_value_of_it_is_shown_and_no_credential_is_accepted(
    target: str,
) -> None:
    rclone = "[offsite]\ntype = s3\n[b2.eu]\ntype = b2\n[nas_2]\ntype = sftp\n" + (
        f"pass = {IN_CONFIG}\n"
    )
    config = given_targets(target, rclone=rclone)
    try:
        kept = accepted(config)
    except ConfigError as error:
        message = str(error)
        for canary in (SECRET, PLAIN, IN_CONFIG):
            assert canary not in message
        assert message.startswith(WITHHELD), message
        return
    assert kept == (target,)
    assert SECRET not in target  # a credential's canary is never accepted
    parsed = parse_rclone_target(target)
    assert parsed is not None
    assert not parsed.on_this_host


# --- end to end: nothing refused reaches what depot prints -------------------------------------


def _project_copy(root: Path, targets: list[str]) -> Path:
    """This project (code and stack files) with prod's targets replaced by ``targets``."""
    project = root / "project"
    shutil.copytree(
        PROJECT_DIR,
        project,
        ignore=shutil.ignore_patterns(".venv", ".git", "*_cache", ".hypothesis", ".pulumi-state"),
    )
    stack = project / "Pulumi.prod.yaml"
    shipped = f'      - "{S3}"\n'
    text = stack.read_text()
    assert shipped in text
    stack.write_text(text.replace(shipped, "".join(f"      - {t!r}\n" for t in targets)))
    return project


HOSTILE = [
    f":storj,access_grant={SECRET}:bucket",
    f":s3,access_key_id=AKIA{SECRET},secret_access_key={SECRET}",
    f":sftp,host=h,ssh='/bin/sh_-c_{SECRET}':x",
    f":alias,remote=/backups/{SECRET}:",
]


def test_nothing_refused_reaches_plan_compose_or_check(tmp_path: Path) -> None:
    # The three commands in one interpreter in the copy (tests/test_review.py: main_in_project);
    # a setting refused by `depot plan` as a process of its own, exit 2 and the one line:
    # tests/test_review.py::test_a_bad_config_gives_the_programs_message.
    project = _project_copy(tmp_path, [S3, *HOSTILE])
    commands = (["plan", "--stack", "prod"], ["compose", "--stack", "prod"],
                ["check", "--stack", "prod"])  # fmt: skip
    runs = main_in_project(project, *commands, env={"PATH": "/usr/bin:/bin"})
    assert len(runs) == len(commands)
    for command, (status, stdout, stderr) in zip(commands, runs, strict=True):
        assert status == 2, (command, stderr)
        assert SECRET not in stdout + stderr
        for index in range(1, len(HOSTILE) + 1):
            assert f"depot:backup.targets[{index}]: [withheld] " in stderr


def test_an_accepted_target_is_what_the_plain_environment_carries(tmp_path: Path) -> None:
    # The control for the test above: a target that passes reaches the compose file's plain
    # DEPOT_BACKUP_TARGETS, so a refused one would have been seen there.
    target = f":s3,env_auth=true,region=eu-west-1:depot-{PLAIN.lower()}"
    project = _project_copy(tmp_path, [target])
    env = {"PYTHONPATH": str(project), "PATH": "/usr/bin:/bin", "DEPOT_RELEASE_COMMIT": "0" * 40}
    completed = run_depot("compose", "--stack", "prod", cwd=project, env=env)
    assert completed.returncode == 0, completed.stderr
    assert f"DEPOT_BACKUP_TARGETS: {target}" in completed.stdout


# --- the reader's edges (survivors of `make mutation`) ----------------------------------------


@pytest.mark.parametrize("target", [":s3,env_auth", ":s3,acl="])
def test_options_without_a_path_are_refused_where_the_text_ends(target: str) -> None:
    assert refused(given_targets(target)).startswith(
        f"{WITHHELD}is not a backup target at character {len(target)}: the remote's options "
        "end with ':' and a path; use name:path"
    )


def test_an_option_without_a_name_is_refused_at_the_character_after_its_comma() -> None:
    message = refused(given_targets(":s3,=x:depot"))
    assert " at character 5: an option's name holds only letters, digits, _ and .;" in message


def test_an_archive_given_its_remote_keeps_its_path_inside_the_archive() -> None:
    # With `remote` set, the path names a file in the archive, not a folder of this host.
    target = ":archive,remote='offsite:depot':prod/depot.zip"
    assert accepted(given_targets(target)) == (target,)


def test_the_rclone_config_is_read_past_blank_lines_and_comments() -> None:
    config = (
        "# written by rclone config\n\n[nas]\n; a comment\ntype = sftp\n\n"
        "[home]\n# type = sftp\ntype = local\n"
    )
    assert accepted(given_targets("nas:depot", rclone=config)) == ("nas:depot",)
    assert "rclone's local backend" in refused(given_targets("home:depot", rclone=config))
