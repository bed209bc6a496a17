"""The inference service: BentoML over HTTP and gRPC (Open Inference Protocol), adaptive batching, metrics, health.

Modules, in the order a request meets them: settings (environment), app (the BentoML service: workers, start-up,
readiness, liveness), http_api (POST /classify, from the raw body to the answer), oip (the Open Inference Protocol's
model and request checks), oip_rest (OIP over REST on the HTTP app), grpc_oip (OIP servicer, health, reflection),
admission (per-worker limit on requests in progress), pipeline (audiocore.clip's decode -> windows, then scoring
and the typed answer), scorer (the in-process batcher: batched features + one model call), model (the Keras model
from the store), contract (the typed answer, ClipResult, and the HTTP JSON shapes), errors (reason -> status
table), metrics (Prometheus series), lifecycle (SIGTERM drain), model_check (the model checked before any worker
starts). Serve with `python -m service`.
"""

import logging

# BentoML's server logging passes on INFO only for its own loggers; the service's start-up and readiness lines
# (logger "audioclf.*") belong in the same log.
logging.getLogger("audioclf").setLevel(logging.INFO)
