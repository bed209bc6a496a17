"""The machine a figure was measured on, in one place: CPU model, cores, memory, OS and Python."""

import platform
from pathlib import Path

import psutil


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe() -> dict:
    return {
        "host": platform.node(),
        "cpu": cpu_model(),
        "cores": psutil.cpu_count(logical=True),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def line() -> str:
    """One line for a report: 'host: 2 cores (CPU model), 24 GiB, Python 3.11.7, Linux-...'."""
    m = describe()
    return f"{m['host']}: {m['cores']} cores ({m['cpu']}), {m['ram_gib']:.0f} GiB, Python {m['python']}, {m['os']}"
