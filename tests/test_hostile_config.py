"""Stack files as a hostile or careless user writes them: a clear error, never a secret or crash.

Every case runs with a canary password given as secret config, the way `pulumi up` passes a
decrypted secret; no message may contain it. Each problem is one line that starts with the stack
file's name (and its line and column where YAML knows them).
"""

from __future__ import annotations

import re
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from depot.cli import main
from depot.config import ConfigError, RawConfig, load_settings
from depot.config.stack_file import encode, parse_stack_file, read_stack_file
from depot.program import deploy
from depot.recording import Recording, record
from tests.conftest import PROJECT_DIR

CANARY = "Canary-7f3e9b1d-do-not-print"
SECRETS = {
    "depot:databasePassword": CANARY,
    "depot:grafanaAdminPassword": CANARY + "-grafana",
    "depot:registryPassword": CANARY + "-registry",
    "depot:backupRcloneConfig": f"[offsite]\ntype = sftp\npass = {CANARY}-rclone\n",
}
SHIPPED_PROD = (PROJECT_DIR / "Pulumi.prod.yaml").read_text()


def with_secrets(raw: RawConfig) -> RawConfig:
    """``raw`` plus decrypted canary secrets, marked secret as the engine marks them."""
    return RawConfig({**raw.values, **SECRETS}, raw.secret_keys | frozenset(SECRETS), raw.positions)


def problems(document: str | bytes, stack: str = "prod") -> str:
    """The error for a stack file's text, read and validated as `depot` and `pulumi up` do."""
    data = document.encode() if isinstance(document, str) else document
    try:
        settings_of = load_settings(
            stack, with_secrets(parse_stack_file(data, f"Pulumi.{stack}.yaml"))
        )
    except ConfigError as error:
        message = str(error)
        assert CANARY not in message
        for line in message.splitlines():
            assert line.startswith(f"Pulumi.{stack}.yaml"), line
        return message
    raise AssertionError(f"accepted: {settings_of!r}")


def prod_with(old: str, new: str) -> str:
    assert old in SHIPPED_PROD, old
    return SHIPPED_PROD.replace(old, new, 1)


# --- secrets never printed --------------------------------------------------------------------


def test_a_model_level_problem_names_its_key_and_shows_no_config() -> None:
    message = problems(prod_with("[gpu, rtk]", "[gpu, rtk, gpu]"))
    assert message == (
        "Pulumi.prod.yaml:6:30: depot:profiles[2]: 'gpu' lists a profile twice; list each once"
    )


def test_a_misspelt_key_is_named_without_its_value() -> None:
    message = problems(prod_with("config:\n", f"config:\n  depot:databasePasswd: {CANARY}x\n"))
    assert message.startswith("Pulumi.prod.yaml:3:25: depot:databasePasswd: is not a known setting")
    assert "(did you mean databasePassword?)" in message
    assert "Canary" not in message


@pytest.mark.parametrize(
    "value",
    [{"nested": CANARY}, [CANARY], ""],
    ids=["map", "list", "empty"],
)
def test_a_bad_value_under_a_secret_key_is_shown_as_secret(value: Any) -> None:
    shipped = read_stack_file("prod", PROJECT_DIR)
    raw = RawConfig(
        {**shipped.values, "depot:databasePassword": encode(value)},
        shipped.secret_keys | {"depot:databasePassword"},
    )
    with pytest.raises(ConfigError) as error:
        load_settings("prod", raw)
    assert CANARY not in str(error.value)
    assert str(error.value).startswith("Pulumi.prod.yaml: depot:databasePassword:")


def test_a_whole_setting_given_as_secret_is_never_shown() -> None:
    raw = RawConfig(
        {"depot:registry": f'{{"address": "{CANARY}", "username": "u"}}'},
        frozenset({"depot:registry"}),
    )
    with pytest.raises(ConfigError) as error:
        load_settings("prod", raw)
    assert str(error.value) == (
        "Pulumi.prod.yaml: depot:registry.address: [secret] is not a registry address; "
        "use host[:port][/namespace] with a port 1-65535, e.g. registry.example.com"
    )


