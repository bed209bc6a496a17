"""Load tests (Locust, HTTP and gRPC) and the one-command benchmark; see docs/performance.md."""
