"""How fast are the ``depot`` commands? Run with ``make bench``; prints one table.

1. ``depot plan --stack prod`` (config validation, components, recording, rendering) against
   registering the same provider resources directly with pulumi_docker, flat, under the same
   mocks: what our layers cost. Target: plan ≤ 1.5 x direct.
2. The plan of a synthetic depot of 20 and of 200 services: how it grows. Target: linear
   (200 ≤ 12 x 20).
Each figure is the best of several runs in this process, after one warm-up run: the least
disturbed by whatever else the machine does, which is what a ratio of two costs needs.
3. As whole processes: ``depot plan`` against a plain process registering the same resources
   (target: ≤ 1.3 x), and ``depot graph`` and ``depot compose`` of prod (bound: under 0.5 s
   each). Medians of alternated runs: process start and imports are what a user waits for.

The ratios are reported; the 0.5 s bound is asserted here (exit status 1 when a median
reaches it), not in the unit tier, where a timing depends on whoever else shares the cores
(tests/test_imports.py holds its cause instead: neither command loads the Pulumi SDK).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import cast

from bench_direct import direct_program  # beside this script (scripts/ is on sys.path)

from depot.catalog import (
    CONSOLE,
    POSTGRES,
    SERVICES,
    PulledImage,
    ServiceSpec,
)
from depot.config.engine import load_stack_settings
from depot.config.stack_file import stack_config
from depot.paths import PROJECT_ROOT
from depot.program import build_depot
from depot.recording import record
from depot.review.plan import plan_from, plan_stack
from depot.review.render import dumps
from depot.types import ServiceName

RUNS = 7


def best_seconds(action: Callable[[], object], runs: int = RUNS) -> float:
    action()  # warm-up: imports, caches
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return min(samples)


def synthetic_catalog(size: int) -> tuple[ServiceSpec, ...]:
    """``size`` services shaped like the depot's: postgres, then web services in chains of 3."""
    services = [POSTGRES]
    for index in range(size - 1):
        name = cast(ServiceName, f"svc-{index:03d}")
        previous = services[-1].name if index % 3 else POSTGRES.name
        services.append(
            replace(
                CONSOLE,
                name=name,
                image=PulledImage("nginx:1.27.3-alpine"),
                waits_for=(previous,),
                binds=(),
            )
        )
    return tuple(services)


def plan_synthetic(size: int) -> None:
    catalog = synthetic_catalog(size)

    def program() -> None:
        build_depot(load_stack_settings(), catalog)

    dumps(plan_from(record(program, stack="prod", config=stack_config("prod"))).to_json())


WHOLE_PROCESS_RUNS = 9


def whole_process_seconds() -> tuple[float, float]:
    """Medians of alternated runs: ``depot plan --stack prod`` as a command, and a plain Python
    process that imports the providers and registers the same resources under the same mocks.

    Alternated, so a slow patch of the machine hits both; the median, because a command's time
    includes process start, which is what a user waits for.
    """
    plan_command = [sys.executable, "-m", "depot", "plan", "--stack", "prod"]
    direct_command = [sys.executable, str(PROJECT_ROOT / "scripts" / "bench_direct.py")]
    plans: list[float] = []
    directs: list[float] = []
    for _ in range(WHOLE_PROCESS_RUNS):
        for command, samples in ((plan_command, plans), (direct_command, directs)):
            start = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=PROJECT_ROOT)  # noqa: S603 - our own interpreter
            samples.append(time.perf_counter() - start)
    return statistics.median(plans), statistics.median(directs)


COMMAND_BOUND_SECONDS = 0.5
"""``depot graph`` and ``depot compose`` of a stack, each as a whole process (issue 11)."""


def command_seconds() -> dict[str, float]:
    """Median of ``WHOLE_PROCESS_RUNS`` alternated runs of each command, as a user runs it."""
    commands = {
        name: [sys.executable, "-m", "depot", name, "--stack", "prod"]
        for name in ("graph", "compose")
    }
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(WHOLE_PROCESS_RUNS):
        for name, command in commands.items():
            start = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=PROJECT_ROOT)  # noqa: S603 - our own interpreter
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in samples.items()}


def main() -> int:
    plan = best_seconds(lambda: dumps(plan_stack("prod").to_json()))
    direct = best_seconds(lambda: record(direct_program, stack="prod", config=stack_config("prod")))
    small = best_seconds(lambda: plan_synthetic(20))
    large = best_seconds(lambda: plan_synthetic(200), runs=3)
    rows = [
        ("depot plan --stack prod", plan),
        ("direct pulumi_docker registration", direct),
        ("plan, synthetic depot of 20 services", small),
        ("plan, synthetic depot of 200 services", large),
    ]
    print(f"{'what':45} {'best of':>10}")
    for label, seconds in rows:
        print(f"{label:45} {seconds * 1000:8.1f} ms")
    print(f"plan / direct: {plan / direct:.2f} (target ≤ 1.5)")
    command, process = whole_process_seconds()
    print(
        f"as whole processes (median of {WHOLE_PROCESS_RUNS} alternated): depot plan "
        f"{command * 1000:.0f} ms, direct {process * 1000:.0f} ms, "
        f"ratio {command / process:.2f} (target ≤ 1.3)"
    )
    over = []
    for name, seconds in command_seconds().items():
        verdict = "ok" if seconds < COMMAND_BOUND_SECONDS else "OVER"
        print(
            f"depot {name} --stack prod as a whole process (median of {WHOLE_PROCESS_RUNS} "
            f"alternated): {seconds * 1000:.0f} ms (bound < {COMMAND_BOUND_SECONDS * 1000:.0f}) "
            f"{verdict}"
        )
        if seconds >= COMMAND_BOUND_SECONDS:
            over.append(name)
    print(f"200 / 20 services: {large / small:.2f} (target ≤ 12; linear is 10)")
    print(f"depot services: {len(SERVICES)}; runs per figure: {RUNS} (200 services: 3)")
    if over:
        print(f"over {COMMAND_BOUND_SECONDS} s: depot {', depot '.join(over)}", file=sys.stderr)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
