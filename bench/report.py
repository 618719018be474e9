"""Pipeline report benchmark: a report over thousands of runs, on SQLite and optionally PostgreSQL.

Inserts N synthetic jobs x 4 stages in bulk into a fresh database (a temporary SQLite file; and,
with --scratch-postgres-url, a PostgreSQL database that is RESET first, so never point it at
data you keep), then times the report (SQL aggregation + Python assembly) and its HTML and CSV
rendering, best of --repeat. Prints one JSON line per database.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.config import Settings
from backend.db.migrate import reset, upgrade
from backend.db.session import session_scope
from backend.db.tables import Job, JobStage
from backend.reports.params import parse_params
from backend.reports.render import to_csv, to_html
from backend.reports.service import build_report

STAGES = (("load", 0.2), ("transform", 1.0), ("fit", 5.0), ("store", 0.1))


def populate(url: str, n: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    start = time.perf_counter()
    with session_scope(url) as s:
        jobs = [
            {"kind": "train", "params": {}, "state": "succeeded", "progress": 1.0, "attempts": 1,
             "cancel_requested": False, "created_at": t0 + timedelta(seconds=30 * i),
             "started_at": t0 + timedelta(seconds=30 * i)}
            for i in range(n)
        ]  # fmt: skip
        ids = s.scalars(insert(Job).returning(Job.id, sort_by_parameter_order=True), jobs).all()
        rows: list[dict[str, Any]] = []
        for i, job_id in enumerate(ids):
            t = t0 + timedelta(seconds=30 * i)
            for name, scale in STAGES:
                d = float(rng.gamma(4.0, scale / 4.0))
                rows.append({"job_id": job_id, "attempt": 1, "name": name, "started_at": t,
                             "duration_s": d, "rows_in": 10_000, "rows_out": 10_000,
                             "extra": {"input_rows": 10_000}})  # fmt: skip
        s.execute(insert(JobStage), rows)
    return time.perf_counter() - start


def measure(url: str, n: int, repeat: int) -> dict[str, Any]:
    insert_s = populate(url, n, seed=7)
    params = parse_params({"kind": "train", "last": 10_000})
    best_report = best_render = float("inf")
    report: dict[str, Any] = {}
    for _ in range(repeat):
        t0 = time.perf_counter()
        with session_scope(url) as s:
            report = build_report(s, params)
        best_report = min(best_report, time.perf_counter() - t0)
        t0 = time.perf_counter()
        to_html(report)
        to_csv(report)
        best_render = min(best_render, time.perf_counter() - t0)
    return {
        "bench": "report",
        "database": url.split(":")[0],
        "runs": report["runs"],
        "stage_rows": report["stage_rows"],
        "insert_s": round(insert_s, 3),
        "report_s": round(best_report, 3),
        "render_html_csv_s": round(best_render, 4),
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5000, help="synthetic jobs (4 stages each)")
    ap.add_argument("--repeat", type=int, default=3, help="report repetitions (best is kept)")
    ap.add_argument("--scratch-postgres-url", default="", help="a PostgreSQL DB to RESET and use")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="recflow-bench-report-") as tmp:
        sqlite = Settings(data_dir=Path(tmp)).sqlalchemy_url
        upgrade(sqlite)
        print(json.dumps(measure(sqlite, args.runs, args.repeat)))
    if args.scratch_postgres_url:
        reset(args.scratch_postgres_url)
        print(json.dumps(measure(args.scratch_postgres_url, args.runs, args.repeat)))


if __name__ == "__main__":
    main()
