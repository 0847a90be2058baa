"""ssh options a stack may pass to ``ssh``: an allowlist, read the way ssh reads its arguments.

``depot:docker.sshOpts`` reaches ``ssh`` on the machine that runs ``pulumi up`` (through the
provider, the docker CLI and the rotation commands). A stack file is input from whoever can open
a pull request, and ssh has many ways to run a program there (``ProxyCommand``, ``-F`` with a
config file of one's own, ``PKCS11Provider``, ``Match exec``, ...) or to open the host
(``LocalForward``, ``GatewayPorts``, ``StrictHostKeyChecking=no``). A blocklist misses the
option nobody listed, so only options that tune a connection are allowed, each with a value
checked for its kind, and everything the rest of the program sees is the normalised list
(``-oKeyword=value``, one argument each).

Nothing here imports pydantic or Pulumi: ``depot.types`` wraps the errors for the settings,
``depot.host.docker`` and the rotation command put the normalised list in front of ``ssh``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from depot.paths import normalised_path

MAX_OPTIONS = 32
MAX_PORT = 65535


class SshOptionError(ValueError):
    """An option ssh would be given that is not allowed; ``index``: its place in the list.

    ``rule`` never quotes the option's text: a refused option is not shown back (README).
    """

    def __init__(self, index: int, rule: str) -> None:
        super().__init__(rule)
        self.index = index
        self.rule = rule


# --- values -------------------------------------------------------------------------------------

Check = Callable[[str], str | None]
"""A value's check: the value as ssh will be given it, or None when it is not allowed."""


def _number(lowest: int, highest: int) -> Check:
    def check(value: str) -> str | None:
        # Digits only, and few: no sign, no unit suffix, no 5,000-digit number to convert.
        if not re.fullmatch(r"[0-9]{1,5}", value) or not lowest <= int(value) <= highest:
            return None
        return str(int(value))

    return check


def _one_of(*choices: str) -> Check:
    def check(value: str) -> str | None:
        return next((c for c in choices if c.lower() == value.lower()), None)

    return check


# A file of the user that runs `up`: absolute, or in their home. ssh expands `%` tokens and
# `${VARIABLE}` in these paths: a variable of that machine's environment (a passphrase, a token)
# would become part of a path ssh prints in its errors. Neither is allowed, nor quoting, spaces
# (ssh would read several files) or a `..` that climbs out of the folder named.
_SSH_FILE = re.compile(r"(/|~/)[A-Za-z0-9._+@/-]*")
# A known_hosts that keeps nothing (/dev/null) turns accept-new into no host key check at all.
_NO_KNOWN_HOSTS = ("/dev/", "/proc/", "/sys/")


def _ssh_file(value: str) -> str | None:
    if not _SSH_FILE.fullmatch(value):
        return None
    path = normalised_path(value)  # `~/.ssh//id/` → `~/.ssh/id`
    if path in ("/", "~") or ".." in path.split("/"):
        return None
    return path


def _known_hosts_file(value: str) -> str | None:
    path = _ssh_file(value)
    if path is None or path.startswith(_NO_KNOWN_HOSTS):
        return None
    return path


@dataclass(frozen=True)
class AllowedOption:
    """One keyword ssh may be given, and what its value may be (said in errors)."""

    keyword: str
    values: str
    check: Check
    repeatable: bool = False  # ssh tries every IdentityFile given; the others take the first


_YES_NO = "yes or no"
_FILE = "an absolute path or ~/path, without '..', '%', '$' or spaces"

ALLOWED_OPTIONS: tuple[AllowedOption, ...] = (
    AllowedOption("AddressFamily", "any, inet or inet6", _one_of("any", "inet", "inet6")),
    AllowedOption("BatchMode", _YES_NO, _one_of("yes", "no")),
    AllowedOption("Compression", _YES_NO, _one_of("yes", "no")),
    AllowedOption("ConnectionAttempts", "1-10", _number(1, 10)),
    AllowedOption("ConnectTimeout", "whole seconds, 1-3600", _number(1, 3600)),
    AllowedOption("IdentitiesOnly", _YES_NO, _one_of("yes", "no")),
    AllowedOption("IdentityFile", _FILE, _ssh_file, repeatable=True),
    AllowedOption(
        "LogLevel", "QUIET, FATAL, ERROR or INFO", _one_of("QUIET", "FATAL", "ERROR", "INFO")
    ),
    AllowedOption("Port", f"1-{MAX_PORT}", _number(1, MAX_PORT)),
    AllowedOption("ServerAliveCountMax", "1-100", _number(1, 100)),
    AllowedOption("ServerAliveInterval", "whole seconds, 0-3600", _number(0, 3600)),
    AllowedOption("StrictHostKeyChecking", "yes or accept-new", _one_of("yes", "accept-new")),
    AllowedOption("TCPKeepAlive", _YES_NO, _one_of("yes", "no")),
    AllowedOption("UserKnownHostsFile", _FILE + ", not under /dev", _known_hosts_file),
)
_BY_KEYWORD = {option.keyword.lower(): option for option in ALLOWED_OPTIONS}

