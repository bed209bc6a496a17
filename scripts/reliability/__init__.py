"""Reliability run against the real server; writes docs/reliability.md.

    .venv/bin/python -m scripts.reliability [--model audio_classifier:latest] [--out docs/reliability.md]

Copies the model from your BentoML store into a private one (store), starts `python -m service` on 127.0.0.1 (2 MB
upload and 30 s limits, as the tests; AUDIOCLF_MAX_CONCURRENCY=4 so that overload is reachable on a small machine)
and runs, each bounded in count and time:

1. every hostile input of devtools/hostile.py over HTTP and gRPC, with the peak RSS of all server processes
   (sampled every 20 ms) while each is answered (hostile);
2. overload: 48 clients past capacity, then 2 (recovery) (faults);
3. a worker killed (SIGKILL) under load: requests lost, time to recover (faults);
4. SIGTERM under load, clients acting as a load balancer (they stop sending once /readyz says 503): when readiness
   dropped, whether every accepted request finished, the exit status (faults);
5. a missing, a corrupt model.keras and a corrupt metadata.json at start, through `python -m service` and
   `bentoml serve` (startup);
6. pip-audit on both lock files and checkov's secrets scan of the repository, when .venv-tools exists (audits);

then writes the report (report). __main__ runs them in that order.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
DIGIT = DATA / "fsdd" / "recordings" / "7_jackson_12.wav"  # a real spoken digit, 8 kHz mono 16-bit
SETTINGS = {"max_upload_bytes": 2_000_000, "max_audio_seconds": 30, "max_concurrency": 4, "drain_s": 2}