def test_an_empty_password_is_refused_without_showing_it() -> None:
    raw = RawConfig({"depot:databasePassword": "  "}, frozenset({"depot:databasePassword"}))
    with pytest.raises(
        ConfigError, match=r"^Pulumi\.dev\.yaml: depot:databasePassword: \[secret\] is empty"
    ):
        load_settings("dev", raw)


# --- damaged files: one clear line, never a traceback ----------------------------------------


DAMAGED: list[tuple[str, bytes | str, str]] = [
    (
        "syntax error",
        "config:\n  depot:restart: [always\n",
        r"^Pulumi\.prod\.yaml:3:1: is not valid YAML: ",
    ),
    (
        "tab indentation",
        "config:\n\tdepot:restart: always\n",
        r"^Pulumi\.prod\.yaml:2:1: is not valid YAML: .*tabs",
    ),
    (
        "document a list",
        "- config\n",
        r"^Pulumi\.prod\.yaml:1:1: is not a stack file: expected a map",
    ),
    ("document a scalar", "hello\n", r"^Pulumi\.prod\.yaml:1:1: is not a stack file"),
    (
        "config a list",
        "config:\n  - depot:restart\n",
        r"^Pulumi\.prod\.yaml:2:3: config: is not a map",
    ),
    ("config a scalar", "config: always\n", r"^Pulumi\.prod\.yaml:1:9: config: is not a map"),
    (
        "not UTF-8",
        b"config:\n  depot:logLevel: \xff\xfe\n",
        r"^Pulumi\.prod\.yaml:2: is not UTF-8 text \(byte 0xff\)",
    ),
    (
        "duplicate key",
        "config:\n  depot:restart: always\n  depot:restart: 'no'\n",
        r"^Pulumi\.prod\.yaml:3:3: depot:restart: is set twice \(first on line 2\)",
    ),
    (
        "nested duplicate",
        "config:\n  depot:publish:\n    ports: {console: 80}\n    ports: {console: 81}\n",
        r"^Pulumi\.prod\.yaml:4:5: ports: is set twice",
    ),
    (
        "key a list",
        "config:\n  ? [a, b]\n  : 1\n",
        r"^Pulumi\.prod\.yaml:2:5: a key is a list or map",
    ),
    ("key not text", "config:\n  1: one\n", r"^Pulumi\.prod\.yaml:2:6: 1: a key is not text"),
    (
        "binary value",
        "config:\n  depot:logLevel: !!binary aGVsbG8=\n",
        r"^Pulumi\.prod\.yaml:2:19: depot:logLevel: holds a YAML bytes value",
    ),
    ("set value", "config:\n  depot:profiles: !!set {gpu: null}\n", r"holds a YAML set value"),
    (
        "python tag",
        "config:\n  depot:logLevel: !!python/object:os.system {}\n",
        r"^Pulumi\.prod\.yaml:2:19: is not valid YAML: could not determine a constructor",
    ),
    (
        "empty value",
        "config:\n  depot:restart:\n",
        r"^Pulumi\.prod\.yaml:2:17: depot:restart: has no value",
    ),
    (
        "self-referring alias",
        "config: &a\n  depot:x: *a\n",
        r"an alias refers to a value that contains it",
    ),
]


@pytest.mark.parametrize(("document", "message"), [pytest.param(d, m, id=c) for c, d, m in DAMAGED])
def test_a_damaged_stack_file_is_one_clear_line(document: bytes | str, message: str) -> None:
    found = problems(document)
    assert len(found.splitlines()) == 1
    assert re.search(message, found), found


def test_a_date_is_text_as_pulumi_reads_it() -> None:
    message = problems("config:\n  depot:logLevel: 2026-11-28\n")
    assert message.startswith("Pulumi.prod.yaml:2:19: depot:logLevel: '2026-11-28' should be")


