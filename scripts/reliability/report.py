"""The run's findings as the generated half of docs/reliability.md (the hand-written half above the marker stays)."""

import datetime
from pathlib import Path

from devtools import machine
from scripts.reliability import SETTINGS

MARKER = "<!-- generated -->"


def write(out: Path, s: dict, seconds: float, load: tuple[float, float, float]) -> None:
    """`s`: the sections (markdown tables and figures) by name; `load`: the load average when the run started."""
    head = out.read_text().split(MARKER)[0] if out.exists() else "# Reliability\n\n"
    body = f"""{MARKER}
## Measured

Written by `.venv/bin/python -m scripts.reliability` (`make reliability`) on {datetime.date.today()},
{machine.line()}; run time {seconds / 60:.1f} min. Server: `python -m service` with {SETTINGS}, 2 workers (each
HTTP, gRPC and the model). Load average when it started: {", ".join(f"{x:.2f}" for x in load)} (on a machine
shared with other jobs, memory figures stay robust; times do not).

### Hostile input

RSS is the sum over the arbiter and every worker (sampled every 20 ms); idle after warm-up: {s["idle"]}. "Peak RSS
increase" is the highest sample while the request was answered, minus the sample before it.

{s["hostile"]}

### Overload

{s["overload"]}

### Killed workers and SIGTERM

"Lost" counts requests that got no answer or a 5xx. Peak RSS over all of the above: {s["peak"]}.

{s["faults"]}

### Missing or corrupt model at start

{s["models"]}

### Dependencies and secrets

{s["audits"]}
"""
    out.write_text(head + body)
