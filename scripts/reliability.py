"""Reliability run against the real server; writes docs/reliability.md.

    .venv/bin/python scripts/reliability.py [--model audio_classifier:latest] [--out docs/reliability.md]

Copies the model from your BentoML store into a private one, starts `python -m service` on 127.0.0.1 (2 MB upload
and 30 s limits, as the tests; AUDIOCLF_MAX_CONCURRENCY=4 so that overload is reachable on a small machine) and
runs, each bounded in count and time:

1. every hostile input of tests/service/hostile.py over HTTP and gRPC, with the peak RSS of all server processes
   (sampled every 20 ms) while each is answered;
2. overload: 48 clients past capacity, then 2 (recovery);
3. a worker killed (SIGKILL) under load: requests lost, time to recover;
4. SIGTERM under load, clients acting as a load balancer (they stop sending once /readyz says 503): when readiness
   dropped, whether every accepted request finished, the exit status;
5. a missing, a corrupt model.keras and a corrupt metadata.json at start, through `python -m service` and
   `bentoml serve`;
6. pip-audit on both lock files and checkov's secrets scan of the repository (when .venv-tools exists).
"""

import argparse
import concurrent.futures as cf
import datetime
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
TOOLS = ROOT / ".venv-tools" / "bin"
SETTINGS = {"max_upload_bytes": 2_000_000, "max_audio_seconds": 30, "max_concurrency": 4, "drain_s": 2}


def private_store(tag: str) -> tuple[Path, str]:
    """A temporary BENTOML_HOME holding a copy of `tag` from the user's store: the runs below damage copies of it."""
    import bentoml

    model = bentoml.models.get(tag)
    home = Path(tempfile.mkdtemp(prefix="audioclf-reliability-"))
    name, version = model.tag.name, model.tag.version
    shutil.copytree(model.path, home / "models" / name / version)
    (home / "models" / name / "latest").write_text(version)
    return home, f"{name}:{version}"


def damaged_copy(home: Path, tag: str, new_version: str, damage) -> str:
    name, version = tag.split(":")
    folder = home / "models" / name / new_version
    shutil.copytree(home / "models" / name / version, folder)
    damage(folder)
    return f"{name}:{new_version}"


class RssSampler:
    """Peak resident memory of a process and all its descendants, sampled in a thread."""

    def __init__(self, pid: int, period_s: float = 0.02):
        import psutil

        self.root = psutil.Process(pid)
        self.period_s = period_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def now(self) -> int:
        import psutil

        from loadtests.procs import tree

        total = 0
        try:
            procs = tree(self.root.pid)
        except psutil.Error:
            return 0
        for proc in procs:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            time.sleep(self.period_s)

    def reset(self) -> int:
        self.peak = self.now()
        return self.peak

    def close(self) -> None:
        self._stop.set()


def mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


# --- 1. hostile input ---------------------------------------------------------------------------------------------


def hostile_rows(server, sampler) -> list[tuple]:
    import numpy as np
    import requests
    import tritonclient.grpc as triton
    from tritonclient.utils import InferenceServerException

    from tests.service.hostile import cases

    digit = (DATA / "fsdd" / "recordings" / "7_jackson_12.wav").read_bytes()
    rows = []
    client = triton.InferenceServerClient(server.grpc)
    for case in cases(digit, SETTINGS["max_upload_bytes"]):
        base = sampler.reset()
        time.sleep(0.1)
        response = requests.post(f"{server.http}/classify", files={"audio": (case.filename, case.data)}, timeout=120)
        time.sleep(0.1)
        body = response.json()
        message = body.get("detail") if "error" in body else f"top label {body['predictions'][0]['label']}"
        answer = f"{response.status_code} {body.get('error', '')}".strip()
        rows.append((case.name, "HTTP", answer, str(message)[:110], mib(base), mib(sampler.peak - base), case.http))
        if case.http_only:
            continue
        base = sampler.reset()
        audio = triton.InferInput("audio", [1], "BYTES")
        audio.set_data_from_numpy(np.array([case.data], dtype=object))
        try:
            client.infer("audio_classifier", [audio])
            answer, message = "OK", "classified"
        except InferenceServerException as exc:
            answer, message = exc.status().removeprefix("StatusCode."), exc.message()
        time.sleep(0.1)
        rows.append((case.name, "gRPC", answer, message[:110], mib(base), mib(sampler.peak - base), None))
    rows.append(declared_gigabyte(server, sampler))
    return rows


