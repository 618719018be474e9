"""A report as CSV (one row per kind and stage) and as a self-contained HTML page with charts."""

from __future__ import annotations

import csv
import io
from html import escape
from typing import Any

from backend.reports.charts import box_plot, fmt_seconds, stacked_bars

CSV_COLUMNS = (
    "kind", "stage", "samples", "runs", "mean_s", "median_s", "p95_s", "min_s", "max_s",
    "std_s", "total_s", "share", "rows_in", "rows_out", "rows_in_per_s", "rows_out_per_s",
    "outliers", "trend_slope_s_per_run", "regression_status", "regression_ratio",
)  # fmt: skip


def _cell(value: Any) -> Any:
    # Floats keep full precision (repr), so the CSV carries the same numbers as the JSON.
    return "" if value is None else value


def to_csv(report: dict[str, Any]) -> str:
    """One row per (kind, stage), the columns of ``CSV_COLUMNS``; only the header when empty."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for k in report["kinds"]:
        for s in k["stages"]:
            w.writerow(
                [
                    _cell(v)
                    for v in (
                        k["kind"],
                        s["stage"],
                        s["samples"],
                        s["runs"],
                        s["mean_s"],
                        s["median_s"],
                        s["p95_s"],
                        s["min_s"],
                        s["max_s"],
                        s["std_s"],
                        s["total_s"],
                        s["share"],
                        s["rows_in"],
                        s["rows_out"],
                        s["rows_in_per_s"],
                        s["rows_out_per_s"],
                        s["outliers"]["count"],
                        s["trend"]["slope_s_per_run"],
                        s["regression"]["status"],
                        s["regression"]["ratio"],
                    )
                ]
            )
    return buf.getvalue()


STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1000px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; } h3 { font-size: 14px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
.meta { color: #666; font-size: 13px; }
.empty { font-size: 16px; padding: 16px; background: #f6f6f6; border-left: 4px solid #999; }
.regressed td { background: #fde8e8; }
.alert { padding: 12px; background: #fde8e8; border-left: 4px solid #c0392b; }
.chart text.axis { fill: #666; }
dl { font-size: 12px; color: #555; } dt { font-weight: bold; margin-top: 6px; }
"""


def _num(v: float | None, fmt: str = ".4g") -> str:
    return "-" if v is None else format(v, fmt)


def _secs(v: float | None) -> str:
    return "-" if v is None else fmt_seconds(v)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.1f}%"


def _stage_table(stages: list[dict[str, Any]]) -> str:
    head = (
        "<tr><th>stage</th><th>runs</th><th>mean</th><th>median</th><th>p95</th><th>min</th>"
        "<th>max</th><th>std</th><th>share</th><th>rows out/s</th><th>outliers</th>"
        "<th>trend/run</th><th>recent vs before</th></tr>"
    )
    body = []
    for s in stages:
        reg = s["regression"]
        cls = ' class="regressed"' if reg["flagged"] else ""
        ratio = "n/a" if reg["status"] == "not_enough_data" else _num(reg["ratio"], ".2f") + "x"
        body.append(
            f"<tr{cls}><td>{escape(s['stage'])}</td><td>{s['samples']}</td>"
            f"<td>{_secs(s['mean_s'])}</td><td>{_secs(s['median_s'])}</td>"
            f"<td>{_secs(s['p95_s'])}</td><td>{_secs(s['min_s'])}</td>"
            f"<td>{_secs(s['max_s'])}</td><td>{_secs(s['std_s'])}</td>"
            f"<td>{_pct(s['share'])}</td><td>{_num(s['rows_out_per_s'], ',.1f')}</td>"
            f"<td>{s['outliers']['count']}</td><td>{_num(s['trend']['slope_s_per_run'], '+.3g')} s"
            f"</td><td>{escape(ratio)}</td></tr>"
        )
    return f"<table>{head}{''.join(body)}</table>"