def test_an_alias_bomb_is_refused_at_once_with_bounded_memory() -> None:
    lines = ["config:", "  depot:x: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"  depot:x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    bomb = "\n".join(lines) + "\n"  # 10**10 values once expanded
    tracemalloc.start()
    started = time.perf_counter()
    message = problems(bomb)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert "expands to more than 10000 values through YAML aliases" in message
    assert elapsed < 0.5
    assert peak < 50 * 1024 * 1024


def test_modest_aliases_still_work() -> None:
    document = prod_with(
        "    discovery:    {memory: 256m, cpus: 0.5,  memoryReservation: 128m}",
        "    discovery:    &small {memory: 256m, cpus: 0.5,  memoryReservation: 128m}",
    ).replace(
        "    rtk-base:     {memory: 256m, cpus: 0.5,  memoryReservation: 128m}",
        "    rtk-base:     *small",
    )
    raw = with_secrets(parse_stack_file(document.encode(), "Pulumi.prod.yaml"))
    assert load_settings("prod", raw).limits["rtk-base"].memory == 256


def test_a_huge_file_is_refused_unread(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^Pulumi\.prod\.yaml: is larger than 1 MiB"):
        parse_stack_file(b"#" * (1024 * 1024 + 1), "Pulumi.prod.yaml")


@pytest.mark.parametrize("stack", ["x" * 300, "../etc/passwd", "prod\nfake", ""])
def test_a_stack_name_that_is_no_file_name_is_a_usage_error(
    stack: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", "--stack", stack]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert "is not a stack name; use 1-100 letters, digits, '-', '_' or '.'" in err


# --- values that cannot be right ---------------------------------------------------------------


WRONG: list[tuple[str, str, str, str]] = [
    (
        "cpus nan",
        "cpus: 0.5,  memoryReservation: 128m}",
        "cpus: .nan,  memoryReservation: 128m}",
        r"depot:limits\.discovery\.cpus: NaN is not a number of CPUs",
    ),
    (
        "cpus inf",
        "cpus: 0.5,  memoryReservation: 128m}",
        "cpus: .inf,  memoryReservation: 128m}",
        r"depot:limits\.discovery\.cpus: Infinity is not a number of CPUs",
    ),
    (
        "cpus 1000",
        "cpus: 0.5,  memoryReservation: 128m}",
        "cpus: 1000,  memoryReservation: 128m}",
        r"depot:limits\.discovery\.cpus: 1000 is not a usable number of CPUs; "
        r"use between 0\.01 and 512",
    ),
    (
        "cpus true",
        "cpus: 0.5,  memoryReservation: 128m}",
        "cpus: true,  memoryReservation: 128m}",
        r"depot:limits\.discovery\.cpus: true is not a number of CPUs",
    ),
    (
        "memory overflow",
        "{memory: 256m, cpus: 0.5,",
        "{memory: 1e400g, cpus: 0.5,",
        r"depot:limits\.discovery\.memory: '1e400g' is not a memory size",
    ),
    (
        "memory beyond int64",
        "{memory: 256m, cpus: 0.5,",
        "{memory: 99999999999g, cpus: 0.5,",
        r"depot:limits\.discovery\.memory: '99999999999g' is larger than any container limit "
        r"can be; use at most 4096g",
    ),
    (
        "same port twice",
        "      console: 80\n",
        "      console: 80\n      grafana: 80\n",
        r"depot:publish\.ports\.grafana: 80 is already published by console on the same address",
    ),
    (
        "port for a worker",
        "      console: 80\n",
        "      console: 80\n      rtk-base: 9000\n",
        r"depot:publish\.ports\.rtk-base: 9000 publishes rtk-base, which listens on no port; "
        r"remove ports\.rtk-base",
    ),
    (
        "registry port",
        "address: registry.example.com",
        "address: registry.example.com:99999",
        r"depot:registry\.address: 'registry\.example\.com:99999' is not a registry address; "
        r"use host\[:port\]\[/namespace\] with a port 1-65535",
    ),
    (
        "username with space",
        "username: deploy ",
        "username: de ploy ",
        r"depot:registry\.username: 'de ploy' is not a registry username",
    ),
    (
        "username with newline",
        "username: deploy ",
        'username: "de\\nploy" ',
        r"depot:registry\.username: 'de\\nploy' is not a registry username",
    ),
    (
        "ssh option as host",
        "host: ssh://deploy@depot.example.com",
        "host: ssh://-oProxyCommand=touch@x",
        r"depot:docker\.host: 'ssh://-oProxyCommand=touch@x' is not a Docker host",
    ),
    (
        "ssh option as user host",
        "host: ssh://deploy@depot.example.com",
        "host: ssh://deploy@-oProxyCommand=x",
        r"is not a Docker host",
    ),
    (
        "npipe host",
        "host: ssh://deploy@depot.example.com",
        "host: npipe:////./pipe/docker",
        r"is not a Docker host",
    ),
    (
        "tcp port",
        "host: ssh://deploy@depot.example.com",
        "host: tcp://depot.example.com:70000",
        r"is not a Docker host",
    ),
    (
        "command in sshOpts",
        "host: ssh://deploy@depot.example.com",
        "host: ssh://deploy@depot.example.com\n    sshOpts: ['-oProxyCommand=sh -c id']",
        r"depot:docker\.sshOpts\[0\]: \[withheld\] is not an allowed ssh option \(ProxyCommand\)",
    ),
    (
        "empty build context",
        "discovery: ../discovery",
        "discovery: ''",
        r"depot:build\.contexts\.discovery: '' is not a path",
    ),
    (
        "empty dist path",
        "distPath: /srv/depot/console/dist",
        "distPath: ''",
        r"depot:console\.distPath: '' is not a path",
    ),
    (
        "relative dist path on a remote host",
        "distPath: /srv/depot/console/dist",
        "distPath: ../console/dist",
        r"depot:console\.distPath: '\.\./console/dist' is relative, but the Docker host "
        r"\(ssh://deploy@depot\.example\.com\) is another machine",
    ),
    (
        "relative sessions path on a remote host",
        "sessionsPath: /data/sessions",
        "sessionsPath: data/sessions",
        r"depot:console\.sessionsPath: 'data/sessions' is relative",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "message"), [pytest.param(o, n, m, id=c) for c, o, n, m in WRONG]
)
def test_a_value_that_cannot_be_right_is_refused(old: str, new: str, message: str) -> None:
    found = problems(prod_with(old, new))
    assert re.search(message, found), found


def test_nothing_is_registered_for_a_refused_value() -> None:
    raw = with_secrets(
        parse_stack_file(prod_with("[gpu, rtk]", "[gpu, rtk, gpu]").encode(), "Pulumi.prod.yaml")
    )
    recording = Recording(stack="prod")
    with pytest.raises(ConfigError, match=r"depot:profiles\[2\]"):
        record(deploy, stack="prod", config=raw, into=recording)
    assert recording.registrations == []


# --- properties: anything at all either loads or fails cleanly ---------------------------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["256m", "gpu", "rtk", "always", "on-failure:3", "0.5", "../x"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(max_size=12)
            | st.sampled_from(["memory", "cpus", "host", "ports", "console", "discovery"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)
KNOWN_KEYS = [
    "docker",
    "profiles",
    "restart",
    "limits",
    "logLevel",
    "publish",
    "build",
    "console",
    "images",
    "registry",
    "release",
    "data",
    "policy",
    "databasePassword",
    "nonsense",
]


def _problems_of(read: Callable[[], object]) -> str | None:
    """The message of the ConfigError ``read`` raises, or None; anything else propagates."""
    try:
        read()
    except ConfigError as error:
        return str(error)
    return None


def _assert_clean(raw: RawConfig) -> None:
    message = _problems_of(lambda: load_settings("prod", with_secrets(raw)))
    if message is not None:
        assert CANARY not in message
        assert all(line.startswith("Pulumi.prod.yaml") for line in message.splitlines())


def _assert_reads_cleanly(data: bytes) -> None:
    raw: list[RawConfig] = []
    message = _problems_of(lambda: raw.append(parse_stack_file(data, "Pulumi.prod.yaml")))
    if message is not None:
        assert all(line.startswith("Pulumi.prod.yaml") for line in message.splitlines())
    else:
        _assert_clean(raw[0])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KNOWN_KEYS), VALUES, max_size=6))
def test_any_value_at_any_key_loads_or_fails_with_one_line_per_problem(
    document: dict[str, Any],
) -> None:
    text = yaml.safe_dump({"config": {f"depot:{k}": v for k, v in document.items()}})
    _assert_reads_cleanly(text.encode())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_load_or_fail_with_one_line_per_problem(data: bytes) -> None:
    _assert_reads_cleanly(b"config:\n  " + data)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(KNOWN_KEYS), VALUES)