# Short flags, as the option each one stands for: with a value (-p 2222, -i FILE) or fixed.
_FLAGS_WITH_VALUE = {"p": "Port", "i": "IdentityFile"}
_FIXED_FLAGS = {
    "4": ("AddressFamily", "inet"),
    "6": ("AddressFamily", "inet6"),
    "C": ("Compression", "yes"),
    "q": ("LogLevel", "QUIET"),
}

ALLOWED_SUMMARY = (
    ", ".join(option.keyword for option in ALLOWED_OPTIONS)
    + " (as -oKeyword=value or -o 'Keyword value'), and -p, -i, -4, -6, -C, -q"
)
"""What errors and the README say is allowed."""

# Every other flag ssh knows, and the keywords of ssh_config(5): a refused one is named in its
# error (from this list, never copied from the input); anything else is "not an ssh option".
_SSH_FLAGS_WITH_VALUE = frozenset("BbcDEeFIiJLlmOoPpQRSWw")
_SSH_FLAGS = frozenset("1246AaCfGgKkMNnqsTtVvXxYy") | _SSH_FLAGS_WITH_VALUE
_SSH_CONFIG_KEYWORDS = (
    "AddKeysToAgent AddressFamily BatchMode BindAddress BindInterface CanonicalDomains "
    "CanonicalizeFallbackLocal CanonicalizeHostname CanonicalizeMaxDots "
    "CanonicalizePermittedCNAMEs CASignatureAlgorithms CertificateFile ChannelTimeout "
    "ChallengeResponseAuthentication CheckHostIP Cipher Ciphers ClearAllForwardings "
    "Compression ConnectionAttempts ConnectTimeout ControlMaster ControlPath ControlPersist "
    "DynamicForward EnableEscapeCommandline EnableSSHKeysign EscapeChar ExitOnForwardFailure "
    "FingerprintHash ForkAfterAuthentication ForwardAgent ForwardX11 ForwardX11Timeout "
    "ForwardX11Trusted GatewayPorts GlobalKnownHostsFile GSSAPIAuthentication "
    "GSSAPIDelegateCredentials HashKnownHosts Host HostbasedAcceptedAlgorithms "
    "HostbasedAuthentication HostbasedKeyTypes HostKeyAlgorithms HostKeyAlias Hostname "
    "IdentitiesOnly IdentityAgent IdentityFile IgnoreUnknown Include IPQoS "
    "KbdInteractiveAuthentication KbdInteractiveDevices KexAlgorithms KnownHostsCommand "
    "LocalCommand LocalForward LogLevel LogVerbose MACs Match NoHostAuthenticationForLocalhost "
    "NumberOfPasswordPrompts ObscureKeystrokeTiming PasswordAuthentication PermitLocalCommand "
    "PermitRemoteOpen PKCS11Provider Port PreferredAuthentications Protocol ProxyCommand "
    "ProxyJump ProxyUseFdpass PubkeyAcceptedAlgorithms PubkeyAcceptedKeyTypes "
    "PubkeyAuthentication RekeyLimit RemoteCommand RemoteForward RequestTTY RequiredRSASize "
    "RevokedHostKeys SecurityKeyProvider SendEnv ServerAliveCountMax ServerAliveInterval "
    "SessionType SetEnv SmartcardDevice StdinNull StreamLocalBindMask StreamLocalBindUnlink "
    "StrictHostKeyChecking SyslogFacility TCPKeepAlive Tag Tunnel TunnelDevice UpdateHostKeys "
    "UseKeychain User UserKnownHostsFile VerifyHostKeyDNS VisualHostKey XAuthLocation"
)
_SSH_KEYWORDS = {keyword.lower(): keyword for keyword in _SSH_CONFIG_KEYWORDS.split()}
_KEYWORD_AND_VALUE = re.compile(r"\s*(?P<keyword>[A-Za-z0-9]+)(?:\s*=\s*|\s+)(?P<value>.*)")


