"""The benchmark's table (markdown) with the machine, date, command and the ratios against the issue's targets,
and its place in docs/performance.md (between the markers, so the hand-written text around it stays)."""

import math
import subprocess
from pathlib import Path

from devtools.machine import describe
from devtools.markdown import table

START, END = "<!-- benchmark:start -->", "<!-- benchmark:end -->"
ROOT = Path(__file__).resolve().parents[1]


def machine() -> dict:
    return {**describe(), "gpu": "none"}


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + (" (with uncommitted changes)" if git("status", "--porcelain") else "")


def _ms(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.0f}"


def progress(row: dict) -> str:
    extra = ""
    if "p99_ms" in row:
        extra = (
            f", p50/p95/p99 {_ms(row['p50_ms'])}/{_ms(row['p95_ms'])}/{_ms(row['p99_ms'])} ms, "
            f"{row['failed']} failed, {row['shed']} shed, mean batch {row['mean_batch']:.1f}, "
            f"other processes {row['other_cpu_share']:.0%} of CPU"
        )
    return f"  {row['name']}: {row['rps']:.1f} req/s{extra}"


DRIFT = 0.15  # more change than this in the in-process limit between start and end flags the run


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def markdown(run: dict) -> str:
    rows, m = run["rows"], run["machine"]
    start = rows["inprocess"]["rps"]
    end = rows.get("inprocess_end", rows["inprocess"])["rps"]
    limit = (start + end) / 2  # the ratios use the mean of the limit measured before and after the server phases
    drift = end / start - 1
    clip_cpu = [
        rows[k]["cpu_ms_per_clip"] for k in ("inprocess", "inprocess_end") if "cpu_ms_per_clip" in rows.get(k, {})
    ]
    clip_cpu_ms = sum(clip_cpu) / len(clip_cpu) if clip_cpu else float("nan")
    peer = rows.get("litserve")
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, no GPU; {m['os']}, Python {m['python']}.",
        f"Date: {run['date']}. Commit: {run['commit']}. Model: {run['model']}.",
        f"Command: `{run['command']}` ({run['wall_s'] / 60:.1f} min; phases of {run['phase_s']['warmup']:g} s "
        f"warm-up + {run['phase_s']['measure']:g} s measured; load average before: "
        f"{', '.join(f'{x:.2f}' for x in run['load_average_before'])}).",
    ]
    if run["quick"]:
        lines.append("**--quick run: phases too short for figures to quote.**")
    header = ["#", "what", "req/s", "of in-process", "of LitServe", "p50 ms", "p95 ms", "p99 ms", "failed"]
    header += ["shed (503)", "mean batch", "server CPU ms/req (workers / arbiter / other)"]
    header += ["generator CPU ms/req (share)", "other CPU"]
    keys = [k for k in ("inprocess", "nobatch", "litserve", "http", "grpc", "half", "inprocess_end") if k in rows]
    cells = []
    for i, key in enumerate(keys, start=1):
        r = rows[key]
        if key.startswith("inprocess"):
            per_clip = f"{r.get('cpu_ms_per_clip', float('nan')):.2f} per clip"
            cells.append([i, r["name"], f"{r['rps']:.0f}", f"{r['rps'] / limit:.2f}", *[""] * 6, 64, per_clip, "", ""])
            continue
        cpu = r["cpu_ms_per_request"]
        batch = "1 (off)" if key == "nobatch" else "" if key == "litserve" else format(r["mean_batch"], ".1f")
        of_peer = f"{r['rps'] / peer['rps']:.2f}" if peer and peer["rps"] else ""
        server_cpu = (
            f"{r['server_cpu_ms_per_request']:.2f} ({cpu.get('worker', 0):.2f} / {cpu.get('arbiter', 0):.2f} / "
            f"{cpu.get('other process', 0):.2f})"
        )
        generator = f"{r['generator_cpu_ms_per_request']:.1f} ({r['generator_cpu_share']:.0%})"
        cells.append(
            [i, r["name"], f"{r['rps']:.0f}", f"{r['rps'] / limit:.2f}", of_peer, _ms(r["p50_ms"]), _ms(r["p95_ms"])]
            + [_ms(r["p99_ms"]), r["failed"], r["shed"], batch, server_cpu, generator, f"{r['other_cpu_share']:.0%}"]
        )
    lines += ["", table(header, cells, align="llrrrrrrrrrllr")]
    http, grpc, nobatch, half = rows["http"], rows["grpc"]["rps"], rows["nobatch"]["rps"], rows["half"]
    ours = ("http", "grpc", "nobatch", "half")
    failed = sum(rows[k]["failed"] for k in ours)
    lines += [
        "",
        f'Rows in the order measured. "of in-process" divides by the mean of rows 1 and {len(keys)} '
        f"({limit:.0f} req/s); the limit drifted {drift:+.0%} between them"
        + (": **the machine's speed changed during the run; read ratios with care**." if abs(drift) > DRIFT else "."),
        "",
    ]
    targets = []
    clients = run.get("clients", 64)
    if peer:
        ratio = http["rps"] / max(peer["rps"], 1e-9)
        targets += [
            [
                f"HTTP >= 1.0 x LitServe req/s at {clients} clients (aim 1.5 x)",
                f"{ratio:.2f} x",
                _verdict(ratio >= 1.0),
            ],
            [
                f"HTTP p99 at {clients} clients <= LitServe's",
                f"{_ms(http['p99_ms'])} vs {_ms(peer['p99_ms'])} ms",
                _verdict(http["p99_ms"] <= peer["p99_ms"]),
            ],
        ]
    cpu_ratio = http["server_cpu_ms_per_request"] / clip_cpu_ms
    targets += [
        ["gRPC >= HTTP", f"{grpc / max(http['rps'], 1e-9):.2f} x", _verdict(grpc >= http["rps"])],
        [
            "p99 <= 100 ms at half of saturation (1-s clips)",
            f"{_ms(half['p99_ms'])} ms",
            _verdict(half["p99_ms"] <= 100),
        ],
        [
            "server CPU per HTTP request <= 1.5 x in-process CPU per clip",
            f"{http['server_cpu_ms_per_request']:.2f} / {clip_cpu_ms:.2f} ms = {cpu_ratio:.2f} x",
            _verdict(cpu_ratio <= 1.5),
        ],
        [
            "batching on >= 2 x batching off at 64 clients",
            f"{http['rps'] / max(nobatch, 1e-9):.2f} x",
            _verdict(http["rps"] >= 2 * nobatch),
        ],
        [
            "zero failed requests in every phase of ours (load shed counted apart)",
            f"{failed} failed, {sum(rows[k]['shed'] for k in ours)} shed",
            _verdict(failed == 0),
        ],
    ]
    memory = [[role, pid, f"{rss:.0f}", f"{uss:.0f}"] for role, pid, rss, uss in run["memory"]]
    lines += [
        table(["target", "measured", ""], targets, align="lrl"),
        "",
        "Memory after the load (batching on):",
        "",
        table(["process", "pid", "RSS MiB", "USS MiB"], memory, align="lrrr"),
    ]
    return "\n".join(lines) + "\n"


def write_docs(path: Path, table: str) -> None:
    text = path.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{START}\n{table}{END}{tail}")
