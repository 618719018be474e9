"""Build a pipeline performance report from the stored stage timings.

For each job kind and each stage over the selected runs: samples, runs, mean, median, p95, min,
max, standard deviation, total and share of the kind's time, throughput, box-plot figures and
outliers, the trend over time, a regression check, and the numeric ``extra`` metrics the stages
recorded (Spark's input rows, shuffle bytes, executor time ...). Also the slowest runs.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any, NamedTuple

from celery import Celery
from sqlalchemy.orm import Session

from backend.db.types import DB_INT_MAX, in_db_range
from backend.errors import InvalidInputError, NotFoundError
from backend.jobs import service as jobs
from backend.jobs.schemas import JobOut
from backend.jsonable import to_jsonable
from backend.reports import repository
from backend.reports.params import PipelineReportParams, parse_params
from backend.reports.regression import check_regression
from backend.reports.repository import RunRow, StageAggregate, StageRow
from backend.reports.schemas import ReportListOut, StoredReportOut
from backend.reports.stats import (
    PERCENTILE_METHOD,
    box,
    chunk_bounds,
    median,
    ols_slope,
    percentile,
    tukey_fences,
)

REPORT_VERSION = 1
CHART_RUNS = 100  # runs per kind kept for the stacked-bar chart
MAX_OUTLIERS = 20  # outlier runs listed per stage (the count covers all of them)
TREND_BUCKETS = 10
MAX_EXTRA_DEPTH = 3

DEFINITIONS = {
    "percentiles": PERCENTILE_METHOD,
    "std_s": "sample standard deviation, sqrt(sum((d - mean)^2) / (n - 1)); null when n < 2",
    "share": "the stage's total_s / the kind's total_s (sum over every stage of its runs)",
    "rows_out_per_s": "sum(rows_out) / sum(duration_s) over the samples that recorded rows_out "
    "(aggregate throughput, not a mean of per-run rates); rows_in_per_s likewise with rows_in",
    "outliers": "durations outside Tukey's fences (q1 - 1.5 IQR, q3 + 1.5 IQR)",
    "trend": "slope_s_per_run: least-squares slope of duration on run order; buckets: up to 10 "
    "consecutive groups of runs (oldest first) with their median; change: last bucket median / "
    "first bucket median - 1",
    "regression": "flagged when median(last `recent` runs) > factor * median(the runs before); "
    "needs at least `recent` runs before",
    "extra": "numeric job_stages.extra keys (nested keys joined with '.'): samples, sum, mean, "
    "min, max",
    "runs": "jobs; only the stages of each job's latest attempt count, and only finished stages",
}


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.astimezone(UTC).isoformat()


def _ratio(num: float | int | None, den: float) -> float | None:
    if num is None or den <= 0:
        return None
    return float(num) / den


def numeric_items(
    extra: dict[str, Any], prefix: str = "", depth: int = 0
) -> list[tuple[str, float]]:
    """The finite numbers in a stage's ``extra`` (booleans excluded), nested keys joined by '.'."""
    out: list[tuple[str, float]] = []
    for key, value in extra.items():
        name = f"{prefix}{key}"
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            if math.isfinite(value):
                out.append((name, float(value)))
        elif isinstance(value, dict) and depth < MAX_EXTRA_DEPTH:
            out.extend(numeric_items(value, f"{name}.", depth + 1))
    return out


def _extra_summary(values: dict[str, list[float]]) -> dict[str, dict[str, float | int]]:
    return {
        key: {
            "samples": len(v),
            "sum": math.fsum(v),
            "mean": math.fsum(v) / len(v),
            "min": min(v),
            "max": max(v),
        }
        for key, v in sorted(values.items())
    }


def empty_message(p: PipelineReportParams) -> str:
    parts = [f"state={p.state}", f"last={p.last}"]
    if p.kind:
        parts.insert(0, f"kind={p.kind}")
    if p.since:
        parts.append(f"since={p.since.isoformat()}")
    if p.until:
        parts.append(f"until={p.until.isoformat()}")
    return (
        f"no runs match ({', '.join(parts)}); widen the time range, choose another kind or "
        "state, or run some jobs first"
    )


