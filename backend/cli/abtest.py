"""``recflow abtest``: analyse an experiment and plan sample sizes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from backend.cli.errors import CommandGroup
from backend.cli.inline import run_inline
from backend.cli.output import console, emit_json, table, usage
from backend.cli.params import ParamOpt, ParamsFileOpt, job_params, pair, weights
from backend.jsonable import to_jsonable

app = typer.Typer(
    cls=CommandGroup,
    help="A/B test analysis: CTR (clicks/impressions) and per-user metrics.",
    no_args_is_help=True,
)
METRICS = ("ctr", "click_users", "clicks", "views", "purchases", "value")
MetricOpt = Literal["ctr", "click_users", "clicks", "views", "purchases", "value"]


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.2f}%"


def _ci(ci: dict[str, Any] | None, scale: float = 100, suffix: str = "") -> str:
    if not ci or ci.get("low") is None:
        return "-"
    return f"{ci['low'] * scale:.2f}{suffix} to {ci['high'] * scale:.2f}{suffix}"


def _number(x: float | None, percent: bool, sign: bool = False) -> str:
    if x is None:
        return "-"
    if percent:
        return f"{x * 100:+.2f} pp" if sign else f"{x * 100:.2f}%"
    return f"{x:+.4g}" if sign else f"{x:.4g}"


def _print_metric_comparisons(result: dict[str, Any]) -> None:
    percent = result["metric"] in ("ctr", "click_users")
    rows = []
    for c in result["comparisons"]:
        diff, rel = c["difference"], c["relative_lift"]
        cuped = c.get("cuped") or {}
        reduction = cuped.get("variance_reduction")
        rows.append(
            (
                f"{c['treatment']} vs {c['control']}",
                _number(diff["estimate"], percent, sign=True),
                _ci(diff["ci"], 100 if percent else 1, " pp" if percent else ""),
                "-" if rel["estimate"] is None else f"{rel['estimate'] * 100:+.1f}%",
                "-" if c["p_value"] is None else f"{c['p_value']:.4g}",
                "-" if c["p_value_adjusted"] is None else f"{c['p_value_adjusted']:.4g}",
                "-" if reduction is None else f"{reduction * 100:.1f}%",
                c["decision"],
            )
        )
    interval = (
        f"{_level(result)} CS" if result["settings"].get("sequential") else f"{_level(result)} CI"
    )
    table(
        f"{result['metric']}: {result['method']}",
        [
            "comparison",
            "difference",
            interval,
            "relative",
            "p",
            "p (Holm)",
            "CUPED var. red.",
            "decision",
        ],
        rows,
    )


def _print_guardrails(result: dict[str, Any]) -> None:
    rows = [
        (
            g["metric"],
            f"{g['treatment']} vs {g['control']}",
            _number(g["estimate"], g["metric"] in ("ctr", "click_users"), sign=True),
            _number(g["worst"], g["metric"] in ("ctr", "click_users"), sign=True),
            "-" if g["p_harm"] is None else f"{g['p_harm']:.4g}",
            {True: "HARMED", False: "no significant harm", None: "not tested"}[g["harmed"]],
        )
        for g in result.get("guardrails") or []
    ]
    if rows:
        table(
            "guardrails",
            ["metric", "comparison", "difference", "worst plausible", "p (harm)", "status"],
            rows,
        )


def _level(result: dict[str, Any]) -> str:
    """The intervals' confidence level, ``1 - alpha``, as the tables head it (e.g. ``99%``)."""
    alpha = float(result.get("settings", {}).get("alpha", 0.05))
    return f"{(1 - alpha) * 100:g}%"


