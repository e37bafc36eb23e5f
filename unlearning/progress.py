"""Progress reporting: long phases call a callback; the CLI draws a bar, the service stores phase and ETA."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

Progress = Callable[[str, int, int], None]  # (phase, done, total)


def report(progress: Progress | None, phase: str, done: int, total: int) -> None:
    if progress is not None:
        progress(phase, done, total)


class Cancelled(Exception):
    """Raised from a progress callback to stop a long computation between steps."""


class TerminalBar:
    """A one-line bar on stderr with percent and ETA, redrawn at most every 0.2 s per phase."""

    def __init__(self, label: str = "", stream=sys.stderr, enabled: bool | None = None) -> None:
        self.label = label
        self.stream = stream
        self.enabled = stream.isatty() if enabled is None else enabled
        self._phase = None
        self._start = 0.0
        self._last = 0.0

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if phase != self._phase:
            if self._phase is not None and self.enabled:
                self.stream.write("\n")
            self._phase, self._start, self._last = phase, now, 0.0
        if not self.enabled or (now - self._last < 0.2 and done < total):
            return
        self._last = now
        frac = done / total if total else 1.0
        elapsed = now - self._start
        eta = elapsed * (1 - frac) / frac if frac > 0 else float("nan")
        bar = "#" * int(30 * frac)
        prefix = f"{self.label} " if self.label else ""
        self.stream.write(f"\r{prefix}{phase:<12} [{bar:<30}] {100 * frac:5.1f}%  ETA {eta:6.1f}s")
        if done >= total:
            self.stream.write("\n")
            self._phase = None
        self.stream.flush()