def build_report(
    session: Session, p: PipelineReportParams, *, now: datetime | None = None
) -> dict[str, Any]:
    """The report as a JSON-ready dict (see the module docstring and ``DEFINITIONS``).

    Every statement reads the same committed snapshot (``repository.snapshot``), so a report
    taken while workers finish jobs is consistent with itself.
    """
    with repository.snapshot(session) as dialect:
        runs = repository.runs_cte(p)
        run_rows = repository.selected_runs(session, runs)
        aggs = repository.stage_aggregates(session, runs, dialect) if run_rows else []
        rows = repository.stage_rows(session, runs) if run_rows else []
        slow = repository.slowest_runs(session, runs, p.slowest) if run_rows else []
    report: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "generated_at": _iso(now or datetime.now(UTC)),
        "filters": p.filters(),
        "database": dialect,
        "percentiles_computed_in": "postgresql" if dialect == "postgresql" else "python",
        "definitions": DEFINITIONS,
        "runs": len(run_rows),
        "stage_rows": len(rows),
        "message": None if run_rows else empty_message(p),
        "kinds": [],
        "slowest_runs": [],
        "regressions": [],
    }
    if not run_rows:
        return report
    return _assemble(report, p, run_rows, aggs, rows, slow)


def _assemble(
    report: dict[str, Any],
    p: PipelineReportParams,
    run_rows: list[RunRow],
    aggs: list[StageAggregate],
    rows: list[StageRow],
    slow: list[tuple[int, float]],
) -> dict[str, Any]:
    by_job = {r.job_id: r for r in run_rows}
    runs_of_kind: dict[str, list[RunRow]] = defaultdict(list)
    for r in run_rows:
        runs_of_kind[r.kind].append(r)
    # Per (kind, stage), in run order: (job_id, duration); and numeric extras.
    samples: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
    extras: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    aborted: dict[tuple[str, str], int] = defaultdict(int)
    per_run: dict[int, dict[str, float]] = defaultdict(dict)
    for row in rows:
        key = (row.kind, row.stage)
        samples[key].append((row.job_id, row.duration_s))
        for name, value in numeric_items(row.extra):
            extras[key][name].append(value)
        if row.extra.get("aborted") is True:
            aborted[key] += 1
        stages = per_run[row.job_id]
        stages[row.stage] = stages.get(row.stage, 0.0) + row.duration_s

    aggs_of_kind: dict[str, list[StageAggregate]] = defaultdict(list)
    for a in aggs:
        aggs_of_kind[a.kind].append(a)

    for kind in sorted(runs_of_kind):
        kind_runs = runs_of_kind[kind]
        kind_aggs = sorted(aggs_of_kind.get(kind, []), key=lambda a: a.first_seen)
        kind_total = math.fsum(a.total_s for a in kind_aggs)
        with_stages = [r for r in kind_runs if r.job_id in per_run]
        stage_sections = []
        for a in kind_aggs:
            key = (kind, a.stage)
            section = _stage_section(a, samples[key], by_job, kind_total, p)
            section["aborted"] = aborted.get(key, 0)
            section["extra"] = _extra_summary(extras.get(key, {}))
            stage_sections.append(section)
            if section["regression"]["flagged"]:
                report["regressions"].append(
                    {"kind": kind, "stage": a.stage, **section["regression"]}
                )
        report["kinds"].append(
            {
                "kind": kind,
                "runs": len(kind_runs),
                "matching": kind_runs[0].matching,
                "runs_with_stages": len(with_stages),
                "first_started_at": _iso(kind_runs[0].started_at),
                "last_started_at": _iso(kind_runs[-1].started_at),
                "total_s": kind_total,
                "mean_run_s": kind_total / len(with_stages) if with_stages else None,
                "stages": stage_sections,
                "recent_runs": [
                    {
                        "job_id": r.job_id,
                        "state": r.state,
                        "started_at": _iso(r.started_at),
                        "total_s": math.fsum(per_run[r.job_id].values()),
                        "stages": per_run[r.job_id],
                    }
                    for r in with_stages[-CHART_RUNS:]
                ],
            }
        )
    report["slowest_runs"] = [
        {
            "job_id": job_id,
            "kind": by_job[job_id].kind,
            "state": by_job[job_id].state,
            "started_at": _iso(by_job[job_id].started_at),
            "total_s": total,
            "stages": per_run.get(job_id, {}),
        }
        for job_id, total in slow
        if job_id in by_job
    ]
    return report


