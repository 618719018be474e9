"""``recflow train|validate|search``: the recommender's training jobs, run here or on the API.

The three share their flags and build their params with one function (``training_flags``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from backend.cli.client import ApiClient
from backend.cli.inline import run_inline
from backend.cli.output import JsonFlag, console, emit_json, fail, fmt_s, table, usage
from backend.cli.params import NULL, ParamOpt, ParamsFileOpt
from backend.cli.training_flags import (
    AlgorithmOpt,
    FeedbackOpt,
    FoldsOpt,
    FormatOpt,
    ItemColOpt,
    NJobsOpt,
    PathOpt,
    RatingColOpt,
    ScaleOpt,
    SeedOpt,
    SepOpt,
    SetOpt,
    Shared,
    SubmitOpt,
    TimestampColOpt,
    UserColOpt,
    existing,
    training_params,
)


def _run(kind: str, params: dict[str, Any], submit: str | None, quiet: bool) -> dict[str, Any]:
    if submit:
        from backend.cli.jobs import watch

        c = ApiClient(submit)
        job = watch(c, c.submit(kind, params)["id"], quiet=quiet)
        if job["state"] != "succeeded":
            fail(f"{kind} job {job['id']} {job['state']}: {job.get('error')}")
        return job
    return run_inline(kind, params, quiet=quiet)


def _stages(job: dict[str, Any]) -> None:
    table(
        "stages",
        ["stage", "duration", "rows in", "rows out"],
        [(s["name"], fmt_s(s["duration_s"]), s["rows_in"], s["rows_out"]) for s in job["stages"]],
    )


def train(
    fmt: FormatOpt = None,
    path: PathOpt = None,
    user_col: UserColOpt = None,
    item_col: ItemColOpt = None,
    rating_col: RatingColOpt = None,
    timestamp_col: TimestampColOpt = None,
    scale: ScaleOpt = None,
    sep: SepOpt = None,
    algorithm: AlgorithmOpt = None,
    sets: SetOpt = None,
    feedback: FeedbackOpt = None,
    items: Annotated[
        Path | None,
        typer.Option(help="MovieLens folder with item titles and genres", show_default=False),
    ] = None,
    version: Annotated[
        str | None, typer.Option(help="artifact version name", show_default=False)
    ] = None,
    validate_k: Annotated[
        int | None, typer.Option(help="k-fold CV first, feeding the promotion gate (default 0)")
    ] = None,
    activate: Annotated[
        Literal["never", "always", "if_better"] | None,
        typer.Option(metavar="WHEN", help="never, always or if_better (default)"),
    ] = None,
    validate_ranking: Annotated[
        bool | None,
        typer.Option(
            "--validate-ranking/--no-validate-ranking",
            help="ranking metrics on a temporal hold-out first (default: off; tune with "
            "--param validate_ranking.k=20, validate_ranking.n_test)",
            show_default=False,
        ),
    ] = None,
    gate_metric: Annotated[
        Literal["rmse", "ndcg"] | None,
        typer.Option(
            metavar="METRIC",
            help="what if_better compares: rmse (from --validate-k) or ndcg (from "
            "--validate-ranking); default ndcg for implicit algorithms, else rmse",
            show_default=False,
        ),
    ] = None,
    n_jobs: NJobsOpt = None,
    seed: SeedOpt = None,
    param: ParamOpt = None,
    params_file: ParamsFileOpt = None,
    submit: SubmitOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Train a model, store its artifact, register it (and maybe make it serve)."""
    shared = Shared(fmt, path, user_col, item_col, rating_col, timestamp_col, scale, sep,
                    algorithm, sets, seed, n_jobs, param, params_file,
                    feedback=feedback)  # fmt: skip
    own: dict[str, Any] = {
        "items.path": existing(items, "--items"),
        "version": version,
        "validate_k": validate_k,
        "activate": activate,
        "validate_ranking": {} if validate_ranking else NULL if validate_ranking is False else None,
        "gate_metric": gate_metric,
    }
    job = _run("train", training_params("train", shared, own), submit, as_json)
    if as_json:
        emit_json(job)
        return
    r = job["result"]
    _stages(job)
    console.print(
        f"model [bold]{r['version']}[/] (id {r['model_id']}): "
        f"{'active' if r['activated'] else 'not active'} ({r['activation_reason']})"
    )
    console.print_json(json.dumps(r["metrics"]))


