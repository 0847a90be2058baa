"""`depot:docker.sshOpts`: an allowlist read as ssh reads it, and the same options everywhere.

Read as ssh's getopt and ssh_config read them (`-oKey=value`, `-o 'Key value'`, grouped short
flags, keywords in any case), only options that tune a connection pass, normalised to
`-oKeyword=value`; anything else is refused without being shown back. Every process that runs
ssh against the stack's host — the provider, each `depot` command through the docker CLI or
Compose, the rotation commands of `pulumi up` — gets exactly those options; a stand-in `ssh` on
PATH records what it was given.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from depot.cli import main
from depot.components.rotation import with_ssh_options
from depot.config import ConfigError, RawConfig, load_settings
from depot.config.stack_file import encode, parse_stack_file
from depot.host.docker import DockerCli
from depot.host.rotate import _compose_run
from depot.outputs.secret_files import init_secret_files
from depot.program import deploy
from depot.recording import Recording, record
from depot.resource_types import COMMAND
from depot.ssh_options import ALLOWED_OPTIONS, SshOptionError, normalise_ssh_options
from tests.conftest import PROJECT_DIR, run_stack
from tests.conftest import stack_config as shipped_with

HOST = "ssh://deploy@depot.example.com"

# --- the grammar ----------------------------------------------------------------------------

ACCEPTED: list[tuple[list[Any], list[str]]] = [
    (["-oConnectTimeout=10"], ["-oConnectTimeout=10"]),
    (["-o", "connecttimeout=10"], ["-oConnectTimeout=10"]),
    (["-o", "ConnectTimeout 10"], ["-oConnectTimeout=10"]),
    (["-o", "ConnectTimeout = 10"], ["-oConnectTimeout=10"]),
    (["-oCONNECTTIMEOUT 010"], ["-oConnectTimeout=10"]),
    (["-p", "2222"], ["-oPort=2222"]),
    (["-p", 2222], ["-oPort=2222"]),  # YAML reads `[-p, 2222]` with a number in it
    (["-p2222"], ["-oPort=2222"]),
    (["-i", "~/.ssh/deploy"], ["-oIdentityFile=~/.ssh/deploy"]),
    (["-i/keys//deploy/./id/"], ["-oIdentityFile=/keys/deploy/id"]),
    (["-oIdentityFile=/a", "-i", "/b"], ["-oIdentityFile=/a", "-oIdentityFile=/b"]),
    (
        ["-4Cq"],
        ["-oAddressFamily=inet", "-oCompression=yes", "-oLogLevel=QUIET"],
    ),
    (["-6Cp22"], ["-oAddressFamily=inet6", "-oCompression=yes", "-oPort=22"]),
    (["-oStrictHostKeyChecking=ACCEPT-NEW"], ["-oStrictHostKeyChecking=accept-new"]),
    (["-o", "UserKnownHostsFile ~/.ssh/depot_known_hosts"],
     ["-oUserKnownHostsFile=~/.ssh/depot_known_hosts"]),
    (
        ["-oServerAliveInterval=30", "-oServerAliveCountMax=3", "-oTCPKeepAlive=yes",
         "-oConnectionAttempts=2", "-oBatchMode=yes", "-oIdentitiesOnly=yes"],
        ["-oServerAliveInterval=30", "-oServerAliveCountMax=3", "-oTCPKeepAlive=yes",
         "-oConnectionAttempts=2", "-oBatchMode=yes", "-oIdentitiesOnly=yes"],
    ),
]  # fmt: skip


@pytest.mark.parametrize(("given_", "normalised"), ACCEPTED)
def test_an_allowed_option_is_read_as_ssh_reads_it_and_normalised(
    given_: list[Any], normalised: list[str]
) -> None:
    settings_ = load_settings("prod", _prod({"host": HOST, "sshOpts": given_}))
    assert list(settings_.docker.ssh_opts) == normalised


REFUSED: list[tuple[list[str], int, str]] = [
    # Each runs a program where `pulumi up` runs, or loads a library there.
    (["-F", "ops/ssh_config"], 0, r"\(-F\)"),
    (["-Fops/ssh_config"], 0, r"\(-F\)"),
    (["-4F", "ops/ssh_config"], 0, r"\(-F\)"),
    (["-oProxyCommand=sh -c id"], 0, r"\(ProxyCommand\)"),
    (["-o", "proxycommand sh -c id"], 1, r"\(ProxyCommand\)"),
    (["-o", "ProxyCommand"], 1, r"\(ProxyCommand\)"),
    (["-oPKCS11Provider=/tmp/x.so"], 0, r"\(PKCS11Provider\)"),
    (["-oSecurityKeyProvider=/tmp/x.so"], 0, r"\(SecurityKeyProvider\)"),
    (["-oKnownHostsCommand=/bin/id"], 0, r"\(KnownHostsCommand\)"),
    (["-oLocalCommand=id", "-oPermitLocalCommand=yes"], 0, r"\(LocalCommand\)"),
    (["-oMatch=exec id"], 0, r"\(Match\)"),
    (["-oInclude=/tmp/x"], 0, r"\(Include\)"),
    (["-oRemoteCommand=id"], 0, r"\(RemoteCommand\)"),
    # Each opens the host, or the connection, to others.
    (["-oGatewayPorts=yes", "-oLocalForward=0.0.0.0:2375:/var/run/docker.sock"], 0,
     r"\(GatewayPorts\)"),
    (["-oLocalForward=0.0.0.0:2375:/var/run/docker.sock"], 0, r"\(LocalForward\)"),
    (["-L", "0.0.0.0:2375:/var/run/docker.sock"], 0, r"\(-L\)"),
    (["-R", "2375:/var/run/docker.sock"], 0, r"\(-R\)"),
    (["-D", "1080"], 0, r"\(-D\)"),
    (["-A"], 0, r"\(-A\)"),
    (["-oForwardAgent=yes"], 0, r"\(ForwardAgent\)"),
    (["-J", "jump.example.com"], 0, r"\(-J\)"),
    (["-oProxyJump=jump.example.com"], 0, r"\(ProxyJump\)"),
    (["-E", "/tmp/ssh.log"], 0, r"\(-E\)"),
    (["-oControlPath=/tmp/x", "-oControlMaster=auto"], 0, r"\(ControlPath\)"),
    (["-oUser=root"], 0, r"\(User\)"),
    (["-oStrictHostKeyChecking=no"], 0, r"StrictHostKeyChecking allows; use yes or accept-new"),
    (["-oStrictHostKeyChecking", "no"], 0, r"\(StrictHostKeyChecking\)"),
    (["-oUserKnownHostsFile=/dev/null"], 0, r"UserKnownHostsFile allows"),
    (["-oUserKnownHostsFile=none"], 0, r"UserKnownHostsFile allows"),
    (["-oSomethingNew=yes"], 0, r"is not an allowed ssh option; allowed: "),
    # Values: a file ssh expands (`${VAR}`, `%u`), climbs out of, or reads as an option.
    (["-oIdentityFile=${PULUMI_CONFIG_PASSPHRASE}"], 0, r"IdentityFile allows"),
    (["-i", "/home/%u/key"], 1, r"IdentityFile allows"),
    (["-i", "../key"], 1, r"IdentityFile allows"),
    (["-i", "/keys/../etc/shadow"], 1, r"IdentityFile allows"),
    (["-i", "relative/key"], 1, r"IdentityFile allows"),
    (["-i", "-oProxyCommand=id"], 1, r"IdentityFile allows"),
    (["-i", "/a b"], 1, r"IdentityFile allows"),
    (["-i", "~/."], 1, r"IdentityFile allows"),
    (["-oConnectTimeout=abc"], 0, r"ConnectTimeout allows; use whole seconds, 1-3600"),
    (["-oConnectTimeout=0"], 0, r"ConnectTimeout allows"),
    (["-oConnectTimeout=10s"], 0, r"ConnectTimeout allows"),
    (["-oConnectTimeout=" + "9" * 5000], 0, r"ConnectTimeout allows"),
    (["-oPort=70000"], 0, r"Port allows; use 1-65535"),
    (["-oServerAliveCountMax=-1"], 0, r"ServerAliveCountMax allows"),
    # Not options at all, or not one argument on one line.
    (["-p"], 0, r"ends with -p, which needs a value after it"),
    (["-o"], 0, r"ends with -o"),
    (["depot.example.com"], 0, r"is not an ssh option"),
    (["--"], 0, r"is not an ssh option"),
    ([""], 0, r"is not an ssh option"),
    (["-oPort=22\n-oProxyCommand=id"], 0, r"is not an ssh option; use one argument on one line"),
    (["-oConnectTimeout=5", "-oconnecttimeout=6"], 1, r"sets ConnectTimeout a second time"),
    (["-oPort=22", "-p", "23"], 2, r"sets Port a second time"),
]  # fmt: skip


@pytest.mark.parametrize(("given_", "index", "rule"), REFUSED)
def test_anything_else_is_refused_at_its_place_without_being_shown(
    given_: list[str], index: int, rule: str
) -> None:
    message = _problem({"host": HOST, "sshOpts": given_})
    assert message.startswith(f"Pulumi.prod.yaml: depot:docker.sshOpts[{index}]: [withheld] ")
    assert re.search(rule, message), message
    assert len(message.splitlines()) == 1
    for argument in given_:
        # A bare keyword or flag (`ProxyCommand`, `-p`) is named by design; values never are.
        if not re.fullmatch(r"-?[A-Za-z0-9]*", argument):
            assert argument not in message


def test_a_refused_option_names_what_is_allowed_and_where_it_is_in_the_file() -> None:
    document = (PROJECT_DIR / "Pulumi.prod.yaml").read_text()
    old = "host: ssh://deploy@depot.example.com"
    assert old in document
    document = document.replace(old, old + "\n    sshOpts: [-oConnectTimeout=5, -F, ops/ssh]")
    raw = parse_stack_file(document.encode(), "Pulumi.prod.yaml")
    with pytest.raises(ConfigError) as error:
        load_settings("prod", raw)
    message = str(error.value)
    line = document.splitlines().index("    sshOpts: [-oConnectTimeout=5, -F, ops/ssh]") + 1
    assert message == (
        f"Pulumi.prod.yaml:{line}:35: depot:docker.sshOpts[1]: [withheld] is not an allowed ssh "
        "option (-F); allowed: AddressFamily, BatchMode, Compression, ConnectionAttempts, "
        "ConnectTimeout, IdentitiesOnly, IdentityFile, LogLevel, Port, ServerAliveCountMax, "
        "ServerAliveInterval, StrictHostKeyChecking, TCPKeepAlive, UserKnownHostsFile (as "
        "-oKeyword=value or -o 'Keyword value'), and -p, -i, -4, -6, -C, -q. Anything else "
        "belongs in ~/.ssh/config on the machine that runs `pulumi up`, not in a stack file"
    )


@pytest.mark.parametrize("value", ["-p 7345", {"p": 7345}, [True], [["-p", "7345"]], [None]])
def test_sshopts_that_is_no_list_of_arguments_is_refused_unshown(value: Any) -> None:
    message = _problem({"host": HOST, "sshOpts": value})
    assert message.startswith("Pulumi.prod.yaml: depot:docker.sshOpts")
    assert "[withheld] is not a list of ssh options" in message
    assert "7345" not in message


def test_too_many_arguments_are_refused() -> None:
    message = _problem({"host": HOST, "sshOpts": ["-C"] * 33})
    assert "depot:docker.sshOpts[32]: [withheld] holds more than 32 arguments" in message


def test_the_docker_provider_is_given_the_normalised_options() -> None:
    recording = run_stack(
        "prod", {"depot:docker": {"host": HOST, "sshOpts": ["-i", "/key", "-o", "port 2222"]}}
    )
    provider = recording.named("docker", "pulumi:providers:docker")
    assert json.loads(provider.inputs["sshOpts"]) == ["-oIdentityFile=/key", "-oPort=2222"]


@pytest.mark.parametrize(
    "host",
    [
        "ssh://-deploy@depot.example.com",  # would reach ssh as the option -d…
        "ssh://-l@depot.example.com",
        "ssh://deploy@-depot.example.com",
        "ssh://deploy@-oPort",
        "ssh://deploy@depot.example.com-",
        "tcp://-depot.example.com:2376",
    ],
)
def test_a_docker_host_whose_user_or_host_starts_like_an_option_is_refused(host: str) -> None:
    message = _problem({"host": host})
    assert message.startswith("Pulumi.prod.yaml: depot:docker.host: ")
    assert "is not a Docker host" in message


# --- whatever is refused is never shown, and nothing is registered ---------------------------

MARK = "Q7zXv"  # in every generated value; in no rule, key or allowed keyword
_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-/", max_size=12)
_ANY = st.text(max_size=20)
_REFUSED_KEYWORDS = [
    "ProxyCommand", "PKCS11Provider", "LocalForward", "RemoteForward", "GatewayPorts", "Include",
    "SecurityKeyProvider", "ProxyJump", "KnownHostsCommand", "Match", "LocalCommand",
    "RemoteCommand", "ControlPath", "User", "Hostname", "ForwardAgent", "SendEnv", "SetEnv",
    "Unknown", "proxycommand",
]  # fmt: skip
_KEYWORDS_WITH_CHECKED_VALUES = [option.keyword for option in ALLOWED_OPTIONS]


def _marked(text: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(text, text).map(lambda parts: f"{parts[0]}{MARK}{parts[1]}")


_ALLOWED_ARGUMENTS = st.one_of(
    st.just(["-oConnectTimeout=10"]),
    st.just(["-p", "2222"]),
    st.just(["-4C"]),
    _marked(st.just("")).map(lambda v: ["-i", f"/keys/{v}"]),
    _marked(_WORD.filter(lambda w: ".." not in w)).map(lambda v: [f"-oIdentityFile=~/{v}x"]),
)
_REFUSED_ARGUMENTS = st.one_of(
    st.tuples(st.sampled_from(_REFUSED_KEYWORDS), _marked(_ANY)).flatmap(
        lambda kv: st.sampled_from(
            [[f"-o{kv[0]}={kv[1]}"], ["-o", f"{kv[0]} {kv[1]}"], [f"-o{kv[0]} {kv[1]}"]]
        )
    ),
    st.tuples(st.sampled_from(list("FJLRDWESwbcBIlmOQ")), _marked(_ANY)).flatmap(
        lambda fv: st.sampled_from([[f"-{fv[0]}", fv[1]], [f"-{fv[0]}{fv[1]}"]])
    ),
    st.tuples(st.sampled_from(_KEYWORDS_WITH_CHECKED_VALUES), _marked(_ANY)).map(
        lambda kv: [f"-o{kv[0]}={kv[1]}"]
    ),
    _marked(_WORD).map(lambda v: ["-oIdentityFile=/keys/../" + v]),
    _marked(_WORD).map(lambda v: ["-i", "/keys/${" + v + "}"]),
    _marked(_ANY).map(lambda v: [v]),  # anything at all where an option should be
)


def _flat(parts: Sequence[Sequence[str]]) -> list[str]:
    return [argument for part in parts for argument in part]


OPTION_LISTS_WITH_A_REFUSED_ONE = st.tuples(
    st.lists(_ALLOWED_ARGUMENTS, max_size=3),
    _REFUSED_ARGUMENTS,
    st.lists(st.one_of(_ALLOWED_ARGUMENTS, _REFUSED_ARGUMENTS), max_size=3),
).map(lambda parts: [*_flat(parts[0]), *parts[1], *_flat(parts[2])])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPTION_LISTS_WITH_A_REFUSED_ONE)
def test_whatever_is_refused_no_value_of_it_is_shown_and_nothing_is_registered(
    options: list[str],
) -> None:
    raw = _prod({"host": HOST, "sshOpts": options})
    recording = Recording(stack="prod")
    with pytest.raises(ConfigError) as error:
        record(deploy, stack="prod", config=raw, into=recording)
    message = str(error.value)
    assert MARK not in message
    assert message.startswith("Pulumi.prod.yaml: depot:docker.sshOpts")
    assert len(message.splitlines()) == 1
    assert recording.registrations == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_ALLOWED_ARGUMENTS, _REFUSED_ARGUMENTS), max_size=5).map(_flat))
def test_what_passes_is_allowed_normalised_and_stays_as_it_is(options: list[str]) -> None:
    try:
        normalised = normalise_ssh_options(options)
    except SshOptionError:
        return
    keywords = {option.keyword for option in ALLOWED_OPTIONS}
    for option in normalised:
        match = re.fullmatch(r"-o(?P<keyword>[A-Za-z]+)=(?P<value>\S+)", option)
        assert match is not None, option
        assert match["keyword"] in keywords, option
    assert normalise_ssh_options(normalised) == normalised


# --- every process that runs ssh gets exactly the allowed options ---------------------------

# What the docker CLI (and Compose) does for an ssh:// host: run `ssh` from PATH with its own
# arguments (as docker 28 runs it), then fail — no engine here.
FAKE_DOCKER = """#!/bin/sh
case "$DOCKER_HOST" in
ssh://*)
  rest=${DOCKER_HOST#ssh://}
  ssh -o ConnectTimeout=30 -T -l "${rest%%@*}" -- "${rest#*@}" docker system dial-stdio
  ;;
esac
echo "fake docker: no engine here" >&2
exit "${FAKE_DOCKER_STATUS:-1}"
"""
FAKE_SSH = """import json, os, sys
with open(os.environ["FAKE_SSH_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
sys.exit(255)
"""
DOCKERS_OWN = [
    "-o", "ConnectTimeout=30", "-T", "-l", "deploy", "--", "depot.example.com",
    "docker", "system", "dial-stdio",
]  # fmt: skip
GIVEN = ["-o", "ConnectTimeout 5", "-i", "~/.ssh//deploy", "-4"]
NORMALISED = ["-oConnectTimeout=5", "-oIdentityFile=~/.ssh/deploy", "-oAddressFamily=inet"]


@pytest.fixture
def ssh_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in ``docker`` and ``ssh`` first on PATH; the file ssh logs its argv to."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "ssh").write_text(f"#!{sys.executable}\n{FAKE_SSH}")
    for program in ("docker", "ssh"):
        (bin_dir / program).chmod(stat.S_IRWXU)
    log = tmp_path / "ssh.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SSH_LOG", str(log))
    return log


def _ssh_runs(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _on_the_ssh_host(monkeypatch: pytest.MonkeyPatch, ssh_opts: list[str]) -> None:
    """Every `depot` command reads the dev stack on an ssh host with ``ssh_opts``."""
    config = shipped_with(
        "dev",
        {
            "depot:docker": {"host": HOST, "sshOpts": ssh_opts},
            "depot:console": {"distPath": "/srv/depot/dist", "sessionsPath": "/srv/sessions"},
        },
    )
    monkeypatch.setattr("depot.config.stack_file.stack_config", lambda *_args, **_kw: config)


COMMANDS = [
    ["doctor", "--stack", "dev"],
    ["drift", "--stack", "dev"],
    ["rotate", "database-password", "--dir", "{tmp}"],
    ["backup", "--stack", "dev"],
    ["backups", "--stack", "dev"],
    ["restore", "--stack", "dev", "--dry-run"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=[a[0] for a in COMMANDS])
def test_each_command_gives_ssh_exactly_the_allowed_options(
    argv: list[str],
    ssh_log: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _on_the_ssh_host(monkeypatch, GIVEN)
    init_secret_files(tmp_path)  # what `depot rotate` rotates
    status = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    capsys.readouterr()
    assert status != 0  # no engine answers: each says so in its own way
    runs = _ssh_runs(ssh_log)
    assert runs, "ssh never ran"
    assert all(run == [*NORMALISED, *DOCKERS_OWN] for run in runs), runs


@pytest.mark.parametrize("argv", COMMANDS, ids=[a[0] for a in COMMANDS])
def test_a_refused_option_reaches_no_process(
    argv: list[str],
    ssh_log: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _on_the_ssh_host(monkeypatch, ["-oConnectTimeout=5", "-F", "ops/ssh_config"])
    init_secret_files(tmp_path)
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert "depot:docker.sshOpts[1]: [withheld] is not an allowed ssh option (-F)" in err
    assert "ops/ssh_config" not in err
    assert _ssh_runs(ssh_log) == []


def test_doctor_names_the_ssh_command_the_cli_runs(
    ssh_log: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _on_the_ssh_host(monkeypatch, ["-p", "2222", *GIVEN])
    assert main(["doctor", "--stack", "dev"]) == 1
    out = capsys.readouterr().out
    assert (
        "check that `ssh -oPort=2222 -oConnectTimeout=5 '-oIdentityFile=~/.ssh/deploy' "
        "-oAddressFamily=inet deploy@depot.example.com docker info` works without a prompt"
    ) in out


def test_compose_is_run_with_the_options_too(ssh_log: Path) -> None:
    cli = DockerCli(HOST, ssh_options=tuple(NORMALISED))
    assert _compose_run(cli, ["docker", "compose", "up", "--detach", "dispatch"], 60) is not None
    assert _ssh_runs(ssh_log) == [[*NORMALISED, *DOCKERS_OWN]]


def test_a_local_host_or_no_options_leaves_path_alone(ssh_log: Path) -> None:
    for cli in (DockerCli(HOST), DockerCli(ssh_options=tuple(NORMALISED))):
        with cli.environment() as env:
            assert env["PATH"] == os.environ["PATH"]


def test_the_wrapper_folder_is_private_and_gone_afterwards(ssh_log: Path) -> None:
    with DockerCli(HOST, ssh_options=tuple(NORMALISED)).environment() as env:
        folder = Path(env["PATH"].split(os.pathsep)[0])
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert stat.S_IMODE((folder / "ssh").stat().st_mode) == 0o700
        assert env["DOCKER_HOST"] == HOST
    assert not folder.exists()


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI on this machine")
def test_the_real_docker_cli_runs_the_wrapped_ssh(tmp_path: Path) -> None:
    # The CLI's own connection helper, not a stand-in: it looks `ssh` up on PATH. The stand-in
    # ssh fails at once, so nothing connects anywhere.
    docker = shutil.which("docker")
    assert docker is not None
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(f"#!{sys.executable}\n{FAKE_SSH}")
    (bin_dir / "ssh").chmod(stat.S_IRWXU)
    log = tmp_path / "ssh.log"
    environ = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    cli = DockerCli(HOST, timeout=30, ssh_options=tuple(NORMALISED))
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {**environ, "FAKE_SSH_LOG": str(log)}.items():
            patch.setenv(key, value)
        result = cli.run("info", "--format", "{{json .ServerVersion}}")
    assert result.returncode != 0
    runs = _ssh_runs(log)
    assert runs
    assert all(run[: len(NORMALISED)] == NORMALISED for run in runs), runs


def test_the_rotation_command_runs_docker_with_the_options(
    ssh_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recording = run_stack("prod", {"depot:docker": {"host": HOST, "sshOpts": GIVEN}})
    rotation = next(r for r in recording.of_type(COMMAND) if "postgres" in r.inputs["create"])
    monkeypatch.setenv("FAKE_DOCKER_STATUS", "0")
    # As `command.local.Command` runs it: `/bin/sh -c`, its environment, the password on stdin.
    completed = subprocess.run(
        ["/bin/sh", "-c", rotation.inputs["create"]],
        input="ALTER ROLE …\n",
        env={**os.environ, **rotation.inputs["environment"]},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert _ssh_runs(ssh_log) == [[*NORMALISED, *DOCKERS_OWN]]


def test_a_rotation_on_a_local_host_or_without_options_is_the_plain_line() -> None:
    line = "docker exec --interactive depot-grafana grafana cli"
    assert with_ssh_options(line, docker_host=HOST, ssh_options=()) == line
    local = "unix:///var/run/docker.sock"
    assert with_ssh_options(line, docker_host=local, ssh_options=tuple(NORMALISED)) == line


# --- helpers --------------------------------------------------------------------------------


def _prod(docker: Any) -> RawConfig:
    shipped = shipped_with("prod")
    secrets = {
        "depot:databasePassword": "d" * 24,
        "depot:grafanaAdminPassword": "g" * 24,
    }
    return RawConfig(
        {**shipped.values, "depot:docker": encode(docker), **secrets},
        shipped.secret_keys | frozenset(secrets),
    )


def _problem(docker: Any) -> str:
    with pytest.raises(ConfigError) as error:
        load_settings("prod", _prod(docker))
    return str(error.value)
