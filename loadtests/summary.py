"""A load run in a few lines: throughput, p50/p95/p99, real failures and load-shed 503s apart, and the batch sizes
the workers' batchers formed (`audioclf_batch_size`, read from /metrics before and after).

    python -m loadtests.summary runs/loadtests/steady   # re-print a finished run's summary
"""

import csv
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

SHED = "load shed"  # the marker the locustfile puts on deliberate 503 / UNAVAILABLE answers
BATCH_FAMILY = "audioclf_batch_size"


def batch_histogram(http_base: str, timeout_s: float = 30) -> dict[str, float]:
    """The batch-size histogram summed over workers: {'le=1': n, ..., 'sum': s, 'count': c}."""
    text = requests.get(f"{http_base.rstrip('/')}/metrics", timeout=timeout_s).text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != BATCH_FAMILY:
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                key = f"le={sample.labels['le']}"
            elif sample.name.endswith("_sum"):
                key = "sum"
            elif sample.name.endswith("_count"):
                key = "count"
            else:
                continue
            out[key] = out.get(key, 0.0) + sample.value
    return out


@dataclass
class Batches:
    batches: int
    clips: int
    mean: float
    buckets: dict[str, int]  # batches of at most le clips, not cumulative

    @classmethod
    def between(cls, before: dict[str, float], after: dict[str, float]) -> "Batches":
        delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
        cumulative = sorted(
            ((float(k[3:]), v) for k, v in delta.items() if k.startswith("le=")), key=lambda item: item[0]
        )
        buckets, previous = {}, 0.0
        for le, count in cumulative:
            if count - previous > 0:
                buckets[f"<={le:g}"] = int(count - previous)
            previous = count
        n, clips = int(delta.get("count", 0)), int(delta.get("sum", 0))
        return cls(batches=n, clips=clips, mean=clips / n if n else 0.0, buckets=buckets)


@dataclass
class Row:
    type: str
    name: str
    requests: int
    failures: int
    rps: float
    p50: float
    p95: float
    p99: float


@dataclass
class Summary:
    rows: list[Row]
    total: Row
    failures: int  # real failures: everything but deliberate load shedding
    shed: int
    errors: dict[str, int] = field(default_factory=dict)
    batches: Batches | None = None

    def text(self) -> str:
        lines = [f"{'type':6} {'name':22} {'requests':>8} {'fail':>5} {'req/s':>7} {'p50':>6} {'p95':>6} {'p99':>6}"]
        for r in [*self.rows, self.total]:
            lines.append(
                f"{r.type:6} {r.name[:22]:22} {r.requests:8d} {r.failures:5d} {r.rps:7.1f} "
                f"{r.p50:6.0f} {r.p95:6.0f} {r.p99:6.0f}"
            )
        lines.append("latencies in ms")
        lines.append(f"failures: {self.failures} (excluding load shed); load shed (503 / UNAVAILABLE): {self.shed}")
        for error, n in self.errors.items():
            lines.append(f"  {n} x {error[:150]}")
        if self.batches:
            b = self.batches
            lines.append(
                f"model batches: {b.batches} holding {b.clips} requests (mean {b.mean:.1f}); sizes {b.buckets}"
            )
        return "\n".join(lines)


def _num(value: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _row(r: dict) -> Row:
    return Row(
        type=r["Type"] or "all",
        name=r["Name"],
        requests=int(r["Request Count"]),
        failures=int(r["Failure Count"]),
        rps=_num(r["Requests/s"]),
        p50=_num(r["50%"]),
        p95=_num(r["95%"]),
        p99=_num(r["99%"]),
    )


def read(prefix: Path, batches: Batches | None = None) -> Summary:
    """From Locust's `<prefix>_stats.csv` and `<prefix>_failures.csv`."""
    with open(f"{prefix}_stats.csv", newline="") as handle:
        rows = [_row(r) for r in csv.DictReader(handle)]
    total = next(r for r in rows if r.name == "Aggregated")
    errors: dict[str, int] = {}
    failures_csv = Path(f"{prefix}_failures.csv")
    if failures_csv.exists():
        with open(failures_csv, newline="") as handle:
            for r in csv.DictReader(handle):
                key = f"{r['Method']} {r['Name']}: {r['Error']}"
                errors[key] = errors.get(key, 0) + int(r["Occurrences"])
    shed = sum(n for key, n in errors.items() if SHED in key)
    return Summary(
        rows=[r for r in rows if r.name != "Aggregated"],
        total=total,
        failures=total.failures - shed,
        shed=shed,
        errors=errors,
        batches=batches,
    )


def save(summary: Summary, folder: Path) -> None:
    (folder / "summary.json").write_text(json.dumps(asdict(summary), indent=2))
    (folder / "summary.txt").write_text(summary.text() + "\n")


def main(argv: list[str]) -> int:
    folder = Path(argv[0]) if argv else Path("runs/loadtests/smoke")
    saved = folder / "summary.txt"
    print(saved.read_text() if saved.exists() else read(folder / "locust").text())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
