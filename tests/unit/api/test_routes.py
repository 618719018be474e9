"""Every route of the app is thin and typed: a response model for each JSON answer, a return type
that is that model (never a bare dict), and a one-line docstring (its OpenAPI description).

The route table of the real app is the contract, like the key scopes of test_auth.py: a route
added without a response model fails here unless it answers something other than JSON and is
listed in ``NOT_JSON`` with what it answers.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.responses import Response

from backend.api.app import create_app
from backend.config import Settings

# (method, path) -> what the route answers instead of a JSON document.
NOT_JSON: dict[tuple[str, str], str] = {
    ("GET", "/docs"): "HTML (Swagger UI)",
    ("GET", "/docs/oauth2-redirect"): "HTML",
    ("GET", "/redoc"): "HTML (ReDoc)",
    ("GET", "/monitor"): "HTML (the monitoring page)",
    ("GET", "/monitor/monitor.js"): "JavaScript",
    ("GET", "/metrics"): "Prometheus text",
    ("GET", "/api/v1/monitoring/stream"): "server-sent events",
    ("GET", "/api/v1/reports/pipeline.html"): "HTML (the report page)",
    ("GET", "/api/v1/experiments/{name}/analyses/{analysis_id}/chart.png"): "PNG",
}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    return create_app(Settings(data_dir=tmp_path_factory.mktemp("routes") / "var"))


def api_routes(app: FastAPI) -> Iterator[tuple[str, str, APIRoute]]:
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or context.path is None:
            continue
        for method in sorted(context.methods or ()):
            if method != "HEAD":
                yield method, context.path, route


def untyped(annotation: Any) -> bool:
    """A return annotation that says nothing of the answer's shape: Any, dict or dict[...]."""
    return annotation is Any or annotation is dict or typing.get_origin(annotation) is dict


def test_every_json_route_has_a_response_model(app: FastAPI) -> None:
    missing = [
        f"{method} {path}"
        for method, path, route in api_routes(app)
        if (method, path) not in NOT_JSON and route.response_model is None
    ]
    assert not missing, "JSON routes without a response_model:\n" + "\n".join(missing)


def test_every_json_route_returns_its_model_not_a_dict(app: FastAPI) -> None:
    loose = []
    for method, path, route in api_routes(app):
        if (method, path) in NOT_JSON:
            continue
        returns = typing.get_type_hints(route.endpoint).get("return", Any)
        options = typing.get_args(returns) if typing.get_origin(returns) is not None else ()
        # A union (e.g. the report: its model, or CSV as a Response) is judged by its members.
        if untyped(returns) or any(untyped(o) for o in options if o is not type(None)):
            loose.append(f"{method} {path} -> {returns}")
    assert not loose, "JSON routes that return an untyped value:\n" + "\n".join(loose)


def test_routes_that_are_not_json_exist_and_answer_a_response(app: FastAPI) -> None:
    routes = {(method, path): route for method, path, route in api_routes(app)}
    stale = set(NOT_JSON) - set(routes)
    assert not stale, f"NOT_JSON lists routes the app does not have: {sorted(stale)}"
    for key in NOT_JSON:
        returns = typing.get_type_hints(routes[key].endpoint).get("return")
        assert isinstance(returns, type) and issubclass(returns, Response), (key, returns)


def test_every_endpoint_has_a_one_line_docstring(app: FastAPI) -> None:
    bare = [
        f"{method} {path}"
        for method, path, route in api_routes(app)
        if not (route.endpoint.__doc__ or "").strip().splitlines()
    ]
    assert not bare, "endpoints without a docstring:\n" + "\n".join(bare)


def test_readiness_sends_only_the_fields_of_each_check(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        r = client.get("/health/ready")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ready"
    assert set(body["checks"]["database"]) == {"ok", "ms"}
    assert set(body["checks"]["broker"]) == {"ok", "ms"}
    assert body["checks"]["model"] == {"ok": True, "version": None}
    assert client.get("/health/live").json() == {"status": "ok"}


def test_monitor_status_without_a_snapshot_is_its_reason_only(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        r = client.get("/api/v1/monitoring/status")
    assert r.status_code == 503
    assert set(r.json()) == {"ready", "reason"} and r.json()["ready"] is False
    assert "recflow monitor" in r.json()["reason"]
