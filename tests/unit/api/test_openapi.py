"""The OpenAPI document tells the truth: models for every JSON answer, the one error shape for
every 4xx, the real status codes. (That answers match it is tests/unit/api/test_schemathesis.py.)
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

ERROR_REF = "#/components/schemas/ErrorOut"
# Readiness answers 503 with its own body (which check failed), not an error.
OWN_503 = {("get", "/health/ready"), ("get", "/monitoring/status")}


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    doc: dict[str, Any] = r.json()
    return doc


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict) and "responses" in op
    ]


def json_schema_of(response: dict[str, Any]) -> dict[str, Any] | None:
    content = response.get("content", {})
    if "application/json" not in content:
        return None
    schema: dict[str, Any] = content["application/json"].get("schema", {})
    return schema


def test_every_json_answer_has_a_named_model(document: dict[str, Any]) -> None:
    untyped = []
    for method, path, op in operations(document):
        for status, response in op["responses"].items():
            schema = json_schema_of(response)
            if schema is None or not status.startswith("2"):
                continue
            ref = schema.get("$ref") or schema.get("items", {}).get("$ref")
            if not ref or set(schema) - {"$ref", "type", "items", "title"}:
                untyped.append(f"{method.upper()} {path} {status}: {schema}")
            elif schema.get("type") not in (None, "array"):
                untyped.append(f"{method.upper()} {path} {status}: a $ref beside type")
    assert not untyped, "\n".join(untyped)
    assert len(operations(document)) >= 30


def test_every_error_answer_is_the_shared_error_model(document: dict[str, Any]) -> None:
    wrong = []
    for method, path, op in operations(document):
        for status, response in op["responses"].items():
            if not status.startswith(("4", "5")):
                continue
            schema = json_schema_of(response)
            if schema is None:  # an HTML page's errors are HTML pages
                assert "text/html" in response.get("content", {}), (method, path, status)
                continue
            if status == "503" and (method, path.removeprefix("/api/v1")) in OWN_503:
                continue
            if schema.get("$ref") != ERROR_REF:
                wrong.append(f"{method.upper()} {path} {status}: {schema}")
    assert not wrong, "\n".join(wrong)
    error = document["components"]["schemas"]["ErrorOut"]
    assert set(error["properties"]) == {"error", "detail"} and error["required"] == ["error"]
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_the_request_machinery_statuses_are_documented(document: dict[str, Any]) -> None:
    missing = []
    for method, path, op in operations(document):
        needed = set()
        if op.get("parameters") or op.get("requestBody"):
            needed.add("422")
        if method == "post":
            needed.add("413")
            if path.startswith("/api/") and not path.endswith("/upload"):
                needed.add("415")
        lacking = needed - set(op["responses"])
        if lacking:
            missing.append(f"{method.upper()} {path}: {sorted(lacking)}")
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize(
    ("path", "codes"),
    [
        ("/api/v1/jobs", {"202", "200", "409", "503"}),  # 200: a repeated Idempotency-Key
        ("/api/v1/experiments/{name}/analyze", {"202", "503"}),
        ("/api/v1/experiments/{name}/upload", {"202", "503"}),
        ("/api/v1/reports/pipeline", {"202", "503"}),
        ("/api/v1/models/{model_id}/activate", {"200", "404", "409"}),
        ("/api/v1/scenarios/compare", {"200", "404", "409"}),
        ("/api/v1/jobs/{job_id}/cancel", {"200", "404", "409"}),
    ],
)
def test_posts_document_their_real_statuses(
    document: dict[str, Any], path: str, codes: set[str]
) -> None:
    responses = document["paths"][path]["post"]["responses"]
    assert codes <= set(responses), sorted(responses)
    if "202" in codes and path != "/api/v1/jobs":
        assert "200" not in responses  # these always answer 202


def test_id_parameters_are_bounded_to_the_database_range(document: dict[str, Any]) -> None:
    unbounded = []
    for method, path, op in operations(document):
        for param in op.get("parameters", []):
            schema = param.get("schema", {})
            options = schema.get("anyOf", [schema])
            for option in options:
                if option.get("type") == "integer" and "maximum" not in option:
                    unbounded.append(f"{method.upper()} {path} {param['name']}")
    assert not unbounded, "\n".join(unbounded)


def test_serving_answers_are_documented_without_slowing_them(document: dict[str, Any]) -> None:
    """The hot path keeps its orjson response class; its models are documentation only."""
    op = document["paths"]["/api/v1/users/{user_id}/recommendations"]["get"]
    assert op["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RecommendationsOut"
    }
    assert {p["name"] for p in op["parameters"]} >= {"user_id", "n", "exclude", "category"}