def print_analysis(result: dict[str, Any]) -> None:
    metric = result.get("metric", "click_users")
    per_user = bool(result.get("metric_variants"))
    table(
        f"experiment {result.get('experiment', '')} (unit: {result['unit']}, metric: {metric})",
        ["variant", "units", "impressions", "clicks", "CTR", f"{_level(result)} CI"],
        [
            (
                v["variant"] + (" (control)" if v["is_control"] else ""),
                v["units"],
                v["impressions"],
                v["clicks"],
                _pct(v["ctr"]),
                _ci(v["ctr_ci"], suffix="%"),
            )
            for v in result["variants"]
        ],
    )
    if per_user:
        _print_metric_comparisons(result)
    else:
        rows = []
        for c in result["comparisons"]:
            diff = c["difference"]
            bayes = c.get("bayes") or {}
            rows.append(
                (
                    f"{c['treatment']} vs {c['control']}",
                    "-" if diff["estimate"] is None else f"{diff['estimate'] * 100:+.2f} pp",
                    _ci(diff["ci"], suffix=" pp"),
                    "-" if c["p_value"] is None else f"{c['p_value']:.4g}",
                    "-" if c["p_value_adjusted"] is None else f"{c['p_value_adjusted']:.4g}",
                    c["primary_test"],
                    _pct(bayes.get("prob_treatment_beats_control")),
                    c["decision"],
                )
            )
        table(
            "comparisons",
            [
                "comparison",
                "lift",
                f"{_level(result)} CI",
                "p",
                "p (Holm)",
                "test",
                "P(beats)",
                "decision",
            ],
            rows,
        )
    _print_guardrails(result)
    srm = result["srm"]
    console.print(f"SRM: {'MISMATCH' if srm['mismatch'] else 'none'} (p = {srm['p_value']})")
    console.print(f"[bold]{result['verdict']}[/]")


def _metric_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in METRICS]
    if not names or unknown:
        usage(f"--guardrail takes metrics joined by commas, each one of {', '.join(METRICS)}")
    return names


