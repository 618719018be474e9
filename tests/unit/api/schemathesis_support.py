"""What the schemathesis suites share: the app they fuzz, the checks, the bounded settings.

The app is the embedded one with a trained, active model and a monitor snapshot, so that the
serving and monitoring routes answer 200 and their real code is fuzzed, not only their "not
ready" answers. No worker runs: submitted jobs stay queued, so the fuzzer never runs real work.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import hypothesis
from fastapi import FastAPI
from schemathesis import BaseSchema, Case, CheckContext, GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from backend.api.app import create_app
from backend.config import Settings
from backend.db.migrate import upgrade
from backend.db.session import session_scope
from backend.jobs import runner, service
from backend.monitoring.consumer import Monitor, MonitorOptions, Record
from backend.monitoring.snapshots import MemorySnapshotStore
from backend.streaming.events import now_ms
from tests.unit.monitoring.test_consumer import TP, raw

# The stream runs until max_s (an hour by default): tests/unit/monitoring and the shutdown test
# cover it.
EXCLUDED_PATHS = ("/api/v1/monitoring/stream",)
MAX_EXAMPLES = 12  # per operation and phase: the whole file stays within about a minute
SYNTH = {"format": "synthetic", "n_users": 80, "n_items": 50, "n_ratings": 1_500, "seed": 3}


def no_server_error(ctx: CheckContext, response: Any, case: Case) -> bool | None:
    """Any 5xx fails, except a 503 the operation documents (no model yet, a monitor that is
    not ready): a designed answer, which the schema checks then hold to its documented shape."""
    status = int(response.status_code)
    documented = str(status) in case.operation.responses.status_codes
    if status >= 500 and not (status == 503 and documented):
        raise AssertionError(
            f"{case.operation.label} answered {status}: {response.text[:500]}\n"
            f"reproduce: {case.as_curl_command()}"
        )
    return None


CHECKS = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

FUZZ_SETTINGS = hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,  # a fixed seed: CI sends the same requests every run
    database=None,
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],  # no shrinking: bounded time
    suppress_health_check=list(hypothesis.HealthCheck),
)


def fuzz(
    schema: BaseSchema,
    *,
    base_url: str | None = None,
    headers: dict[str, str] | None = None,
    checks: list[Any] | None = None,
    max_examples: int = MAX_EXAMPLES,
    seen: Counter[tuple[str, int]] | None = None,
) -> tuple[int, list[str]]:
    """Every operation of ``schema`` with valid and invalid generated input: (operations tried,
    failures). Each failure names the operation, what broke and a curl command that replays it.

    schemathesis' pytest plugin (``schema.parametrize``) does not run on pytest 9 yet, so this
    drives its Hypothesis strategies directly, one operation at a time.
    """
    failures: list[str] = []
    tried = 0
    counted = seen if seen is not None else Counter()

    def count(ctx: CheckContext, response: Any, case: Case) -> None:
        counted[(case.operation.label, int(response.status_code))] += 1

    all_checks = [count, *(checks or CHECKS)]
    for result in schema.get_all_operations():
        operation = result.ok()
        tried += 1
        strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(
            GenerationMode.NEGATIVE
        )

        @hypothesis.settings(FUZZ_SETTINGS, max_examples=max_examples)
        @hypothesis.given(case=strategy)
        def run(case: Case) -> None:
            case.call_and_validate(base_url=base_url, headers=headers, checks=all_checks)

        try:
            run()
        except Exception as exc:  # every operation is tried; the failures are reported together
            failures.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:2000]}")
    return tried, failures


def train_active_model(settings: Settings, version: str = "v1") -> None:
    params: dict[str, Any] = {
        "data": SYNTH,
        "model": {"params": {"n_epochs": 2, "random_state": 1}},
        "version": version,
        "activate": "always",
    }
    with session_scope(settings.sqlalchemy_url) as s:
        job_id = service.create(s, "train", params, None)[0].id
    runner.execute(settings, job_id)
    with session_scope(settings.sqlalchemy_url) as s:
        job = service.get_or_404(s, job_id)
        assert job.state == "succeeded", job.error


def monitor_snapshot() -> dict[str, Any]:
    at = now_ms()
    m = Monitor(MonitorOptions("127.0.0.1:1", topic="t"), MemorySnapshotStore(), clock=lambda: at)
    m.state = "running"
    m.process({TP: [Record(0, raw(ts=at - 100, type="impression")), Record(1, raw(ts=at))]}, at)
    return m.snapshot(at)


def fuzz_app(settings: Settings) -> FastAPI:
    """The embedded app with an active model and a monitor snapshot (schema migrated here)."""
    settings.ensure_dirs()
    upgrade(settings.sqlalchemy_url)
    train_active_model(settings)
    app = create_app(settings)
    store = MemorySnapshotStore()
    store.put(monitor_snapshot())
    app.state.monitor_store = store
    app.state.models.refresh()
    return app