def _stage_section(
    a: StageAggregate,
    series: list[tuple[int, float]],
    by_job: dict[int, RunRow],
    kind_total: float,
    p: PipelineReportParams,
) -> dict[str, Any]:
    durations = [d for _, d in series]
    ordered = sorted(durations)
    if a.quantiles is not None:
        q1, med, q3, p95 = (a.quantiles[q] for q in repository.QUANTILES)
    else:
        q1, med, q3, p95 = (percentile(ordered, q) for q in repository.QUANTILES)
    low, high = tukey_fences(q1, q3)
    outliers = sorted(
        ((job_id, d) for job_id, d in series if d < low or d > high),
        key=lambda jd: -abs(jd[1] - med),
    )
    buckets: list[dict[str, Any]] = []
    for start, stop in chunk_bounds(len(series), TREND_BUCKETS):
        chunk = series[start:stop]
        buckets.append(
            {
                "from": _iso(by_job[chunk[0][0]].started_at),
                "to": _iso(by_job[chunk[-1][0]].started_at),
                "runs": len(chunk),
                "median_s": median([d for _, d in chunk]),
            }
        )
    first_med: float | None = buckets[0]["median_s"] if buckets else None
    last_med: float | None = buckets[-1]["median_s"] if buckets else None
    change = None
    if first_med and last_med is not None and len(buckets) > 1:
        change = last_med / first_med - 1
    regression = check_regression(durations, recent=p.recent, factor=p.factor)
    return {
        "stage": a.stage,
        "samples": a.samples,
        "runs": a.runs,
        "mean_s": a.mean_s,
        "median_s": med,
        "p95_s": p95,
        "min_s": a.min_s,
        "max_s": a.max_s,
        "std_s": a.std_s,
        "total_s": a.total_s,
        "share": _ratio(a.total_s, kind_total),
        "rows_in": a.rows_in,
        "rows_out": a.rows_out,
        "rows_in_per_s": _ratio(a.rows_in, a.rows_in_duration_s),
        "rows_out_per_s": _ratio(a.rows_out, a.rows_out_duration_s),
        "box": to_jsonable(box(ordered, q1, med, q3)),
        "outliers": {
            "count": len(outliers),
            "runs": [{"job_id": j, "duration_s": d} for j, d in outliers[:MAX_OUTLIERS]],
        },
        "trend": {
            "slope_s_per_run": ols_slope(durations),
            "first_median_s": first_med,
            "last_median_s": last_med,
            "change": change,
            "buckets": buckets,
        },
        "regression": to_jsonable(regression),
    }


def summary(report: dict[str, Any], report_id: int | None) -> dict[str, Any]:
    """What a report job returns as its result: the stored id and the headline figures."""
    return {
        "report_id": report_id,
        "runs": report["runs"],
        "message": report["message"],
        "kinds": {k["kind"]: k["runs"] for k in report["kinds"]},
        "regressions": [
            {"kind": r["kind"], "stage": r["stage"], "ratio": r["ratio"]}
            for r in report["regressions"]
        ],
    }


class Found(NamedTuple):
    """A report and the id it is stored under (None: computed for this request)."""

    report: dict[str, Any]
    report_id: int | None


def find(session: Session, filters: dict[str, Any], report_id: str | None) -> Found:
    """The stored report named by ``report_id`` ("latest" or an id), or one computed now.

    ``filters`` are the report params as a request gave them (None: not given); they and
    ``report_id`` exclude each other.
    """
    given = {k: v for k, v in filters.items() if v is not None}
    if report_id is None:
        return Found(build_report(session, parse_params(given)), None)
    if given:
        raise InvalidInputError(
            f"give report_id or filters, not both (got report_id and {', '.join(sorted(given))})"
        )
    if report_id == "latest":
        row = repository.latest(session)
        if row is None:
            raise NotFoundError(
                "no stored report yet; POST /api/v1/reports/pipeline (or submit a 'report' job)"
            )
        return Found(row.result, row.id)
    if not (report_id.isascii() and report_id.isdigit() and in_db_range(int(report_id))):
        raise InvalidInputError(
            f"report_id must be a number or 'latest' (ids run 1-{DB_INT_MAX}); "
            f"got {report_id[:40]!r}"
        )
    row = repository.get(session, int(report_id))
    if row is None:
        raise NotFoundError(f"report {report_id} not found; GET /api/v1/reports lists them")
    return Found(row.result, row.id)


def stored(session: Session, limit: int) -> ReportListOut:
    """Stored reports, newest first, with their filters, headline figures and links."""
    return ReportListOut(
        items=[
            StoredReportOut(
                id=r.id,
                job_id=r.job_id,
                created_at=r.created_at,
                params=r.params,
                runs=r.result.get("runs"),
                regressions=len(r.result.get("regressions", [])),
                json_url=f"/api/v1/reports/pipeline?report_id={r.id}",
                html=f"/api/v1/reports/pipeline.html?report_id={r.id}",
            )
            for r in repository.recent(session, limit)
        ]
    )


def submit(session: Session, celery: Celery, filters: dict[str, Any]) -> JobOut:
    """Submit a 'report' job that computes and stores a report; commits (``jobs.submit``).

    The filters are checked first, so bad input is refused before a job row exists.
    """
    params = {k: v for k, v in filters.items() if v is not None}
    parse_params(params)
    job, _ = jobs.submit(session, celery, "report", params, None)
    return jobs.to_out(job)