def experiment_name(csv: Path) -> str:
    """A valid experiment name from a CSV file's name ("my export.csv" -> "my-export")."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", csv.stem).strip("-.")[:128]
    return name or "csv-export"


@app.command()
def analyze(
    experiment: Annotated[
        str | None,
        typer.Option(
            "--experiment",
            "-e",
            metavar="NAME",
            help="the experiment: its events in the lake, or with --csv the name the analysis "
            "is stored under (default: from the file name)",
            show_default=False,
        ),
    ] = None,
    csv: Annotated[
        Path | None,
        typer.Option(
            "--csv", metavar="FILE", help="CSV export instead of the lake", show_default=False
        ),
    ] = None,
    unit: Annotated[
        Literal["user", "impression"] | None,
        typer.Option(metavar="UNIT", help="unit of analysis: user (default) or impression"),
    ] = None,
    metric: Annotated[
        MetricOpt | None,
        typer.Option(
            metavar="METRIC",
            help="metric of the verdict: ctr (clicks/impressions, delta method; default), "
            "click_users, clicks, views, purchases, value",
            show_default=False,
        ),
    ] = None,
    guardrail: Annotated[
        str | None,
        typer.Option(
            metavar="METRIC,...",
            help="guardrail metrics checked for significant harm, e.g. purchases,clicks",
            show_default=False,
        ),
    ] = None,
    cuped: Annotated[
        bool | None,
        typer.Option(
            "--cuped/--no-cuped",
            help="CUPED with the pre-period (pre_* CSV columns, or the lake; default: off)",
            show_default=False,
        ),
    ] = None,
    pre_days: Annotated[
        float | None,
        typer.Option(help="lake: pre-period length in days for CUPED (default 14)"),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            metavar="ISO-TIME",
            help="lake: when the experiment started, e.g. 2025-06-01T00:00Z (default: its "
            "first event)",
            show_default=False,
        ),
    ] = None,
    sequential: Annotated[
        bool | None,
        typer.Option(
            "--sequential/--no-sequential",
            help="always-valid p-values and confidence sequences (default: off)",
            show_default=False,
        ),
    ] = None,
    n_star: Annotated[
        float | None,
        typer.Option(help="sequential: total users at which you expect to decide (default 5000)"),
    ] = None,
    control: Annotated[
        str | None,
        typer.Option(
            help="control variant (default: 'control' if present, else the first)",
            show_default=False,
        ),
    ] = None,
    alpha: Annotated[float | None, typer.Option(help="significance level (default 0.05)")] = None,
    power: Annotated[
        float | None, typer.Option(help="power for the minimum detectable effect (default 0.8)")
    ] = None,
    expected_split: Annotated[
        str | None,
        typer.Option(
            "--expected-split",
            metavar="NAME=WEIGHT,...",
            help="configured traffic weights for the sample-ratio check, e.g. A=1,B=3 "
            "(default: equal)",
            show_default=False,
        ),
    ] = None,
    fisher: Annotated[
        bool | None,
        typer.Option(
            "--fisher/--no-fisher",
            help="report Fisher's exact test always (default: when a cell count is below 5)",
            show_default=False,
        ),
    ] = None,
    yates: Annotated[
        bool | None,
        typer.Option(
            "--yates/--no-yates",
            help="the chi-square test with Yates' correction decides (default: off)",
            show_default=False,
        ),
    ] = None,
    prior: Annotated[
        str | None,
        typer.Option(metavar="A,B", help="Beta prior of the Bayesian comparison (default 1,1)"),
    ] = None,
    mc_samples: Annotated[
        int | None,
        typer.Option(help="Monte Carlo draws beside the exact Bayesian figures (default 0)"),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Monte Carlo seed (default 0)")] = None,
    chart: Annotated[
        bool | None,
        typer.Option(
            "--chart/--no-chart", help="store a PNG chart (default: on)", show_default=False
        ),
    ] = None,
    param: ParamOpt = None,
    params_file: ParamsFileOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print machine-readable JSON")] = False,
) -> None:
    """Analyse an experiment (from the lake, or --csv FILE) and store the result."""
    if csv is not None and not csv.is_file():
        usage(f"CSV file not found: {csv}")
    flags: list[tuple[str, Any]] = [
        ("experiment", experiment),
        ("source", None if csv is None else "csv"),
        ("csv_path", None if csv is None else str(csv.resolve())),
        ("unit", unit),
        ("metric", metric),
        ("guardrails", None if guardrail is None else _metric_list(guardrail)),
        ("cuped", cuped),
        ("pre_period_days", pre_days),
        ("start", start),
        ("sequential", sequential),
        ("n_star", n_star),
        ("control", control),
        ("alpha", alpha),
        ("power", power),
        (
            "expected_split",
            None if expected_split is None else weights(expected_split, "--expected-split"),
        ),
        ("fisher", fisher),
        ("yates", yates),
        ("prior", None if prior is None else list(pair(prior, "--prior"))),
        ("mc_samples", mc_samples),
        ("seed", seed),
        ("chart", chart),
    ]
    params = job_params("abtest", flags, param=param, params_file=params_file)
    if "experiment" not in params:
        if csv is None:
            usage("give --experiment NAME (from the lake) or --csv FILE")
        params["experiment"] = experiment_name(csv)
    job = run_inline("abtest", params, quiet=as_json)
    if as_json:
        emit_json(job["result"])
    else:
        print_analysis(job["result"])


@app.command()
def plan(
    baseline_ctr: float = typer.Option(..., help="control CTR, e.g. 0.05"),
    mde_abs: float | None = typer.Option(None, help="absolute lift to detect, e.g. 0.005"),
    mde_rel: float | None = typer.Option(None, help="relative lift to detect, e.g. 0.1"),
    alpha: float = typer.Option(0.05, help="significance level"),
    power: float = typer.Option(0.8, help="chance to detect the lift if it is there"),
    variants: int = typer.Option(2, min=2, help="variants, the control included"),
    as_json: bool = typer.Option(False, "--json", help="print machine-readable JSON"),
) -> None:
    """Units per variant needed to detect a lift."""
    from backend.abtest import plan_sample_size

    if (mde_abs is None) == (mde_rel is None):
        usage("give exactly one of --mde-abs or --mde-rel")
    # Inputs it cannot use raise AbTestInputError, a DataError: exit 2 with its message.
    p = to_jsonable(
        plan_sample_size(
            baseline_ctr,
            mde_abs=mde_abs,
            mde_rel=mde_rel,
            alpha=alpha,
            power=power,
            n_variants=variants,
        )
    )
    if as_json:
        emit_json(p)
    else:
        console.print(
            f"{p['units_control']:,} units for the control and {p['units_per_treatment']:,} per "
            f"treatment ({p['units_total']:,} in all) to detect {p['baseline_ctr']:.2%} -> "
            f"{p['target_ctr']:.2%} at alpha {p['alpha']} with power {p['power']}"
        )