def declared_gigabyte(server, sampler) -> tuple:
    """A raw request declaring a 1 GB body and sending 1 kB: the answer must come without the rest being sent."""
    host, port = server.http.removeprefix("http://").split(":")
    base = sampler.reset()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=x\r\n"
            b"Content-Length: 1000000000\r\n\r\n" + bytes(1000)
        )
        answer = sock.recv(4096).decode(errors="replace")
    status = " ".join(answer.split("\r\n", 1)[0].split(" ")[1:2])
    detail = answer.rsplit("\r\n\r\n", 1)[-1][:110]
    return (
        "Content-Length 1 GB, 1 kB sent",
        "HTTP",
        f"{status} too_large",
        detail,
        mib(base),
        mib(sampler.peak - base),
        413,
    )


# --- load helpers -------------------------------------------------------------------------------------------------


def load(server, clients: int, seconds: float, data: bytes, routable=None, max_requests: int = 5000) -> dict:
    """`clients` threads posting `data` for `seconds` (and at most max_requests in all): status counts, latencies
    of refusals, Retry-After seen. With `routable` (an Event), a client sends only while it is set."""
    import requests

    stats = Counter()
    refusal_latency: list[float] = []
    last_failure = [0.0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def one_client() -> None:
        session = requests.Session()
        while time.monotonic() < deadline:
            with lock:
                if stats["sent"] >= max_requests:
                    return
                send = routable is None or routable.is_set()
                stats["sent"] += send
            if not send:
                time.sleep(0.05)
                continue
            started = time.monotonic()
            try:
                r = session.post(f"{server.http}/classify", files={"audio": ("a.flac", data)}, timeout=60)
                key = str(r.status_code)
                if r.status_code in (429, 503):
                    refusal_latency.append(time.monotonic() - started)
                    key += " with Retry-After" if r.headers.get("Retry-After") else " WITHOUT Retry-After"
            except requests.RequestException as exc:
                key = f"error: {type(exc).__name__}"
                time.sleep(0.05)
            if not key.startswith(("200", "503 with")):
                last_failure[0] = time.monotonic()
            with lock:
                stats[key] += 1

    with cf.ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(one_client) for _ in range(clients)]:
            f.result()
    out = dict(stats)
    if last_failure[0]:
        out["_last_failure"] = last_failure[0]
    if refusal_latency:
        out["refusal p50/max ms"] = (
            f"{sorted(refusal_latency)[len(refusal_latency) // 2] * 1000:.0f}/{max(refusal_latency) * 1000:.0f}"
        )
    return out


def worker_pids(arbiter_pid: int) -> list[int]:
    """The server's workers (each a whole server: HTTP, gRPC, model), from their command lines."""
    import psutil

    return [p.pid for p in psutil.Process(arbiter_pid).children() if "--service-name" in p.cmdline()]


def until(predicate, timeout_s: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.1)
    return None


def fmt(stats: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(stats.items()) if not k.startswith("_"))


def lost(stats: dict) -> str:
    """Requests that got no answer or a 5xx other than a refusal with Retry-After (those were never accepted)."""
    n = sum(v for k, v in stats.items() if k.startswith(("error", "5")) and not k.startswith("503 with"))
    return f"{n} of {stats.get('sent', 0)}"


# --- 2-4. overload, killed workers, SIGTERM ---------------------------------------------------------------------


def overload(server) -> list[tuple]:
    clip = sorted((DATA / "instruments" / "Cello").glob("*.flac"))[0].read_bytes()
    past = load(server, clients=48, seconds=20, data=clip)
    after = load(server, clients=2, seconds=10, data=clip)
    return [
        ("48 clients, long FLAC clips, 20 s (limit 4 per worker x 2 workers)", fmt(past)),
        ("then 2 clients, 10 s (recovery)", fmt(after)),
    ]


