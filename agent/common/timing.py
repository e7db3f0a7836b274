"""Stage timings: a stopwatch whose marks become the ``timings`` JSON field."""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator


class Stopwatch:
    """Records named durations (seconds) and marks relative to a start time."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.timings: dict[str, float] = {}

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def mark(self, name: str, once: bool = True) -> None:
        """Store seconds since start under ``name`` (first call wins when ``once``)."""
        if not (once and name in self.timings):
            self.timings[name] = round(self.now(), 4)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - t, 4)
