"""Shared by the report tests on SQLite (unit) and PostgreSQL (integration).

Stage rows are written either by real jobs (echo, run in-process by the worker's runner) or in
bulk as crafted rows; the expected figures are computed here independently, with numpy, from
the stored rows read back with plain ORM queries (not the report's own SQL).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from sqlalchemy import insert, select

from backend.api.app import API_PREFIX, create_app
from backend.api.routes import reports as report_routes
from backend.config import Settings
from backend.db.session import session_scope
from backend.db.tables import Job, JobStage
from backend.jobs import runner, service
from backend.reports import job as _report_kind  # noqa: F401  (registers the kind)
from tests.conftest import REQUIRE_SERVICES

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def app_with_reports(settings: Settings) -> FastAPI:
    """The API with the reports router mounted (a no-op once app.py mounts it itself)."""
    app = create_app(settings)
    if not any(getattr(r, "path", "") == f"{API_PREFIX}/reports/pipeline" for r in app.routes):
        app.include_router(report_routes.router, prefix=API_PREFIX)
    return app


def run_job(settings: Settings, kind: str, params: dict[str, Any]) -> int:
    with session_scope(settings.sqlalchemy_url) as s:
        job, _ = service.create(s, kind, params, None)
        job_id = job.id
    runner.execute(settings, job_id)
    return job_id


def insert_runs(
    settings: Settings,
    kind: str,
    runs: Sequence[dict[str, float]],
    *,
    state: str = "succeeded",
    start: datetime = T0,
    step: timedelta = timedelta(minutes=1),
    attempts: int = 1,
    extra: dict[str, Any] | None = None,
    rows_out: int | None = None,
) -> list[int]:
    """Bulk-insert one job per run (started ``step`` apart) and its stage rows (``attempts``)."""
    with session_scope(settings.sqlalchemy_url) as s:
        job_rows = [
            {
                "kind": kind,
                "params": {},
                "state": state,
                "progress": 1.0,
                "attempts": attempts,
                "cancel_requested": False,
                "created_at": start + i * step,
                "updated_at": start + i * step,
                "started_at": start + i * step,
                "finished_at": start + i * step + timedelta(seconds=sum(run.values())),
            }
            for i, run in enumerate(runs)
        ]
        ids = list(
            s.scalars(insert(Job).returning(Job.id, sort_by_parameter_order=True), job_rows).all()
        )
        stage_rows = []
        for i, (job_id, run) in enumerate(zip(ids, runs, strict=True)):
            t = start + i * step
            for name, d in run.items():
                stage_rows.append(
                    {
                        "job_id": job_id,
                        "attempt": attempts,
                        "name": name,
                        "started_at": t,
                        "finished_at": t + timedelta(seconds=d),
                        "duration_s": d,
                        "rows_in": rows_out,
                        "rows_out": rows_out,
                        "extra": dict(extra or {}),
                    }
                )
                t += timedelta(seconds=d)
        s.execute(insert(JobStage), stage_rows)
    return ids


@dataclass(frozen=True)
class Expected:
    samples: int
    mean: float
    median: float
    p95: float
    min: float
    max: float
    std: float | None
    total: float
    job_ids: tuple[int, ...]


def expected_stats(
    settings: Settings,
    *,
    kind: str | None = None,
    state: str = "succeeded",
    since: datetime | None = None,
    until: datetime | None = None,
    last: int = 1000,
) -> dict[tuple[str, str], Expected]:
    """Per (kind, stage) figures from the stored rows, computed with numpy (linear quantiles)."""
    with session_scope(settings.sqlalchemy_url) as s:
        jobs = s.scalars(select(Job)).all()
        stages = s.scalars(select(JobStage)).all()
        picked: dict[str, list[Job]] = defaultdict(list)
        for j in jobs:
            if j.started_at is None or j.attempts == 0:
                continue
            if (state != "any" and j.state != state) or (
                state == "any" and j.state not in ("succeeded", "failed", "cancelled")
            ):
                continue
            if kind is not None and j.kind != kind:
                continue
            if (since and j.started_at < since) or (until and j.started_at >= until):
                continue
            picked[j.kind].append(j)
        chosen: dict[int, Job] = {}
        for kind_jobs in picked.values():
            kind_jobs.sort(key=lambda j: (j.started_at, j.id), reverse=True)
            chosen.update({j.id: j for j in kind_jobs[:last]})
        values: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
        for st in stages:
            job = chosen.get(st.job_id)
            if job is None or st.attempt != job.attempts or st.duration_s is None:
                continue
            values[(job.kind, st.name)].append((st.job_id, st.duration_s))
    out = {}
    for key, pairs in values.items():
        d = np.array([v for _, v in pairs])
        out[key] = Expected(
            samples=len(d),
            mean=float(d.mean()),
            median=float(np.median(d)),
            p95=float(np.percentile(d, 95)),
            min=float(d.min()),
            max=float(d.max()),
            std=float(d.std(ddof=1)) if len(d) > 1 else None,
            total=float(d.sum()),
            job_ids=tuple(sorted({j for j, _ in pairs})),
        )
    return out


def assert_report_matches(
    report: dict[str, Any], expected: dict[tuple[str, str], Expected]
) -> None:
    """Every (kind, stage) of the report equals the independent figures (to 1e-9 relative)."""
    got = {(k["kind"], s["stage"]): s for k in report["kinds"] for s in k["stages"]}
    assert set(got) == set(expected)
    approx = lambda v: pytest.approx(v, rel=1e-9, abs=1e-12)  # noqa: E731
    for key, e in expected.items():
        s = got[key]
        assert s["samples"] == e.samples, key
        assert s["runs"] == len(e.job_ids), key
        assert s["mean_s"] == approx(e.mean), key
        assert s["median_s"] == approx(e.median), key
        assert s["p95_s"] == approx(e.p95), key
        assert s["min_s"] == approx(e.min), key
        assert s["max_s"] == approx(e.max), key
        assert s["total_s"] == approx(e.total), key
        if e.std is None:
            assert s["std_s"] is None, key
        else:
            assert s["std_s"] == pytest.approx(e.std, rel=1e-7, abs=1e-12), key
    for k in report["kinds"]:
        shares = [s["share"] for s in k["stages"]]
        assert sum(shares) == pytest.approx(1.0)


def chromium() -> str | None:
    """The chromium binary, or a skip (a failure under RECFLOW_REQUIRE_SERVICES=1)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "chromium is not installed (apt-get install -y chromium)"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    return path


