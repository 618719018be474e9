"""Schemathesis against the app in process: no 5xx, and every answer matches its documentation.

Every operation of the OpenAPI document (but the endless SSE stream) is called with generated
valid and invalid input, a bounded number of examples each and a fixed seed. A server error, a
status the operation does not document, or a body that breaks its documented schema fails.
It runs without keys (the embedded default) and with keys configured, both with an admin key
and with none (every guarded route must then answer a documented 401). The same suite runs
against a real uvicorn process in tests/integration/test_api_fuzz.py.
"""

from __future__ import annotations

from collections import Counter

import schemathesis
from pydantic import SecretStr
from pytest import TempPathFactory

from backend.config import Settings
from tests.unit.api.schemathesis_support import EXCLUDED_PATHS, fuzz, fuzz_app

ADMIN_KEY = "fuzz-admin-key-0123456789"


def test_every_operation_answers_as_documented(tmp_path_factory: TempPathFactory) -> None:
    app = fuzz_app(Settings(data_dir=tmp_path_factory.mktemp("fuzz") / "var"))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path=list(EXCLUDED_PATHS))
    tried, failures = fuzz(schema)
    assert tried >= 30, f"only {tried} operations in the document"
    assert not failures, "\n\n".join(failures)


def test_with_keys_every_operation_answers_as_documented(
    tmp_path_factory: TempPathFactory,
) -> None:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("fuzz-keys") / "var",
        api_keys=SecretStr(f"admin:{ADMIN_KEY}"),
    )
    app = fuzz_app(settings)
    key = {"X-API-Key": ADMIN_KEY}
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=key).exclude(
        path=list(EXCLUDED_PATHS)
    )
    tried, failures = fuzz(schema, headers=key)
    assert tried >= 30
    assert not failures, "\n\n".join(failures)
    # Without a key: every guarded operation answers 401, as its documentation says.
    seen: Counter[tuple[str, int]] = Counter()
    tried, failures = fuzz(schema, max_examples=3, seen=seen)
    assert not failures, "\n\n".join(failures)
    open_ops = {"GET /health/live", "GET /health/ready", "GET /metrics", "GET /monitor"}
    answered = {(label, status) for label, status in seen if label not in open_ops}
    assert answered and {status for _, status in answered} == {401}, sorted(answered)
