"""``recflow report``: pipeline performance (where jobs spend their time, and regressions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from backend.cli.errors import CommandGroup
from backend.cli.inline import run_inline
from backend.cli.output import console, emit_json, fail, fmt_s, table
from backend.config import get_settings
from backend.db.session import session_scope
from backend.reports import repository
from backend.reports.params import MAX_LAST, parse_params
from backend.reports.render import to_csv, to_html

app = typer.Typer(
    cls=CommandGroup,
    help="Pipeline performance reports from the recorded stage timings.",
    no_args_is_help=True,
)


@app.callback()
def _group() -> None:
    """Pipeline performance reports from the recorded stage timings."""
    # A callback keeps `report` a group of commands even while it has only one.


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _rate(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f}"


def print_report(report: dict[str, Any]) -> None:
    if report["message"]:
        console.print(f"[yellow]{report['message']}[/]")
        return
    for k in report["kinds"]:
        rows = []
        for s in k["stages"]:
            reg = s["regression"]
            flag = {"regressed": "REGRESSED", "ok": "ok"}.get(reg["status"], "n/a")
            if reg["ratio"] is not None:
                flag += f" ({reg['ratio']:.2f}x)"
            rows.append(
                (
                    s["stage"],
                    s["samples"],
                    fmt_s(s["mean_s"]),
                    fmt_s(s["median_s"]),
                    fmt_s(s["p95_s"]),
                    fmt_s(s["min_s"]),
                    fmt_s(s["max_s"]),
                    "-" if s["share"] is None else f"{s['share']:.1%}",
                    _rate(s["rows_out_per_s"]),
                    s["outliers"]["count"],
                    flag,
                )
            )
        table(
            f"{k['kind']}: {k['runs']} runs (of {k['matching']} matching), "
            f"mean run {fmt_s(k['mean_run_s'])}",
            ["stage", "n", "mean", "median", "p95", "min", "max", "share", "rows out/s",
             "outliers", "recent vs before"],
            rows,
        )  # fmt: skip
    if report["slowest_runs"]:
        table(
            "slowest runs",
            ["job", "kind", "started", "total"],
            [(r["job_id"], r["kind"], r["started_at"], fmt_s(r["total_s"]))
             for r in report["slowest_runs"]],
        )  # fmt: skip
    for r in report["regressions"]:
        console.print(f"[bold red]regression[/] {r['kind']}/{r['stage']}: {r['reason']}")


@app.command()
def pipeline(
    kind: str | None = typer.Option(None, "--kind", "-k", help="only this job kind"),
    last: int | None = typer.Option(
        None, "--last", "-n", help=f"the N most recent runs of each kind (1-{MAX_LAST})"
    ),
    since: str | None = typer.Option(None, help="runs started at or after (ISO 8601)"),
    until: str | None = typer.Option(None, help="runs started before (ISO 8601)"),
    state: str | None = typer.Option(None, help="succeeded (default), failed, cancelled or any"),
    recent: int | None = typer.Option(None, help="regression window: the last M runs"),
    factor: float | None = typer.Option(None, help="regression threshold (default 1.5)"),
    as_json: bool = typer.Option(False, "--json", help="print the whole report as JSON"),
    csv_path: Path | None = typer.Option(None, "--csv", help="write the CSV to this file"),
    html_path: Path | None = typer.Option(None, "--html", help="write the HTML page to this file"),
) -> None:
    """Report per kind and stage timings, throughput, trend and regressions; store it."""
    raw = {"kind": kind, "last": last, "since": since, "until": until, "state": state,
           "recent": recent, "factor": factor}  # fmt: skip
    params = {k: v for k, v in raw.items() if v is not None}
    parse_params(params)  # bad filters: InvalidInputError, exit 2 before any job is recorded
    job = run_inline("report", params, quiet=as_json)
    report_id = job["result"]["report_id"]
    with session_scope(get_settings().sqlalchemy_url) as s:
        row = repository.get(s, report_id)
        if row is None:
            fail(f"report {report_id} was not found after the job stored it")
        report = row.result
    if csv_path is not None:
        _write(csv_path, to_csv(report))
    if html_path is not None:
        _write(html_path, to_html(report, report_id=report_id))
    if as_json:
        emit_json({"report_id": report_id, **report})
        return
    print_report(report)
    for label, path in (("CSV", csv_path), ("HTML", html_path)):
        if path is not None:
            console.print(f"{label} written to {path}")
    console.print(f"stored as report {report_id} (job {job['id']})")
