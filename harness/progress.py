"""What a person watching a run sees: a live status line on a terminal, plain periodic
lines otherwise (CI logs, pipes)."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any


class Progress:
    def __init__(self, enabled: bool | None = None, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = True if enabled is None else enabled
        self.live = self.enabled and self.stream.isatty()
        self.nemesis_state = "none"
        self._status_shown = False

    def set_nemesis_state(self, text: str) -> None:
        self.nemesis_state = text

    def line(self, text: str) -> None:
        """A message that stays on screen."""
        if not self.enabled:
            return
        if self._status_shown:
            self.stream.write("\r\033[K")
            self._status_shown = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def status(self, text: str) -> None:
        """The live line on a terminal; elsewhere, a plain line."""
        if not self.enabled:
            return
        if self.live:
            self.stream.write("\r\033[K" + text)
            self._status_shown = True
            self.stream.flush()
        else:
            self.line(text)

    def finish(self) -> None:
        if self._status_shown:
            self.stream.write("\n")
            self.stream.flush()
            self._status_shown = False

    async def run(self, recorder: Any, time_limit: float) -> None:
        """Report ops/s, failures and the nemesis state every second (5 s when not live)."""
        period = 1.0 if self.live else 5.0
        start = time.monotonic()
        last_total, last_time = 0, start
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            counts = recorder.counts
            total = sum(counts.values())
            rate = (total - last_total) / max(now - last_time, 1e-9)
            last_total, last_time = total, now
            elapsed = now - start
            self.status(
                f"[{min(elapsed, time_limit):5.1f}/{time_limit:g} s] {rate:7.1f} ops/s  "
                f"ok {counts['ok']}  fail {counts['fail']}  info {counts['info']}  "
                f"nemesis: {self.nemesis_state}"
            )