def kill_worker(proc, server) -> tuple:
    wav = (DATA / "fsdd" / "recordings" / "7_jackson_12.wav").read_bytes()
    before = worker_pids(proc.pid)
    victim = before[0]
    result: dict = {}
    with cf.ThreadPoolExecutor(1) as pool:
        running = pool.submit(load, server, 4, 25, wav)
        time.sleep(3)
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        result = running.result()
    last = result.get("_last_failure")
    recovered = "no failure" if last is None else f"last failure {last - killed_at:.1f} s after the kill"
    until(lambda: len(worker_pids(proc.pid)) >= len(before), 60)
    return (
        f"a worker (pid {victim}) SIGKILLed under 4 clients",
        fmt(result),
        lost(result),
        f"{recovered}; circus restarted it: workers {worker_pids(proc.pid)}",
    )


def sigterm(proc, server) -> tuple:
    import requests

    wav = (DATA / "fsdd" / "recordings" / "7_jackson_12.wav").read_bytes()
    routable = threading.Event()
    routable.set()
    timeline: list[str] = []
    t0 = [0.0]

    def prober() -> None:  # the load balancer: routes only to a ready server
        while proc.poll() is None:
            try:
                ok = requests.get(f"{server.http}/readyz", timeout=1).status_code == 200
            except requests.RequestException:
                ok = False
            if not ok and routable.is_set():
                routable.clear()
                timeline.append(f"readiness off {time.monotonic() - t0[0]:.2f} s after SIGTERM")
            time.sleep(0.1)

    with cf.ThreadPoolExecutor(2) as pool:
        running = pool.submit(load, server, 4, 15, wav, routable)
        time.sleep(4)
        threading.Thread(target=prober, daemon=True).start()
        t0[0] = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        result = running.result()
    code = proc.wait(timeout=120)
    timeline.append(f"exit status {code} {time.monotonic() - t0[0]:.1f} s after SIGTERM")
    return ("SIGTERM to `bentoml serve` under 4 clients", fmt(result), lost(result), "; ".join(timeline))


# --- 5. bad models at start -------------------------------------------------------------------------------------