def test_a_secret_given_at_any_key_is_never_printed(key: str, value: Any) -> None:
    # As if `pulumi config set --secret depot:<key>` held the canary anywhere in its value.
    raw = RawConfig({f"depot:{key}": encode([value, CANARY])}, frozenset({f"depot:{key}"}))
    _assert_clean(raw)


# --- the command line and the engine's own encoding ---------------------------------------------


def test_an_unknown_profile_flag_is_a_usage_error_not_a_stack_file_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["plan", "--stack", "dev", "--profile", "cuda"])
    assert exit_.value.code == 2
    assert "argument --profile: invalid choice: 'cuda' (choose from 'gpu', 'rtk')" in (
        capsys.readouterr().err
    )


def test_a_profile_flag_given_twice_enables_it_once(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", "--stack", "dev", "--profile", "gpu", "--profile", "gpu"]) == 0
    assert "splat-worker" in capsys.readouterr().out


def test_a_base_ref_that_git_would_read_as_an_option_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["diff", "--base=--output=/tmp/depot-x", "--stack", "dev"]) == 2
    assert capsys.readouterr().err == "depot diff: '--output=/tmp/depot-x' is not a git ref\n"
    assert not Path("/tmp/depot-x").exists()


def test_engine_config_nested_beyond_reason_is_a_message() -> None:
    # `pulumi up` hands structured values as JSON; a value of 100,000 brackets is text to us.
    raw = RawConfig({"depot:profiles": "[" * 100_000})
    with pytest.raises(ConfigError) as error:
        load_settings("dev", raw)
    assert str(error.value).startswith("Pulumi.dev.yaml: depot:profiles: '[[[[")
    assert len(str(error.value)) < 300


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("depot:registry", {"address": "registry.example.com\n", "username": "deploy"}),
        ("depot:registry", {"address": "registry.example.com", "username": "deploy\n"}),
        ("depot:docker", {"host": "ssh://deploy@depot.example.com\n"}),
        ("depot:release", {"commit": "0123456789abcdef\n"}),
        ("depot:release", {"version": "1.4.0\n"}),
        ("depot:images", {"postgres": "postgres:17.2-alpine\n"}),
    ],
)
def test_a_trailing_newline_is_not_part_of_a_valid_value(key: str, value: Any) -> None:
    # `$` in a Python pattern matches before a final newline; a value with one would reach a
    # command line, an image reference or a file as two lines.
    shipped = read_stack_file("prod", PROJECT_DIR)
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_settings(
            "prod", RawConfig({**shipped.values, key: encode(value)}, shipped.secret_keys)
        )


def test_under_pulumi_a_config_error_is_a_run_error_pulumi_prints_without_a_traceback() -> None:
    raw = with_secrets(
        parse_stack_file(prod_with("[gpu, rtk]", "[gpu, rtk, gpu]").encode(), "Pulumi.prod.yaml")
    )
    with pytest.raises(pulumi.RunError) as error:
        record(deploy, stack="prod", config=raw)
    assert isinstance(error.value, ConfigError)
    assert str(error.value) == (
        "Pulumi.prod.yaml: depot:profiles[2]: 'gpu' lists a profile twice; list each once"
    )
