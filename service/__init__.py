"""The inference service: BentoML over HTTP and gRPC (Open Inference Protocol), adaptive batching, metrics, health.

Modules, in the order a request meets them: settings (environment), app (entry service: HTTP, gRPC start-up,
readiness), upload_limit (413 before reading), grpc_oip (OIP servicer, health, reflection), pipeline (decode ->
features -> model -> answer), model_service (the Keras model behind the batcher), errors (reason -> status table),
metrics (Prometheus series). Serve with `python -m service`.
"""

import logging

# BentoML's server logging passes on INFO only for its own loggers; the service's start-up and readiness lines
# (logger "audioclf.*") belong in the same log.
logging.getLogger("audioclf").setLevel(logging.INFO)
