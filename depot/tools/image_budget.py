"""Hold the Rust services' images to the reference's promise of 10-20 MB.

``python -m depot.tools.image_budget --stack dev`` (``make image-budget``) asks the local Docker
engine for the size of each built image (``depot-<service>:<stack>``) and fails when one is over
budget. It needs an engine and images built by ``make up``; without them it says so and exits 0,
having checked nothing.

Expected size of a final stage: alpine 3.21 (about 7.8 MB) + ca-certificates (about 0.7 MB) +
the stripped, size-optimised binary (2-8 MB): 11-17 MB. The budget is the reference's upper bound.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Mapping

BUDGET_MB: Mapping[str, float] = {
    "discovery": 20,
    "dispatch": 20,
    "splat-worker": 20,
    "rtk-base": 20,
}
MB = 1_000_000  # as `docker image ls` counts


def over_budget(sizes: Mapping[str, int], budget: Mapping[str, float] = BUDGET_MB) -> list[str]:
    """One line per image (``sizes`` in bytes) larger than its budget."""
    return [
        f"depot-{service}: {size / MB:.1f} MB, over its {budget[service]:g} MB budget"
        for service, size in sorted(sizes.items())
        if size > budget[service] * MB
    ]


def engine_unavailable() -> str | None:
    """Why no Docker engine can be asked, or None when one answers."""
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    info = subprocess.run(
        ["docker", "info"],  # noqa: S607 - docker from PATH
        capture_output=True,
        check=False,
    )
    return "no Docker engine answers `docker info`" if info.returncode else None


def image_sizes(stack: str) -> dict[str, int]:
    """Bytes of each built image present on the engine (absent ones are left out)."""
    sizes = {}
    for service in BUDGET_MB:
        inspected = subprocess.run(  # noqa: S603 - fixed command, our own tag
            ["docker", "image", "inspect", "--format", "{{.Size}}", f"depot-{service}:{stack}"],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        )
        if inspected.returncode == 0:
            sizes[service] = int(inspected.stdout.strip())
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="image_budget")
    parser.add_argument("--stack", default="dev")
    stack = parser.parse_args(argv).stack
    reason = engine_unavailable()
    if reason:
        print(f"image budget: not checked: {reason}")
        return 0
    sizes = image_sizes(stack)
    if not sizes:
        print(f"image budget: not checked: no depot-*:{stack} images on this engine (make up)")
        return 0
    problems = over_budget(sizes)
    for service, size in sorted(sizes.items()):
        print(f"depot-{service}:{stack}: {size / MB:.1f} MB (budget {BUDGET_MB[service]:g} MB)")
    print("\n".join(problems) if problems else "image budget: every image within budget")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
