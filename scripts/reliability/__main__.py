"""`python -m scripts.reliability`: every phase in order against one server, then the report (see __init__)."""

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from audiocore.store import NotInStore
from devtools.markdown import table
from devtools.procs import PeakRss
from devtools.server import start_server, stop, wait_ready
from scripts.reliability import ROOT, SETTINGS, audits, faults, hostile, report, startup
from scripts.reliability.store import private_store


def main() -> int:
    parser = argparse.ArgumentParser(description="Reliability run against the real server; writes its report.")
    parser.add_argument("--model", default=os.environ.get("AUDIOCLF_MODEL_TAG", "audio_classifier:latest"))
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "reliability.md")
    args = parser.parse_args()

    try:
        home, tag = private_store(args.model)
    except NotInStore:
        print(f"model {args.model!r} is not in the BentoML store: `make train` first, or set BENTOML_HOME / --model")
        return 2
    os.environ["BENTOML_HOME"] = str(home)

    started, load = time.monotonic(), os.getloadavg()
    proc, server = start_server(tag, home / "server.log", **SETTINGS)
    sections: dict[str, str] = {}
    try:
        wait_ready(proc, server)
        sampler = PeakRss(proc.pid)
        sections["idle"] = hostile.mib(sampler.now())
        print("hostile input ...", flush=True)
        found = hostile.rows(server, sampler)
        wrong = hostile.wrong(found)
        sections["hostile"] = table(hostile.HEADER, [r[:6] for r in found]) + (
            f"\n\n**{len(wrong)} answers differ from the expected status:** {wrong}" if wrong else ""
        )
        print("overload ...", flush=True)
        sections["overload"] = table(("load", "answers"), faults.overload(server))
        print("killed workers ...", flush=True)
        kills = [faults.kill_worker(proc, server)]
        wait_ready(proc, server)
        print("SIGTERM ...", flush=True)
        kills.append(faults.sigterm(proc, server))
        sections["faults"] = table(("fault", "answers during the run", "lost", "recovery"), kills)
        sections["peak"] = hostile.mib(sampler.peak)
        sampler.close()
    finally:
        stop(proc)
    print("bad models ...", flush=True)
    sections["models"] = table(startup.HEADER, startup.rows(home, tag))
    print("audits ...", flush=True)
    sections["audits"] = table(audits.HEADER, audits.rows())
    report.write(args.out, sections, time.monotonic() - started, load)
    shutil.rmtree(home, ignore_errors=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
