"""Monitoring resources at the API boundary: window summaries, the monitor's status, alerts.

The snapshot is written by the monitor process (``consumer.Monitor.snapshot``) and read back
from Redis or SQL; these models document its fields and allow extra ones, so a newer monitor
never breaks an older API.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class MonitorStateOut(_Open):
    state: str
    ready: bool
    error: str | None = None
    topic: str | None = None
    group: str | None = None
    started_at_ms: int | None = None
    connect_attempts: int | None = None
    last_event_ms: int | None = None
    idle_s: float | None = None
    snapshot_interval_s: float | None = None


class TotalsOut(_Open):
    consumed: int
    valid: int
    invalid: int
    invalid_by_reason: dict[str, int]
    counted: int
    late: int
    future: int
    without_experiment: int
    redelivered_skipped: int
    commits: int
    commit_failures: int
    publish_failures: int


class LagOut(_Open):
    total: int | None
    error: str | None
    partitions: list[dict[str, Any]]


class ProcessingOut(_Open):
    events_per_s: float
    freshness_p50_s: float | None
    freshness_p99_s: float | None
    freshness_samples: int


class VariantOut(BaseModel):
    experiment: str
    variant: str
    impressions: int
    clicks: int
    ctr: float | None


class ModelOut(BaseModel):
    """CTR of one model version within an experiment variant (``None``: outside experiments)."""

    experiment: str | None
    variant: str | None
    model_version: str
    impressions: int
    clicks: int
    ctr: float | None


class TopItemOut(BaseModel):
    item: str
    clicks: int


class OpenAlertOut(_Open):
    id: int
    rule: str
    labels: dict[str, Any]


class SummaryOut(_Open):
    """One window's figures with the monitor's state, totals, lag and open alerts."""

    window: str
    span_s: int
    now_ms: int
    coverage_s: int
    complete: bool
    events: int
    events_by_type: dict[str, int]
    rate_per_s: dict[str, float]
    distinct_users: int
    variants: list[VariantOut]
    models: list[ModelOut] = []
    top_items: list[TopItemOut]
    latency_p50_s: float | None
    latency_p99_s: float | None
    age_s: float
    stale: bool
    generated_at: str
    monitor: MonitorStateOut
    totals: TotalsOut
    lag: LagOut
    processing: ProcessingOut
    alerts_open: list[OpenAlertOut]


class StatusOut(BaseModel):
    """The monitor's readiness; ``reason`` says why it is not ready (with a 503)."""

    ready: bool
    reason: str | None
    age_s: float | None = None
    stale: bool | None = None
    monitor: MonitorStateOut | None = None


class AlertOut(BaseModel):
    id: int
    rule: str
    severity: str
    message: str
    value: float | None
    threshold: float | None
    labels: dict[str, Any]
    fired_at: str
    resolved_at: str | None
    open: bool


class AlertPage(BaseModel):
    items: list[AlertOut]
    next_before_id: int | None
