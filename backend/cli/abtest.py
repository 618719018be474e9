"""``recflow abtest``: analyse an experiment and plan sample sizes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from backend.cli.inline import run_inline
from backend.cli.output import console, emit_json, fail, table

app = typer.Typer(help="A/B test analysis on CTR.", no_args_is_help=True)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.2f}%"


def _ci(ci: dict[str, Any] | None, scale: float = 100, suffix: str = "") -> str:
    if not ci or ci.get("low") is None:
        return "-"
    return f"{ci['low'] * scale:.2f}{suffix} to {ci['high'] * scale:.2f}{suffix}"


def print_analysis(result: dict[str, Any]) -> None:
    table(
        f"experiment {result.get('experiment', '')} (unit: {result['unit']})",
        ["variant", "units", "impressions", "clicks", "CTR", "95% CI"],
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
        ["comparison", "lift", "95% CI", "p", "p (Holm)", "test", "P(beats)", "decision"],
        rows,
    )
    srm = result["srm"]
    console.print(f"SRM: {'MISMATCH' if srm['mismatch'] else 'none'} (p = {srm['p_value']})")
    console.print(f"[bold]{result['verdict']}[/]")


@app.command()
def analyze(
    experiment: str | None = typer.Option(None, "--experiment", "-e", help="name in the lake"),
    csv: Path | None = typer.Option(None, "--csv", help="CSV export instead of the lake"),
    unit: str = typer.Option("user", help="unit of analysis: user (default) or impression"),
    control: str | None = typer.Option(None, help="control variant"),
    alpha: float = typer.Option(0.05),
    as_json: bool = typer.Option(False, "--json", help="print machine-readable JSON"),
) -> None:
    """Analyse an experiment (from the lake, or --csv FILE) and store the result."""
    if (experiment is None) == (csv is None):
        fail("give --experiment NAME (from the lake) or --csv FILE, not both")
    if csv is not None and not csv.is_file():
        fail(f"CSV file not found: {csv}")
    params: dict[str, Any] = {
        "experiment": experiment or (csv.stem if csv else ""),
        "unit": unit,
        "alpha": alpha,
        "control": control,
    }
    if csv is not None:
        params.update(source="csv", csv_path=str(csv.resolve()))
    job = run_inline("abtest", params, quiet=as_json)
    if job["state"] != "succeeded":
        fail(f"analysis failed: {job['error']}")
    if as_json:
        emit_json(job["result"])
    else:
        print_analysis(job["result"])


@app.command()
def plan(
    baseline_ctr: float = typer.Option(..., help="control CTR, e.g. 0.05"),
    mde_abs: float | None = typer.Option(None, help="absolute lift to detect, e.g. 0.005"),
    mde_rel: float | None = typer.Option(None, help="relative lift to detect, e.g. 0.1"),
    alpha: float = typer.Option(0.05),
    power: float = typer.Option(0.8),
    variants: int = typer.Option(2, min=2),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Units per variant needed to detect a lift."""
    from backend.abtest import AbTestInputError, plan_sample_size

    if (mde_abs is None) == (mde_rel is None):
        fail("give exactly one of --mde-abs or --mde-rel")
    try:
        p = plan_sample_size(
            baseline_ctr,
            mde_abs=mde_abs,
            mde_rel=mde_rel,
            alpha=alpha,
            power=power,
            n_variants=variants,
        ).to_dict()
    except AbTestInputError as exc:
        fail(str(exc))
    if as_json:
        emit_json(p)
    else:
        console.print(
            f"{p['units_control']:,} units for the control and {p['units_per_treatment']:,} per "
            f"treatment ({p['units_total']:,} in all) to detect {p['baseline_ctr']:.2%} -> "
            f"{p['target_ctr']:.2%} at alpha {p['alpha']} with power {p['power']}"
        )
