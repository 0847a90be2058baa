"""Tests that mostly wait, run in threads started all at once.

A module writes each such test as an ordinary function and registers it; its pytest test only
waits for that function's outcome. The first wait starts every one the session runs, each in a
thread of its own, so their waits overlap instead of adding up; a failure is raised by its own
test, as it would have been (the assertions run unchanged in the thread). The tests of a module
are one xdist group, so a single worker runs them all (``--dist loadgroup``, pyproject.toml).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor


class Together:
    """Runs, on the first ``wait``, everything ``prepare`` returns (made then, in the caller's
    thread), each in a thread; ``wait(key)`` gives that one's outcome."""

    def __init__(
        self, prepare: Callable[[], Mapping[Hashable, Callable[[], None]]], timeout: float
    ) -> None:
        self.prepare, self.timeout = prepare, timeout
        self.pool: ThreadPoolExecutor | None = None
        self.futures: dict[Hashable, Future[None]] = {}

    def wait(self, key: Hashable) -> None:
        """``key``'s outcome: returns, or raises what it raised (or TimeoutError)."""
        if self.pool is None:
            started = self.prepare()
            self.pool = ThreadPoolExecutor(max_workers=max(1, len(started)))
            self.futures = {each: self.pool.submit(run) for each, run in started.items()}
        self.futures[key].result(timeout=self.timeout)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
