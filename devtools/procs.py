"""A server's process tree by role, its CPU time and its memory (psutil): for CPU per request, memory per worker
and the peak memory while a request is answered.

`python -m service` execs `bentoml serve` (the arbiter, circus), which starts the workers (each a whole server
with its own model, run as `python -m _bentoml_impl.worker.service`); any other process in the tree (LitServe's,
in the benchmark's reference row) is an "other process". A worker is recognised as the service recognises its
siblings (service.lifecycle.is_worker).
"""

import threading
import time
from dataclasses import dataclass

import psutil

from service.lifecycle import is_worker


def role(proc: psutil.Process) -> str:
    cmd = proc.cmdline()
    if is_worker(cmd):
        return "worker"
    line = " ".join(cmd)
    if "bentoml serve" in line or "-m service" in line:
        return "arbiter"
    return "other process"


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def workers(pid: int) -> list[int]:
    """The pids of the workers under the server `pid`."""
    found = []
    for proc in tree(pid):
        try:
            if role(proc) == "worker":
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


@dataclass
class CpuSnapshot:
    seconds: dict[int, float]  # pid -> user + system CPU seconds
    roles: dict[int, str]

    @classmethod
    def take(cls, pid: int) -> "CpuSnapshot":
        seconds, roles = {}, {}
        for proc in tree(pid):
            try:
                times = proc.cpu_times()
                seconds[proc.pid] = times.user + times.system
                roles[proc.pid] = role(proc)
            except psutil.NoSuchProcess:
                continue
        return cls(seconds, roles)

    def by_role_since(self, earlier: "CpuSnapshot") -> dict[str, float]:
        """CPU seconds spent per role between two snapshots."""
        spent: dict[str, float] = {}
        for pid, seconds in self.seconds.items():
            name = self.roles[pid]
            spent[name] = spent.get(name, 0.0) + seconds - earlier.seconds.get(pid, 0.0)
        return spent


@dataclass(frozen=True)
class Memory:
    role: str
    pid: int
    rss: int  # bytes resident, shared pages included
    uss: int  # bytes the process alone holds
    pss: int  # bytes resident with shared pages split among their users (what a cgroup roughly sees)


def memory(pid: int) -> list[Memory]:
    """The memory of every process of the tree (a full read of each one's page map: not for fast sampling)."""
    rows = []
    for proc in tree(pid):
        try:
            info = proc.memory_full_info()
            rows.append(Memory(role(proc), proc.pid, info.rss, info.uss, getattr(info, "pss", info.rss)))
        except psutil.Error:
            continue
    return sorted(rows, key=lambda m: (m.role, m.pid))


def rss(pid: int) -> int:
    """Resident bytes summed over the tree (cheap: fit for sampling every few milliseconds); 0 once it is gone."""
    try:
        procs = tree(pid)
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


class PeakRss:
    """The peak of `rss(pid)`, sampled every `period_s` in a thread; `reset()` starts a new peak from now."""

    def __init__(self, pid: int, period_s: float = 0.02):
        self.pid, self.period_s = pid, period_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def now(self) -> int:
        return rss(self.pid)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            time.sleep(self.period_s)

    def reset(self) -> int:
        self.peak = self.now()
        return self.peak

    def close(self) -> None:
        self._stop.set()
