"""Run one load profile headless against a running service and summarize it.

    python -m loadtests.run smoke|steady|ramp [--host http://127.0.0.1:3000] [--grpc-host 127.0.0.1:50051]
                            [--out runs/loadtests/NAME] [--data ../shared/data] [-- more locust arguments]

Writes Locust's CSV (`locust_stats.csv`, `_failures.csv`, `_stats_history.csv`), its HTML report (`report.html`),
the log and `summary.txt`/`summary.json` into the out folder. Exit status 1 when any request failed for a reason
other than load shedding, or when none were made; no timing is judged here.
"""

import argparse
import subprocess
import sys
from pathlib import Path

from loadtests import summary as summaries
from loadtests.profiles import PROFILES

ROOT = Path(__file__).resolve().parents[1]


def locust_command(profile: str, host: str, grpc_host: str, out: Path, data: str | None, extra: list[str]) -> list:
    spec = PROFILES[profile]
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        ",".join(str(ROOT / f) for f in spec.files),
        "--headless",
        "--host",
        host,
        "--grpc-host",
        grpc_host,
        *(["--data", data] if data else []),
        "--csv",
        str(out / "locust"),
        "--html",
        str(out / "report.html"),
        "--logfile",
        str(out / "locust.log"),
        "--stop-timeout",
        "30",  # let requests in flight at the end finish rather than cut them off
        "--exit-code-on-error",
        "0",  # the verdict is ours: load shedding is not a failure
        "--only-summary",
        *spec.args,
        *extra,
    ]


def run(profile: str, host: str, grpc_host: str, out: Path, data: str | None = None, extra=()) -> summaries.Summary:
    out.mkdir(parents=True, exist_ok=True)
    before = summaries.batch_histogram(host)
    command = locust_command(profile, host, grpc_host, out, data, list(extra))
    (out / "command.txt").write_text(" ".join(command) + "\n")
    done = subprocess.run(command, cwd=ROOT, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"locust exited with {done.returncode}; see {out / 'locust.log'}")
    result = summaries.read(out / "locust", summaries.Batches.between(before, summaries.batch_histogram(host)))
    summaries.save(result, out)
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", choices=sorted(PROFILES))
    parser.add_argument("--host", default="http://127.0.0.1:3000", help="HTTP base URL of the service")
    parser.add_argument("--grpc-host", default="127.0.0.1:50051", help="gRPC host:port of the service")
    parser.add_argument("--out", type=Path, help="results folder (default runs/loadtests/PROFILE)")
    parser.add_argument("--data", help="shared data folder holding fsdd/ and instruments/ (default ../shared/data)")
    args, extra = parser.parse_known_args(argv)
    extra = [a for a in extra if a != "--"]
    out = args.out or ROOT / "runs" / "loadtests" / args.profile
    result = run(args.profile, args.host, args.grpc_host, out, args.data, extra)
    print(result.text())
    print(f"CSV, HTML report and log: {out}")
    return 0 if result.total.requests > 0 and result.failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