def bad_models(home: Path, tag: str) -> list[tuple]:
    def truncate(folder: Path) -> None:
        path = folder / "model.keras"
        path.write_bytes(path.read_bytes()[:1000])

    def flip(folder: Path) -> None:
        path = folder / "model.keras"
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))

    def bad_metadata(folder: Path) -> None:
        (folder / "metadata.json").write_text('{"labels": ["a"]')

    tags = {
        "missing model": "no_such_model:latest",
        "model.keras truncated": damaged_copy(home, tag, "truncated", truncate),
        "model.keras with a flipped byte": damaged_copy(home, tag, "flipped", flip),
        "metadata.json not JSON": damaged_copy(home, tag, "badmeta", bad_metadata),
    }
    from tests.servers import free_port

    rows = []
    env = {**os.environ, "BENTOML_HOME": str(home), "AUDIOCLF_HOST": "127.0.0.1"}
    for name, bad in tags.items():
        for how, cmd in (
            ("python -m service", [sys.executable, "-m", "service"]),
            ("bentoml serve", [sys.executable, "-m", "bentoml", "serve", "service.app:AudioClassifier"]),
        ):
            started = time.monotonic()
            try:
                done = subprocess.run(
                    cmd,
                    cwd=ROOT,
                    env={
                        **env,
                        "AUDIOCLF_MODEL_TAG": bad,
                        "AUDIOCLF_HTTP_PORT": str(free_port()),
                        "AUDIOCLF_GRPC_PORT": str(free_port()),
                    },
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                code, lines = done.returncode, [x for x in done.stderr.splitlines() if x.strip()]
                last = lines[-1] if lines else ""
            except subprocess.TimeoutExpired:
                code, last = "still running after 120 s", ""
            rows.append((name, how, str(code), str(last)[:160], f"{time.monotonic() - started:.0f} s"))
    return rows


# --- 6. dependencies and secrets ----------------------------------------------------------------------------------


def audits() -> list[tuple]:
    import json

    if not (TOOLS / "pip-audit").exists():
        return [("pip-audit / checkov", "skipped: .venv-tools missing (make setup)")]
    rows = []
    for lock in ("requirements.lock", "requirements-tools.lock"):
        cmd = [str(TOOLS / "pip-audit"), "-r", lock, "--no-deps", "--disable-pip", "--progress-spinner", "off"]
        done = subprocess.run([*cmd, "-f", "json"], cwd=ROOT, capture_output=True, text=True, timeout=900)
        deps = json.loads(done.stdout)["dependencies"]
        skipped = [d for d in deps if "skip_reason" in d]
        vulns = {d["name"]: [v["id"] for v in d["vulns"]] for d in deps if d.get("vulns")}
        note = f"; {len(skipped)} not audited ({skipped[0]['skip_reason']})" if skipped else ""
        audited = len(deps) - len(skipped)
        rows.append(
            (f"pip-audit -r {lock} --no-deps", f"{audited} packages audited, vulnerable: {vulns or 'none'}{note}")
        )
    done = subprocess.run(
        [str(TOOLS / "checkov"), "-d", ".", "--framework", "secrets", "--enable-secret-scan-all-files"]
        + ["--skip-path", r"\.venv", "--skip-path", "runs/", "--compact", "--quiet", "-o", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    report = json.loads(done.stdout)
    reports = report if isinstance(report, list) else [report]
    found = [
        (c["check_id"], c["file_path"], c["file_line_range"])
        for r in reports
        for c in r.get("results", {}).get("failed_checks", [])
    ]
    rows.append(
        ("checkov -d . --framework secrets --enable-secret-scan-all-files", f"secrets found: {found or 'none'}")
    )
    return rows


# --- the report ---------------------------------------------------------------------------------------------------


def table(header: tuple, rows: list[tuple]) -> str:
    esc = [tuple(str(c).replace("|", "\\|").replace("\n", " ") for c in row) for row in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in esc])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=os.environ.get("AUDIOCLF_MODEL_TAG", "audio_classifier:latest"))
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "reliability.md")
    args = parser.parse_args()

    import bentoml

    try:
        home, tag = private_store(args.model)
    except bentoml.exceptions.NotFound:
        print(f"model {args.model!r} is not in the BentoML store: `make train` first, or set BENTOML_HOME / --model")
        return 2
    os.environ["BENTOML_HOME"] = str(home)
    from tests.servers import start_server, stop, wait_ready

    started = time.monotonic()
    log = home / "server.log"
    proc, server = start_server(tag, log, **SETTINGS)
    sections: dict[str, str] = {}
    try:
        wait_ready(proc, server)
        sampler = RssSampler(proc.pid)
        idle = sampler.now()
        print("hostile input ...", flush=True)
        rows = hostile_rows(server, sampler)
        wrong = [r for r in rows if r[6] is not None and not r[2].startswith(str(r[6]))]
        sections["hostile"] = table(
            ("case", "protocol", "answer", "message", "server RSS before", "peak RSS increase"), [r[:6] for r in rows]
        ) + (f"\n\n**{len(wrong)} answers differ from the expected status:** {wrong}" if wrong else "")
        sections["idle"] = mib(idle)
        print("overload ...", flush=True)
        sections["overload"] = table(("load", "answers"), overload(server))
        print("killed workers ...", flush=True)
        kills = [kill_worker(proc, server)]
        wait_ready(proc, server)
        print("SIGTERM ...", flush=True)
        kills.append(sigterm(proc, server))
        sections["faults"] = table(("fault", "answers during the run", "lost", "recovery"), kills)
        sections["peak"] = mib(sampler.peak)
        sampler.close()
    finally:
        stop(proc)
    print("bad models ...", flush=True)
    sections["models"] = table(("model", "started with", "exit status", "message", "time"), bad_models(home, tag))
    print("audits ...", flush=True)
    sections["audits"] = table(("check", "result"), audits())
    write_report(args.out, sections, time.monotonic() - started)
    shutil.rmtree(home, ignore_errors=True)
    print(f"wrote {args.out}")
    return 0


def write_report(out: Path, s: dict, seconds: float) -> None:
    import psutil

    head = out.read_text().split("<!-- generated -->")[0] if out.exists() else "# Reliability\n\n"
    machine = (
        f"{platform.node()}: {psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"Python {platform.python_version()}, {platform.platform()}"
    )
    body = f"""<!-- generated -->
## Measured

Written by `.venv/bin/python scripts/reliability.py` (`make reliability`) on {datetime.date.today()}, {machine};
run time {seconds / 60:.1f} min. Server: `python -m service` with {SETTINGS}, 2 workers (each HTTP, gRPC and the model).
The machine was shared with other jobs while this ran: memory figures are robust to that, times are not.

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


if __name__ == "__main__":
    sys.exit(main())
