"""The server's processes by role, for CPU per request and memory per worker (psutil).

`python -m service` execs `bentoml serve` (the arbiter), which starts the workers (`_bentoml_impl.worker.service`,
each a whole server with its own model); any other process in the tree (LitServe's, in the reference row) is an
"other process". Roles are read from the command lines.
"""

from dataclasses import dataclass

import psutil


def role(proc: psutil.Process) -> str:
    cmd = " ".join(proc.cmdline())
    if "_bentoml_impl.worker.service" in cmd:
        return "worker"
    if "bentoml serve" in cmd or "-m service" in cmd:
        return "arbiter"
    return "other process"


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


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


def memory(pid: int) -> list[tuple[str, int, float, float]]:
    """(role, pid, RSS MiB, USS MiB) of every server process; USS is what the process alone holds."""
    rows = []
    for proc in tree(pid):
        try:
            info = proc.memory_full_info()
            rows.append((role(proc), proc.pid, info.rss / 2**20, info.uss / 2**20))
        except psutil.NoSuchProcess:
            continue
    return sorted(rows)
