"""schemathesis against the running server's own OpenAPI document (/docs.json): generated valid and invalid
requests for every operation never get a 5xx, and the service stays ready. Bounded and deterministic."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

pytestmark = pytest.mark.e2e
EXAMPLES = 60  # per generation mode, over all operations: ~20 s on 2 cores


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_no_generated_request_gets_a_5xx(server, mode):
    schema = schemathesis.openapi.from_url(f"{server.http}/docs.json", timeout=10)
    seen: list[tuple[str, str, int]] = []

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=schema.as_strategy(generation_mode=mode))
    def run(case):
        response = case.call(base_url=server.http, timeout=60)
        seen.append((case.method, case.path, response.status_code))
        assert response.status_code < 500, f"{case.method} {case.path} -> {response.status_code}: {response.text[:300]}"

    run()
    assert any(path == "/classify" for _, path, _ in seen), "the upload endpoint was never fuzzed"
    assert server.ready()
