"""Progress of a long loop (hashing, decoding, caching clips): a bar with counts and ETA on a terminal, a log
line with the same figures every `every_s` seconds otherwise, and a closing line with the total time."""

import logging
import sys
import time
from collections.abc import Callable
from typing import TextIO

log = logging.getLogger("training")


def _clock_str(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """`update(n)` after each item; `close()` at the end (or use it as a context manager)."""

    def __init__(
        self,
        what: str,
        total: int,
        unit: str = "clips",
        *,
        stream: TextIO | None = None,
        tty: bool | None = None,
        every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.what, self.total, self.unit = what, total, unit
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.every_s = every_s if not self.tty else 0.1  # a bar redraws often, a log line every few seconds
        self.clock = clock
        self.done = 0
        self.t0 = self.last = clock()

    def line(self) -> str:
        """`what: done/total unit (pct), rate/s, ETA h:mm:ss`."""
        elapsed = max(self.clock() - self.t0, 1e-9)
        rate = self.done / elapsed
        pct = 100.0 * self.done / self.total if self.total else 100.0
        eta = _clock_str((self.total - self.done) / rate) if rate > 0 else "?"
        return f"{self.what}: {self.done}/{self.total} {self.unit} ({pct:.0f}%), {rate:.0f}/s, ETA {eta}"

    def update(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        if now - self.last < self.every_s and self.done < self.total:
            return
        self.last = now
        if self.tty:
            filled = int(30 * self.done / self.total) if self.total else 30
            self.stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {self.line()}  ")
            self.stream.flush()
        elif self.done < self.total:
            log.info("%s", self.line())

    def close(self) -> None:
        elapsed = self.clock() - self.t0
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
        log.info("%s: %d %s in %.1f s", self.what, self.done, self.unit, elapsed)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