def browse(target: str, workdir: Path) -> tuple[Path, str]:
    """Screenshot ``target`` (a URL) with headless Chromium; return the PNG and the DOM."""
    exe = chromium()
    assert exe is not None
    flags = [
        exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--user-data-dir={workdir / 'profile'}", "--window-size=1200,900",
    ]  # fmt: skip
    png = workdir / "page.png"
    env = {**os.environ, "HOME": str(workdir)}
    subprocess.run([*flags, f"--screenshot={png}", target], check=True, capture_output=True,
                   timeout=90, env=env)  # fmt: skip
    dom = subprocess.run([*flags, "--dump-dom", target], check=True, capture_output=True,
                         timeout=90, env=env).stdout.decode()  # fmt: skip
    return png, dom


def non_white_fraction(png: Path) -> float:
    from PIL import Image

    with Image.open(png) as im:
        px = np.asarray(im.convert("RGB"), dtype=np.int16)
    return float((px.min(axis=2) < 235).mean())


def coloured_pixels(png: Path) -> int:
    """Pixels that are clearly coloured (not grey text): the chart marks."""
    from PIL import Image

    with Image.open(png) as im:
        px = np.asarray(im.convert("RGB"), dtype=np.int16)
    return int(((px.max(axis=2) - px.min(axis=2)) > 60).sum())
