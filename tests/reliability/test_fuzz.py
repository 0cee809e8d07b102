"""Schemathesis against the served /openapi.json, with real credentials: no 5xx but documented 503s.

The cases come from schemathesis' strategies for each operation (valid and invalid data) and run
under Hypothesis directly; schemathesis' own pytest plugin is not used (its subtests do not work
with the pytest version this project runs).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
import trustme
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.core.result import Ok
from tests.support.servers import RunningServer, ServerFactory

pytestmark = pytest.mark.reliability

MAX_EXAMPLES = 100  # per operation and generation mode


@pytest.fixture(scope="module")
def fuzz_server(test_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    factory = ServerFactory(test_ca, tmp_path_factory.mktemp("fuzz"))
    server = factory.start("fuzz", env={"TCWEBHOOK_SERVER__MAX_BODY_BYTES": str(256 * 1024)})
    try:
        yield server
    finally:
        factory.stop_all()


@pytest.fixture(scope="module")
def operations(fuzz_server: RunningServer) -> list[Any]:
    schema = schemathesis.openapi.from_url(fuzz_server.base_url + "/openapi.json", verify=str(fuzz_server.ca_path))
    return [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]


class TestFuzz:
    """Generated requests against every documented operation."""

    def test_schema_lists_the_webhooks(self, operations: list[Any]) -> None:
        labels = {op.label for op in operations}
        assert "POST /tradecloud/orders" in labels
        assert "POST /tradecloud/shipments" in labels

    @pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=lambda m: m.value)
    def test_no_undocumented_server_errors(
        self, mode: schemathesis.GenerationMode, operations: list[Any], fuzz_server: RunningServer
    ) -> None:
        seen: dict[int, int] = {}
        for operation in operations:
            documented = {str(code) for code in operation.definition.raw.get("responses", {})}

            @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                      database=None)
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case: Any) -> None:
                response = case.call(
                    base_url=fuzz_server.base_url,
                    headers={**(case.headers or {}), **fuzz_server.bearer()},
                    verify=str(fuzz_server.ca_path),
                    timeout=10,
                )
                status = response.status_code
                seen[status] = seen.get(status, 0) + 1
                assert status < 500 or (status == 503 and "503" in documented), (  # noqa: B023
                    f"{case.method} {case.formatted_path} -> {status}: {response.text[:300]}"
                )

            try:
                check()
            except Unsatisfiable:
                # No invalid input exists for it (GET /healthz has no parameters): nothing to send.
                assert mode is schemathesis.GenerationMode.NEGATIVE
                continue
            assert fuzz_server.proc.poll() is None, f"the server died fuzzing {operation.label}"
        assert seen, "no request was sent"
