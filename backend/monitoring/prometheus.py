"""Prometheus metrics: API request counts and latencies, job counts, and the monitor's figures.

Request metrics live in a module registry fed by ``PrometheusMiddleware`` (per process: with
several uvicorn workers each exposes its own requests). Job counts are read from SQL and the
monitor's figures from its latest snapshot at scrape time, so every worker reports the same
values for those.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.db.session import session_scope
from backend.db.tables import Job

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "recflow_http_requests_total",
    "HTTP requests by method, route template and status code.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "recflow_http_request_duration_seconds",
    "HTTP request duration (until the response body ends) by method, route and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)

UNMATCHED = "<unmatched>"
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")


_TEMPLATES: dict[int, str] = {}
_CHILDREN: dict[tuple[str, str, str], tuple[Any, Any]] = {}


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_of(scope: Scope) -> str:
    """``_route_of`` cached per matched route: a route's full template never changes, and the
    serving hot path should not pay a few regex matches per request for its metrics."""
    route = scope.get("route")
    if route is None:
        return UNMATCHED
    key = id(route)
    hit = _TEMPLATES.get(key)
    if hit is None:
        hit = _TEMPLATES[key] = _route_of(scope)
    return hit


def _route_of(scope: Scope) -> str:
    """The route template (``/api/v1/jobs/{job_id}``), never the raw path, to bound cardinality.

    The matched route (``scope["route"]``) may know only its path within an included router
    (``/jobs/{job_id}``); the prefix is the part of the request path before the suffix that the
    route's pattern matches. An unmatched request is ``<unmatched>``.
    """
    route = scope.get("route")
    template = getattr(route, "path", None)
    regex = getattr(route, "path_regex", None)
    if not isinstance(template, str):
        return UNMATCHED
    path: str = scope.get("path", "")
    if regex is None or regex.match(path):
        return template
    for i, ch in enumerate(path):
        if ch == "/" and regex.match(path[i:]):
            return path[:i] + template
    return template


class PrometheusMiddleware:
    """Counts each HTTP request and observes its duration, labelled by route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            method = scope["method"]
            # Any client can send any method name: only the standard ones become label values,
            # so request metrics stay bounded whatever arrives.
            labels = (method if method in METHODS else "OTHER", route_of(scope), str(status))
            children = _CHILDREN.get(labels)
            if children is None:
                children = _CHILDREN[labels] = (REQUESTS.labels(*labels), LATENCY.labels(*labels))
            children[0].inc()
            children[1].observe(time.perf_counter() - t0)


class StateCollector(Collector):
    """Job counts by state (SQL) and the monitor's latest snapshot, read at scrape time."""

    def __init__(self, database_url: str, snapshot: Mapping[str, Any] | None, now_ms: int) -> None:
        self.database_url = database_url
        self.snap = snapshot
        self.now_ms = now_ms

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily("recflow_jobs", "Jobs by state (from SQL).", labels=["state"])
        with session_scope(self.database_url) as s:
            rows = s.execute(select(Job.state, func.count()).group_by(Job.state)).all()
        # Every state is exported, 0 included, so a rate() over it never sees a gap.
        counts = dict.fromkeys(JOB_STATES, 0) | {str(state): int(n) for state, n in rows}
        for state, n in counts.items():
            jobs.add_metric([state], n)
        yield jobs
        yield from self._monitor()

    def _monitor(self) -> Iterator[GaugeMetricFamily]:
        snap = self.snap
        up = GaugeMetricFamily(
            "recflow_monitor_up", "1 when the monitor's snapshot is fresh and it is consuming."
        )
        age = GaugeMetricFamily(
            "recflow_monitor_snapshot_age_seconds", "Age of the monitor's latest snapshot."
        )
        if snap is None:
            up.add_metric([], 0)
            yield up
            return
        age_s = max(0.0, (self.now_ms - int(snap["generated_at_ms"])) / 1000)
        interval = float(snap["monitor"].get("snapshot_interval_s", 1.0))
        fresh = age_s <= max(5.0, 5 * interval)
        up.add_metric([], 1 if fresh and snap["monitor"].get("ready") else 0)
        age.add_metric([], age_s)
        yield up
        yield age
        lag = GaugeMetricFamily(
            "recflow_monitor_lag", "Consumer lag per partition (events).", labels=["partition"]
        )
        for p in snap["lag"]["partitions"]:
            if p.get("lag") is not None:
                lag.add_metric([str(p["partition"])], p["lag"])
        yield lag
        if snap["lag"]["total"] is not None:
            total = GaugeMetricFamily("recflow_monitor_lag_total", "Total consumer lag (events).")
            total.add_metric([], snap["lag"]["total"])
            yield total
        invalid = GaugeMetricFamily(
            "recflow_monitor_invalid_events",
            "Records skipped as invalid since the monitor started, by reason.",
            labels=["reason"],
        )
        for reason, n in snap["totals"]["invalid_by_reason"].items():
            invalid.add_metric([reason], n)
        yield invalid
        rates = GaugeMetricFamily(
            "recflow_monitor_events_per_second",
            "Events per second in each window, by type (total: all types).",
            labels=["window", "type"],
        )
        ctr = GaugeMetricFamily(
            "recflow_monitor_ctr",
            "Click-through rate per experiment variant in each window.",
            labels=["window", "experiment", "variant"],
        )
        model_ctr = GaugeMetricFamily(
            "recflow_monitor_model_ctr",
            "Click-through rate per experiment variant and model version in each window "
            '(experiment and variant "" outside experiments).',
            labels=["window", "experiment", "variant", "model_version"],
        )
        users = GaugeMetricFamily(
            "recflow_monitor_distinct_users", "Distinct users in each window.", labels=["window"]
        )
        for name, w in snap["windows"].items():
            for etype, rate in w["rate_per_s"].items():
                rates.add_metric([name, etype], rate)
            users.add_metric([name], w["distinct_users"])
            for v in w["variants"]:
                if v["ctr"] is not None:
                    ctr.add_metric([name, v["experiment"], v["variant"]], v["ctr"])
            for m in w.get("models", []):  # absent from a snapshot of an older monitor
                if m["ctr"] is not None:
                    labels = [name, m["experiment"] or "", m["variant"] or "", m["model_version"]]
                    model_ctr.add_metric(labels, m["ctr"])
        yield rates
        yield ctr
        yield model_ctr
        yield users


def render(database_url: str, snapshot: Mapping[str, Any] | None, now_ms: int) -> bytes:
    """The text exposition of the request metrics plus the scrape-time state."""
    state = CollectorRegistry(auto_describe=False)
    state.register(StateCollector(database_url, snapshot, now_ms))
    return generate_latest(REGISTRY) + generate_latest(state)
