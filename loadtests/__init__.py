"""Load tests (Locust, HTTP and gRPC) and the one-command benchmark; see docs/performance.md.

Locust: locustfile (the HTTP and gRPC users), profiles (smoke, steady, ramp), ramp (the step shape), run (one
profile headless, summarised), summary (throughput, percentiles, shed vs failed, batch sizes from /metrics). The
benchmark: benchmark (the phases and the table), inprocess (the in-process limit), litserve_ref (the reference
peer), model (which model it serves), report (the table in docs/performance.md). Both: clips (the real clips
sent), oip (gRPC OIP requests and the benchmark's gRPC client). Servers, the HTTP load generator and process
sampling come from devtools.
"""
