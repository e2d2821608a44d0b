"""Property-based runs of schemathesis against every dialect's OpenAPI document (bounded: a few
examples per operation).

The native API's document is generated (/api/openapi.json); the compat dialects' are written
by hand from their seed documents (server/openapi/*.json, served at /api/openapi/<dialect>.json).
Positive and negative data for every documented operation: no 5xx, every status documented,
every body matching its schema, and schema-violating requests rejected with 4xx.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx
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

EXAMPLES_PER_OPERATION = 12  # per operation and mode (the native API has ~30 operations)
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


# The m3u8 dialect is served on its own listener only (its /api/tasks is MediaGo's on the main one).
OWN_LISTENER = {"m3u8"}


@pytest.mark.parametrize("dialect", list(DOCUMENTS))
async def test_schemathesis_finds_nothing(api: Api, dialect: str) -> None:
    api.engine.scheduler.max_concurrent = 0  # generated tasks must not download anything
    await api.create({"type": "direct", "url": "http://example.invalid/a.bin"})  # id 1 exists
    document, operations = DOCUMENTS[dialect]
    target = await api.listener(dialect) if dialect in OWN_LISTENER else api
    failures, tested = await asyncio.to_thread(run_schemathesis, target.url, document)
    assert tested >= operations
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("dialect", ["m3u8", "downie", "saveany"])
async def test_each_dialect_document_names_every_route_and_is_public(make_api: Any, dialect: str) -> None:
    """server/openapi/<dialect>.json is public (like /api/openapi.json) and documents exactly the
    blueprint's HTTP routes, so nothing a client can call escapes the fuzzing above."""
    api = await make_api(token="tok")
    if dialect in OWN_LISTENER:
        api = await api.listener(dialect)
    async with httpx.AsyncClient(base_url=api.url, trust_env=False) as http:
        response = await http.get(f"/api/openapi/{dialect}.json")
        assert response.status_code == 200, response.text
        document = response.json()
        assert (await http.get("/api/openapi/nope.json", headers={"X-API-Key": "tok"})).status_code == 404
    assert document["openapi"].startswith("3.1") and "seed" in document["info"]["description"]
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item
                  if method in ("get", "post", "put", "delete", "patch")}
    served = {(method, re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule))
              for rule in api.handle.app.url_map.iter_rules()
              if rule.endpoint.startswith(f"{dialect}.") and not rule.websocket
              for method in rule.methods or () if method not in ("HEAD", "OPTIONS")}
    # A route for an empty path parameter (SaveAny's "/api/v1/tasks/") is the documented
    # "/api/v1/tasks/{task_id}" with task_id = "" (its 400 is documented there).
    served = {(method, next((d for m, d in documented if m == method and d.startswith(path + "{")), path)
               if path.endswith("/") else path) for method, path in served}
    assert documented == served
