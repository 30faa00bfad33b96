"""Fuzzing the API from its own OpenAPI schema (schemathesis) against a real server.

Every operation gets generated requests, valid and invalid, authenticated as
a principal holding every court role; the checks: no 5xx, status codes and
content types the schema documents, bodies that match the documented
schemas.  Examples per operation are few (``JRULE_FUZZ_EXAMPLES``, default
12) to keep the suite quick; raise it for a deeper run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from api_support import Server, open_minimal_case, prepare_store
from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("JRULE_FUZZ_EXAMPLES", "12"))
schemathesis.experimental.OPEN_API_3_1.enable()  # FastAPI publishes OpenAPI 3.1


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("fuzz")
    store = prepare_store(f"sqlite:///{data / 'jrule.sqlite3'}", data / "data")
    with Server(store, virtual_clock="2025-09-01T02:00:00Z") as server:
        with server.client("all") as c:
            open_minimal_case(c)
        yield server
        assert "Traceback" not in server.output()


@pytest.fixture(scope="module")
def api_schema(fuzz_server: Server) -> Any:
    return schemathesis.from_uri(f"{fuzz_server.base}/openapi.json",
                                 base_url=fuzz_server.base)


schema = schemathesis.from_pytest_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_conforms_to_its_schema(case: Any, fuzz_server: Server) -> None:
    case.call_and_validate(headers=fuzz_server.store.headers("all"), timeout=30)