def _not_allowed(index: int, name: str | None) -> SshOptionError:
    named = f" ({name})" if name else ""
    return SshOptionError(
        index,
        f"is not an allowed ssh option{named}; allowed: {ALLOWED_SUMMARY}. Anything else "
        "belongs in ~/.ssh/config on the machine that runs `pulumi up`, not in a stack file",
    )


def _setting(index: int, keyword: str, value: str) -> tuple[str, str]:
    """``keyword`` and ``value`` checked: the option's canonical keyword and value."""
    option = _BY_KEYWORD.get(keyword.lower())
    if option is None:
        raise _not_allowed(index, _SSH_KEYWORDS.get(keyword.lower()))
    checked = option.check(value)
    if checked is None:
        raise SshOptionError(index, f"is not a value {option.keyword} allows; use {option.values}")
    return option.keyword, checked


def _keyword_setting(index: int, text: str) -> tuple[str, str]:
    """What follows ``-o``: ``Keyword=value`` or ``Keyword value``, as ssh_config reads it."""
    match = _KEYWORD_AND_VALUE.fullmatch(text)
    if match is None:
        # A keyword alone (`-o ProxyCommand`) is still named; anything else is not an option.
        keyword = text.strip()
        raise _not_allowed(index, _SSH_KEYWORDS.get(keyword.lower()))
    return _setting(index, match["keyword"], match["value"])


def _settings_of(arguments: Sequence[str]) -> list[tuple[int, str, str]]:
    """(index, keyword, value) for each option in ``arguments``, as ssh's getopt reads them."""
    found: list[tuple[int, str, str]] = []
    index = 0
    while index < len(arguments):
        argument, start = arguments[index], index
        if len(argument) < 2 or argument[0] != "-" or argument == "--":
            raise SshOptionError(index, "is not an ssh option; use e.g. -oConnectTimeout=10")
        position = 1
        while position < len(argument):  # flags may be grouped, as in `-4Cp2222`
            flag = argument[position]
            position += 1
            if flag in _FIXED_FLAGS:
                found.append((start, *_FIXED_FLAGS[flag]))
                continue
            if flag not in ("o", *_FLAGS_WITH_VALUE):
                name = f"-{flag}" if flag in _SSH_FLAGS else None
                raise _not_allowed(start, name)
            value = argument[position:]
            if not value:  # the value is the next argument
                index += 1
                if index >= len(arguments):
                    raise SshOptionError(start, f"ends with -{flag}, which needs a value after it")
                value = arguments[index]
            if flag == "o":
                found.append((index, *_keyword_setting(index, value)))
            else:
                found.append((index, *_setting(index, _FLAGS_WITH_VALUE[flag], value)))
            break
        index += 1
    return found


def normalise_ssh_options(arguments: Sequence[str]) -> tuple[str, ...]:
    """``arguments`` as allowed ``-oKeyword=value`` options, or ``SshOptionError``.

    Read as ssh reads its command line: ``-oKey=value``, ``-o Key=value``, ``-o 'Key value'``,
    short flags alone, grouped or with their value attached (``-p2222``); keywords in any case.
    """
    if len(arguments) > MAX_OPTIONS:
        raise SshOptionError(MAX_OPTIONS, f"holds more than {MAX_OPTIONS} arguments")
    for index, argument in enumerate(arguments):
        if not argument or any(ord(c) < 32 or ord(c) == 127 for c in argument):
            raise SshOptionError(index, "is not an ssh option; use one argument on one line")
    seen: set[str] = set()
    normalised: list[str] = []
    for index, keyword, value in _settings_of(arguments):
        if keyword in seen and not _BY_KEYWORD[keyword.lower()].repeatable:
            # ssh would take the first and ignore the rest without a word: say so here.
            raise SshOptionError(index, f"sets {keyword} a second time; keep one")
        seen.add(keyword)
        normalised.append(f"-o{keyword}={value}")
    return tuple(normalised)


def ssh_wrapper(real_ssh: str, options: Sequence[str]) -> str:
    """A ``/bin/sh`` script that runs ``real_ssh`` (a shell word) with ``options`` first.

    The docker CLI has no flag for ssh options: it runs ``ssh`` from ``PATH``. A folder that
    holds this script as ``ssh``, first on ``PATH``, gives every ssh it runs the stack's options
    (ssh takes the first value of an option, so they win over the CLI's own defaults).
    """
    return f'#!/bin/sh\nexec {real_ssh} {shlex.join(options)} "$@"\n'
