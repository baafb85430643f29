"""Schemathesis against the live OpenAPI spec: no 5xx and no response that violates the spec."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("fastapi")
schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from xmodal import Engine, Item  # noqa: E402
from xmodal.encoders import HashingEncoder  # noqa: E402
from xmodal.serve import ApiKey, ServeConfig, create_app  # noqa: E402
from xmodal.serve.testing import serve_in_thread  # noqa: E402

ADMIN = "admin-key-0001"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    engine = Engine.open(tmp_path_factory.mktemp("st") / "idx", encoder=HashingEncoder(), index="exact")
    engine.add([Item.create(f"i{i}", title=f"item {i}", attributes={"color": "red", "n": i}) for i in range(5)])
    config = ServeConfig(
        keys=(ApiKey(ADMIN, frozenset({"admin"})),),
        log_requests=False,
        mcp=False,
        rate=10_000.0,
        burst=10_000,
        max_body_bytes=1_000_000,
    )
    with serve_in_thread(create_app(engine, config)) as url:
        yield schemathesis.openapi.from_url(f"{url}/openapi.json")
    engine.close()


MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]


@pytest.mark.parametrize("mode", MODES, ids=[m.value for m in MODES])
def test_api_conforms_to_its_spec(api_schema: Any, mode: GenerationMode) -> None:
    """Every operation, a few generated cases each (the pytest plugin of schemathesis does not load on pytest 9)."""
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 10

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None
        )
        def run(case: Any) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {ADMIN}"}, checks=CHECKS)

        try:
            run()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # nothing to negate (no parameters, no body)
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)