def validate(
    fmt: FormatOpt = None,
    path: PathOpt = None,
    user_col: UserColOpt = None,
    item_col: ItemColOpt = None,
    rating_col: RatingColOpt = None,
    timestamp_col: TimestampColOpt = None,
    scale: ScaleOpt = None,
    sep: SepOpt = None,
    algorithm: AlgorithmOpt = None,
    sets: SetOpt = None,
    feedback: FeedbackOpt = None,
    k: FoldsOpt = None,
    seed: SeedOpt = None,
    n_jobs: NJobsOpt = None,
    surprise: Annotated[
        bool | None,
        typer.Option(
            "--surprise/--no-surprise",
            help="also run surprise's cross_validate on the same folds (default: on)",
            show_default=False,
        ),
    ] = None,
    baselines: Annotated[
        bool | None,
        typer.Option(
            "--baselines/--no-baselines",
            help="the baselines on the same folds (default: on)",
            show_default=False,
        ),
    ] = None,
    ranking: Annotated[
        bool | None,
        typer.Option(
            "--ranking/--no-ranking",
            help="ranking metrics on a temporal hold-out (default: on; tune them with "
            "--param ranking.k=20, ranking.n_test, ranking.threshold)",
            show_default=False,
        ),
    ] = None,
    param: ParamOpt = None,
    params_file: ParamsFileOpt = None,
    submit: SubmitOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """k-fold cross-validation: RMSE, MAE, MPE per fold, baselines, ranking metrics."""
    shared = Shared(fmt, path, user_col, item_col, rating_col, timestamp_col, scale, sep,
                    algorithm, sets, seed, n_jobs, param, params_file,
                    feedback=feedback)  # fmt: skip
    own = {
        "k": k,
        "with_surprise": surprise,
        "baselines": baselines,
        "ranking": NULL if ranking is False else None,
    }
    job = _run("validate", training_params("validate", shared, own), submit, as_json)
    if as_json:
        emit_json(job)
    else:
        print_validation(job["result"], job["params"]["k"])


def print_validation(r: dict[str, Any], k: int) -> None:
    if "model" not in r:  # an implicit model: ranking only
        console.print(f"{r['algorithm']} on {r['n_interactions']} interactions ({r['feedback']})")
        _print_ranking(r["ranking"], implicit=True)
        return
    m = r["model"]
    table(
        f"{m['algorithm']}: {k}-fold CV on {r['data']}",
        ["fold", "RMSE", "MAE", "MPE %", "fit", "test"],
        [
            (
                f["fold"] + 1,
                f"{f['rmse']:.4f}",
                f"{f['mae']:.4f}",
                "-" if f["mpe"] is None else f"{f['mpe']:.2f}",
                fmt_s(f["fit_seconds"]),
                fmt_s(f["test_seconds"]),
            )
            for f in m["folds"]
        ],
    )

    def pm(d: dict[str, Any], digits: int = 4) -> str:
        if d["mean"] is None:
            return "-"
        return f"{d['mean']:.{digits}f} ± {d['std'] or 0:.{digits}f}"

    table(
        "mean ± std",
        ["algorithm", "RMSE", "MAE", "MPE %"],
        [
            (s["algorithm"], pm(s["rmse"]), pm(s["mae"]), pm(s["mpe"], 2))
            for s in [m, *r["baselines"]]
        ],
    )
    if "surprise" in r:
        console.print(
            f"surprise cross_validate on the same folds: max |difference| "
            f"{r['surprise']['max_abs_difference']:.2e}"
        )
    if "ranking" in r:
        _print_ranking(r["ranking"])


def _print_ranking(rk: dict[str, Any], *, implicit: bool = False) -> None:
    kk = rk["k"]
    held = (
        f"the last {rk['n_test']} interactions per user (relevant: the positives)"
        if implicit
        else f"the last {rk['n_test']} ratings per user (relevant: >= {rk['threshold']})"
    )
    columns = (f"precision@{kk}", f"recall@{kk}", f"ndcg@{kk}", f"map@{kk}", "hit_rate",
               "coverage")  # fmt: skip
    table(
        f"ranking on {held}",
        ["algorithm", f"P@{kk}", f"R@{kk}", f"NDCG@{kk}", f"MAP@{kk}", "hit rate", "coverage"],
        [(x["algorithm"], *(f"{x[c]:.4f}" for c in columns)) for x in rk["results"]],
    )


def _json_option(text: str | None, option: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        usage(f"{option} must be JSON: {exc}")


def search(
    fmt: FormatOpt = None,
    path: PathOpt = None,
    user_col: UserColOpt = None,
    item_col: ItemColOpt = None,
    rating_col: RatingColOpt = None,
    timestamp_col: TimestampColOpt = None,
    scale: ScaleOpt = None,
    sep: SepOpt = None,
    algorithm: AlgorithmOpt = None,
    grid: Annotated[
        str | None,
        typer.Option(
            metavar="JSON",
            help="grid search over these values, e.g. '{\"n_factors\": [50, 100]}'",
            show_default=False,
        ),
    ] = None,
    space: Annotated[
        str | None,
        typer.Option(
            metavar="JSON",
            help="random search over these distributions, e.g. "
            '\'{"lr_all": {"dist": "loguniform", "low": 0.001, "high": 0.02}}\'',
            show_default=False,
        ),
    ] = None,
    n_trials: Annotated[int | None, typer.Option(help="random search: trials (default 20)")] = None,
    feedback: FeedbackOpt = None,
    fixed: Annotated[
        str | None,
        typer.Option(metavar="JSON", help="hyperparameters held fixed", show_default=False),
    ] = None,
    sets: SetOpt = None,
    k: FoldsOpt = None,
    seed: SeedOpt = None,
    n_jobs: NJobsOpt = None,
    param: ParamOpt = None,
    params_file: ParamsFileOpt = None,
    submit: SubmitOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Hyperparameter search (grid or random) by k-fold CV RMSE."""
    if grid is not None and space is not None:
        usage("give --grid JSON (grid search) or --space JSON (random search), not both")
    shared = Shared(fmt, path, user_col, item_col, rating_col, timestamp_col, scale, sep,
                    algorithm, sets, seed, n_jobs, param, params_file,
                    feedback=feedback)  # fmt: skip
    own = {
        "strategy": "grid" if grid is not None else "random" if space is not None else None,
        "grid": _json_option(grid, "--grid"),
        "space": _json_option(space, "--space"),
        "n_trials": n_trials,
        "fixed": _json_option(fixed, "--fixed"),
        "k": k,
    }
    params = training_params("search", shared, own)
    if not params.get("grid") and not params.get("space"):
        usage("give --grid JSON (grid search) or --space JSON (random search)")
    if "strategy" not in params:
        params["strategy"] = "grid" if params.get("grid") else "random"
    job = _run("search", params, submit, as_json)
    if as_json:
        emit_json(job)
        return
    r = job["result"]
    if "metric" in r:  # an implicit model: trials by hold-out NDCG
        metric = r["metric"]
        table(
            f"{r['strategy']} search, {len(r['trials'])} trials, {r['total_seconds']:.0f} s",
            ["rank", metric.upper(), "params"],
            [
                (i + 1, f"{t[metric]:.4f}", json.dumps(t["params"]))
                for i, t in enumerate(r["trials"][:20])
            ],
        )
        console.print(
            f"best: {metric} {r['best'][metric]:.4f} with {json.dumps(r['best']['params'])}"
        )
        return
    table(
        f"{r['strategy']} search, {len(r['trials'])} trials, {r['total_seconds']:.0f} s",
        ["rank", "RMSE", "MAE", "params"],
        [
            (i + 1, f"{t['rmse']:.4f}", f"{t['mae']:.4f}", json.dumps(t["params"]))
            for i, t in enumerate(r["trials"][:20])
        ],
    )
    console.print(f"best: RMSE {r['best']['rmse']:.4f} with {json.dumps(r['best']['params'])}")
