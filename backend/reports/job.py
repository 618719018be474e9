"""``report``: where the pipeline spends its time, per job kind and stage; stored for later."""

from __future__ import annotations

from typing import Any

from backend.db.session import session_scope
from backend.jobs.context import JobContext
from backend.jobs.kind import JobKind
from backend.reports import repository
from backend.reports.params import PipelineReportParams
from backend.reports.service import build_report, summary


def run(ctx: JobContext, params: PipelineReportParams) -> dict[str, Any]:
    url = ctx.settings.sqlalchemy_url
    ctx.progress(0.05, "aggregating stage timings")
    with ctx.stage("aggregate") as st, session_scope(url) as s:
        report = build_report(s, params)
        st.rows_in = report["stage_rows"]
        st.rows_out = sum(len(k["stages"]) for k in report["kinds"])
        st.extra.update(runs=report["runs"])
    ctx.progress(0.8, "storing the report")
    with ctx.stage("store", rows_in=1) as st, session_scope(url) as s:
        row = repository.add(s, job_id=ctx.job_id, params=params.filters(), result=report)
        report_id = row.id
        st.rows_out = 1
    return summary(report, report_id)


KIND = JobKind(
    "report",
    PipelineReportParams,
    run,
    "Pipeline performance: per kind and stage timings, throughput, trend, regressions.",
)
