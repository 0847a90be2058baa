"""scripts/install-engine and .ci/run: Engine 26 from the machine's own Debian mirror, shell-clean.

The install itself needs root and apt (CI runs it); here its mirror reading runs on sources files
the test writes, and every shell script of the project passes shellcheck.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PROJECT_DIR

SCRIPT = PROJECT_DIR / "scripts" / "install-engine"
SHELL_SCRIPTS = sorted([*(PROJECT_DIR / "scripts").glob("*.sh"), SCRIPT, PROJECT_DIR / ".ci/run"])


def mirror_of(tmp_path: Path, *, deb822: str | None = None, one_line: str | None = None) -> str:
    """The mirror ``debian_mirror`` finds in the given sources files (the function alone)."""
    deb822_file, one_line_file = tmp_path / "debian.sources", tmp_path / "sources.list"
    if deb822 is not None:
        deb822_file.write_text(deb822)
    if one_line is not None:
        one_line_file.write_text(one_line)
    program = (
        f'eval "$(sed -n "/^debian_mirror()/,/^}}/p" {SCRIPT})"\n'
        f"DEB822_SOURCES={deb822_file} ONE_LINE_SOURCES={one_line_file} debian_mirror\n"
    )
    result = subprocess.run(
        ["bash", "-c", program], capture_output=True, text=True, check=True, timeout=30
    )
    return result.stdout.strip()


def test_the_mirror_is_the_deb822_sources_bookworm_uri_not_security(tmp_path: Path) -> None:
    sources = (
        "Types: deb\n# http://snapshot.example/archive\nURIs: http://mirror.example/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb\nURIs: http://security.example/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n"
    )
    assert mirror_of(tmp_path, deb822=sources) == "http://mirror.example/debian"


def test_a_deb822_stanza_may_name_its_suites_before_its_uri(tmp_path: Path) -> None:
    sources = (
        "Types: deb\nSuites: bookworm-security\nURIs: http://security.example/debian-security\n\n"
        "Types: deb\nSuites: bookworm\nURIs: http://mirror.example/debian\nComponents: main\n"
    )
    assert mirror_of(tmp_path, deb822=sources) == "http://mirror.example/debian"


def test_the_mirror_is_the_one_line_sources_bookworm_uri(tmp_path: Path) -> None:
    sources = (
        "deb http://security.example/debian-security bookworm-security main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main\n"
    )
    assert mirror_of(tmp_path, one_line=sources) == "http://mirror.example/debian"


def test_no_bookworm_source_gives_no_mirror(tmp_path: Path) -> None:
    assert mirror_of(tmp_path, one_line="deb http://mirror.example/debian sid main\n") == ""


def test_the_script_takes_docker_io_alone_from_trixie_without_recommends() -> None:
    text = SCRIPT.read_text()
    assert (
        "apt-get install -y -qq --no-install-recommends docker.io/trixie docker-cli/trixie "
        "shellcheck" in text
    )
    assert "Pin: release n=trixie\nPin-Priority: 100" in text
    assert "Signed-By: $KEYRING" in text
    # no mirror host is written into the project: it is read from the machine's sources
    assert "debian.org" not in text


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda path: path.name)
def test_every_shell_script_passes_shellcheck(script: Path) -> None:
    result = subprocess.run(
        ["shellcheck", str(script)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stdout