def _kind_section(k: dict[str, Any]) -> str:
    stage_names = [s["stage"] for s in k["stages"]]
    parts = [
        f'<section class="kind" id="kind-{escape(k["kind"])}"><h2>{escape(k["kind"])}</h2>',
        f'<p class="meta">{k["runs"]} runs selected of {k["matching"]} matching; '
        f"{escape(k['first_started_at'] or '-')} to {escape(k['last_started_at'] or '-')}; "
        f"mean run {_secs(k['mean_run_s'])}, total {_secs(k['total_s'])}</p>",
    ]
    if not k["stages"]:
        parts.append("<p>These runs recorded no finished stages.</p></section>")
        return "".join(parts)
    parts.append(_stage_table(k["stages"]))
    shown = len(k["recent_runs"])
    parts.append(f"<h3>Time per stage per run (the last {shown} runs)</h3>")
    parts.append(
        stacked_bars(k["recent_runs"], stage_names, label=f"{k['kind']}: time per stage per run")
    )
    parts.append("<h3>Duration per stage (box: quartiles; whiskers: 1.5 IQR; dots: outliers)</h3>")
    parts.append(box_plot(k["stages"], label=f"{k['kind']}: duration per stage"))
    extras = [(s["stage"], s["extra"]) for s in k["stages"] if s["extra"]]
    if extras:
        rows = "".join(
            f"<tr><td>{escape(stage)}</td><td>{escape(key)}</td><td>{v['samples']}</td>"
            f"<td>{_num(v['sum'], ',.6g')}</td><td>{_num(v['mean'], ',.6g')}</td></tr>"
            for stage, extra in extras
            for key, v in extra.items()
        )
        parts.append(
            "<h3>Stage metrics recorded by the jobs</h3><table><tr><th>stage</th><th>metric</th>"
            f"<th>samples</th><th>sum</th><th>mean</th></tr>{rows}</table>"
        )
    parts.append("</section>")
    return "".join(parts)


def to_html(report: dict[str, Any], *, report_id: int | None = None) -> str:
    """The whole report as one HTML page with inline SVG charts (no scripts, no network)."""
    f = report["filters"]
    shown = ", ".join(f"{k}={v}" for k, v in f.items() if v is not None)
    title = "Pipeline performance report" + (f" #{report_id}" if report_id else "")
    parts = [
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{STYLE}</style></head><body><h1>{title}</h1>",
        f'<p class="meta">Generated {escape(str(report["generated_at"]))} from '
        f"{escape(str(report['database']))}; filters: {escape(shown)}; "
        f"{report['runs']} runs, {report['stage_rows']} stage rows.</p>",
    ]
    if report["message"]:
        parts.append(f'<p class="empty" id="message">{escape(report["message"])}</p>')
    if report["regressions"]:
        items = "".join(
            f"<li><b>{escape(r['kind'])} / {escape(r['stage'])}</b>: {escape(r['reason'])}</li>"
            for r in report["regressions"]
        )
        parts.append(
            f'<div class="alert" id="regressions"><b>Regressions</b><ul>{items}</ul></div>'
        )
    parts += [_kind_section(k) for k in report["kinds"]]
    if report["slowest_runs"]:
        rows = "".join(
            f"<tr><td>{r['job_id']}</td><td>{escape(r['kind'])}</td><td>{escape(r['state'])}</td>"
            f"<td>{escape(r['started_at'] or '-')}</td><td>{_secs(r['total_s'])}</td>"
            f"<td>{escape(', '.join(f'{n} {fmt_seconds(d)}' for n, d in r['stages'].items()))}"
            "</td></tr>"
            for r in report["slowest_runs"]
        )
        parts.append(
            '<h2>Slowest runs</h2><table id="slowest"><tr><th>job</th><th>kind</th><th>state</th>'
            f"<th>started</th><th>total</th><th>stages</th></tr>{rows}</table>"
        )
    defs = "".join(
        f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in report["definitions"].items()
    )
    parts.append(f"<h2>Definitions</h2><dl>{defs}</dl></body></html>")
    return "".join(parts)


def error_html(message: str) -> str:
    """A small page for a request the report cannot answer, saying what to fix."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Pipeline report: bad request</title><style>{STYLE}</style></head><body>"
        f'<h1>Pipeline performance report</h1><p class="empty" id="error">{escape(message)}</p>'
        "</body></html>"
    )
