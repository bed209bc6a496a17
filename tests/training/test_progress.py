"""Progress lines say how many of how many, how fast and how long is left; a terminal gets a bar."""

import io
import logging

from training.progress import Progress


class Clock:
    """Seconds that pass only when the test says so."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_log_lines_every_interval_with_counts_rate_and_eta(caplog):
    clock = Clock()
    caplog.set_level(logging.INFO, logger="training")
    with Progress("decoding", 1000, stream=io.StringIO(), tty=False, every_s=10, clock=clock) as p:
        for _ in range(4):
            clock.now += 5  # 100 clips every 5 s: a line every other update
            p.update(100)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "decoding: 200/1000 clips (20%), 20/s, ETA 0:00:40",
        "decoding: 400/1000 clips (40%), 20/s, ETA 0:00:30",
        "decoding: 400 clips in 20.0 s",
    ]


def test_a_terminal_gets_a_bar_redrawn_in_place():
    clock, out = Clock(), io.StringIO()
    p = Progress("caching features", 4, stream=out, tty=True, clock=clock)
    for _ in range(4):
        clock.now += 1
        p.update()
    p.close()
    bars = out.getvalue().split("\r")[1:]
    assert len(bars) == 4 and bars[-1].startswith("[" + "#" * 30 + "] caching features: 4/4 clips (100%)")
    assert "ETA 0:00:02" in bars[1] and out.getvalue().endswith("\n")
