"""Property-based runs of schemathesis against every dialect's OpenAPI document (bounded: a few
examples per operation).

The native API's document is generated (/api/openapi.json); the compat dialects' are written
by hand from their seed documents (server/openapi/*.json, served at /api/openapi/<dialect>.json).
Positive and negative data for every documented operation: no 5xx, every status documented,
every body matching its schema, and schema-violating requests rejected with 4xx.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import Api

EXAMPLES_PER_OPERATION = 20
TIME_BUDGET = 50.0
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def property_test(operation: schemathesis.APIOperation, mode: GenerationMode, base_url: str):  # type: ignore[no-untyped-def]
    checks = CHECKS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=base_url, checks=checks, timeout=10)

    return check


# dialect: (document path, how many operations it must have at least)
DOCUMENTS = {
    "native": ("/api/openapi.json", 12),
    "m3u8": ("/api/openapi/m3u8.json", 4),
    "downie": ("/api/openapi/downie.json", 16),
    "saveany": ("/api/openapi/saveany.json", 7),
}


def run_schemathesis(base_url: str, document: str) -> tuple[list[str], int]:
    """Returns (failures, operations tested). Runs in a worker thread: schemathesis calls are blocking."""
    schema = schemathesis.openapi.from_url(f"{base_url}{document}")
    failures: list[str] = []
    tested = 0
    deadline = time.monotonic() + TIME_BUDGET
    for result in schema.exclude(path="/api/events").get_all_operations():
        operation = result.ok()
        tested += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                property_test(operation, mode, base_url)()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # no parameters and no body: nothing to get wrong
            except Exception as exc:  # collect every operation's failure, not just the first
                failures.append(f"{operation.label} [{mode.value}]: {exc}")
            if time.monotonic() > deadline:
                failures.append(f"time budget of {TIME_BUDGET}s exceeded after {operation.label}")
                return failures, tested
    return failures, tested


@pytest.mark.parametrize("dialect", list(DOCUMENTS))
async def test_schemathesis_finds_nothing(api: Api, dialect: str) -> None:
    api.engine.scheduler.max_concurrent = 0  # generated tasks must not download anything
    await api.create({"type": "direct", "url": "http://example.invalid/a.bin"})  # id 1 exists
    document, operations = DOCUMENTS[dialect]
    failures, tested = await asyncio.to_thread(run_schemathesis, api.url, document)
    assert tested >= operations
    assert not failures, "\n\n".join(failures)
