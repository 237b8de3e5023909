"""A one-line progress display for long commands: count, rate and ETA, on terminals only."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Redraws `\\r<count> papers  <rate>/s  ETA <eta>` at most a few times a second.

    Silent when the stream is not a terminal, so logs and pipes stay clean.
    """

    def __init__(self, total: int | None = None, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.total = total
        self.started = time.monotonic()
        self._last_draw = 0.0

    def __call__(self, done: int) -> None:
        """Report `done` items so far."""
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last_draw < 0.2:
            return
        self._last_draw = now
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        line = f"\r{done:>10,} papers  {rate:>8,.0f}/s"
        if self.total and rate > 0 and done <= self.total:
            line += f"  ETA {(self.total - done) / rate:>6.0f}s"
        self.stream.write(line)
        self.stream.flush()

    def close(self) -> None:
        """End the progress line."""
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
