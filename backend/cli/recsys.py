"""``recflow train|validate|search|recommend|simulate|models|datasets``: the recommender."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from backend.cli.client import ApiClient
from backend.cli.inline import run_inline
from backend.cli.output import console, emit_json, fail, fmt_s, table

FormatOpt = typer.Option(
    "lake", "--format", "-f", help="ml-100k|ml-1m|ml-latest|csv|parquet|lake|synthetic"
)
PathOpt = typer.Option(None, "--path", help="ratings file or MovieLens folder")
SetOpt = typer.Option(None, "--set", help="hyperparameter, e.g. --set n_factors=50 (repeat)")
JsonOpt = typer.Option(False, "--json", help="print machine-readable JSON")
SubmitOpt = typer.Option(
    None, "--submit", help="send to the API at this URL instead of running here"
)


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _hyper(sets: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in sets or []:
        if "=" not in item:
            fail(f"--set takes key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = _value(value.strip())
    return out


def _data(fmt: str, path: Path | None) -> dict[str, Any]:
    data: dict[str, Any] = {"format": fmt}
    if path is not None:
        if not path.exists():
            fail(f"no such file or folder: {path}")
        data["path"] = str(path.resolve())
    return data


def _run(kind: str, params: dict[str, Any], submit: str | None, quiet: bool) -> dict[str, Any]:
    if submit:
        from backend.cli.jobs import watch

        c = ApiClient(submit)
        job = watch(c, c.submit(kind, params)["id"], quiet=quiet)
    else:
        job = run_inline(kind, params, quiet=quiet)
    if job["state"] != "succeeded":
        fail(f"{kind} job {job['id']} {job['state']}: {job.get('error')}")
    return job


def _stages(job: dict[str, Any]) -> None:
    table(
        "stages",
        ["stage", "duration", "rows in", "rows out"],
        [(s["name"], fmt_s(s["duration_s"]), s["rows_in"], s["rows_out"]) for s in job["stages"]],
    )


def train(
    fmt: str = FormatOpt,
    path: Path | None = PathOpt,
    algorithm: str = typer.Option("svd", help="svd, svdpp, baseline or global_mean"),
    sets: list[str] | None = SetOpt,
    items: Path | None = typer.Option(None, help="MovieLens folder with item titles and genres"),
    version: str | None = typer.Option(None, help="artifact version name"),
    validate_k: int = typer.Option(0, help="k-fold CV first (feeds the promotion gate)"),
    activate: str = typer.Option("if_better", help="never, always or if_better"),
    n_jobs: int = typer.Option(1, help="parallel folds"),
    submit: str | None = SubmitOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Train a model, store its artifact, register it (and maybe make it serve)."""
    params: dict[str, Any] = {
        "data": _data(fmt, path),
        "model": {"algorithm": algorithm, "params": _hyper(sets)},
        "validate_k": validate_k,
        "activate": activate,
        "n_jobs": n_jobs,
        "version": version,
    }
    if items is not None:
        params["items"] = {"format": "ml-100k", "path": str(items.resolve())}
    job = _run("train", params, submit, as_json)
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
    fmt: str = FormatOpt,
    path: Path | None = PathOpt,
    algorithm: str = typer.Option("svd"),
    sets: list[str] | None = SetOpt,
    k: int = typer.Option(5, help="folds"),
    seed: int = typer.Option(0),
    n_jobs: int = typer.Option(1, help="folds in parallel"),
    surprise: bool = typer.Option(True, help="also run surprise's cross_validate"),
    ranking: bool = typer.Option(True, help="ranking metrics on a temporal hold-out"),
    submit: str | None = SubmitOpt,
    as_json: bool = JsonOpt,
) -> None:
    """k-fold cross-validation: RMSE, MAE, MPE per fold, baselines, ranking metrics."""
    params: dict[str, Any] = {
        "data": _data(fmt, path),
        "model": {"algorithm": algorithm, "params": _hyper(sets)},
        "k": k,
        "seed": seed,
        "n_jobs": n_jobs,
        "with_surprise": surprise,
    }
    if not ranking:
        params["ranking"] = None
    job = _run("validate", params, submit, as_json)
    if as_json:
        emit_json(job)
        return
    r = job["result"]
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
        rk = r["ranking"]
        kk = rk["k"]
        table(
            f"ranking on the last {rk['n_test']} ratings per user (relevant: >= {rk['threshold']})",
            ["algorithm", f"P@{kk}", f"R@{kk}", f"NDCG@{kk}", f"MAP@{kk}", "hit rate", "coverage"],
            [
                (
                    x["algorithm"],
                    *(
                        f"{x[c]:.4f}"
                        for c in (
                            f"precision@{kk}",
                            f"recall@{kk}",
                            f"ndcg@{kk}",
                            f"map@{kk}",
                            "hit_rate",
                            "coverage",
                        )
                    ),
                )
                for x in rk["results"]
            ],
        )


def search(
    fmt: str = FormatOpt,
    path: Path | None = PathOpt,
    grid: str | None = typer.Option(None, help="JSON, e.g. '{\"n_factors\": [50, 100]}'"),
    space: str | None = typer.Option(
        None, help='JSON, e.g. \'{"lr_all": {"dist": "loguniform", "low": 0.001, "high": 0.02}}\''
    ),
    n_trials: int = typer.Option(20),
    fixed: str = typer.Option("{}", help="JSON of fixed hyperparameters"),
    k: int = typer.Option(5),
    n_jobs: int = typer.Option(1),
    submit: str | None = SubmitOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Hyperparameter search (grid or random) by k-fold CV RMSE."""
    if (grid is None) == (space is None):
        fail("give --grid JSON (grid search) or --space JSON (random search)")
    try:
        params: dict[str, Any] = {
            "data": _data(fmt, path),
            "strategy": "grid" if grid else "random",
            "grid": json.loads(grid) if grid else {},
            "space": json.loads(space) if space else {},
            "n_trials": n_trials,
            "fixed": json.loads(fixed),
            "k": k,
            "n_jobs": n_jobs,
        }
    except json.JSONDecodeError as exc:
        fail(f"--grid/--space/--fixed must be JSON: {exc}")
    job = _run("search", params, submit, as_json)
    if as_json:
        emit_json(job)
        return
    r = job["result"]
    table(
        f"{r['strategy']} search, {len(r['trials'])} trials, {r['total_seconds']:.0f} s",
        ["rank", "RMSE", "MAE", "params"],
        [
            (i + 1, f"{t['rmse']:.4f}", f"{t['mae']:.4f}", json.dumps(t["params"]))
            for i, t in enumerate(r["trials"][:20])
        ],
    )
    console.print(f"best: RMSE {r['best']['rmse']:.4f} with {json.dumps(r['best']['params'])}")


def recommend(
    user: str = typer.Argument(..., help="user id"),
    n: int = typer.Option(10, "--n", "-n", min=1, max=1000, help="list length"),
    category: list[str] | None = typer.Option(None, help="keep items of this category (repeat)"),
    exclude: list[str] | None = typer.Option(None, help="leave this item out (repeat)"),
    api: str | None = typer.Option(None, "--api", help="ask a running API instead of the DB"),
    as_json: bool = JsonOpt,
) -> None:
    """Top-N for USER from the active model."""
    if api:
        params: list[tuple[str, str | int]] = [("n", n)]
        params += [("category", c) for c in category or []] + [
            ("exclude", e) for e in exclude or []
        ]
        out = ApiClient(api).request("GET", f"/api/v1/users/{user}/recommendations", params=params)
    else:
        import re

        from backend.api.routes.recommendations import ID_PATTERN, recommend_for
        from backend.config import get_settings
        from backend.errors import AppError
        from backend.serving.state import ModelHolder

        if not re.match(ID_PATTERN, user):
            fail("USER must be 1-64 characters of [A-Za-z0-9_-]")
        holder = ModelHolder(get_settings().sqlalchemy_url, 60)
        holder.refresh()
        if holder.current is None:
            fail(holder.last_error or "no active model: run `recflow train` first")
        try:
            out = recommend_for(holder.current, user, n, True, exclude, category)
        except AppError as exc:
            fail(exc.message)
    if as_json:
        emit_json(out)
        return
    table(
        f"{out['user']}: {out['strategy']} ({out['model_version']})",
        ["rank", "item", "score", "title"],
        [(i["rank"], i["item"], f"{i['score']:.4f}", i["title"] or "") for i in out["items"]],
    )


simulate_app = typer.Typer(
    help="Scenarios on trained models, without retraining.", no_args_is_help=True
)


@simulate_app.command("precompute")
def simulate_precompute(
    version: str | None = typer.Option(None, help="model version (default: active)"),
    n: int = typer.Option(10, "--n", "-n", min=1, max=1000, help="list length"),
    to_redis: bool = typer.Option(False, help="also write to Redis"),
    as_json: bool = JsonOpt,
) -> None:
    """Every user's top-N to the lake as Parquet (and Redis), with bounded memory."""
    job = run_inline(
        "simulate",
        {"mode": "precompute", "version": version, "n": n, "to_redis": to_redis},
        quiet=as_json,
    )
    if job["state"] != "succeeded":
        fail(job["error"] or "failed")
    emit_json(job["result"]) if as_json else console.print_json(json.dumps(job["result"]))


@simulate_app.command("compare")
def simulate_compare(
    user: str,
    versions: list[str] = typer.Option(..., "--version", help="repeat, 2 or more"),
    n: int = typer.Option(10, "--n", "-n", min=1, max=1000, help="list length"),
    as_json: bool = JsonOpt,
) -> None:
    """USER's top-N under several model versions side by side, with the overlap."""
    job = run_inline(
        "simulate", {"mode": "compare", "user": user, "versions": versions, "n": n}, quiet=as_json
    )
    if job["state"] != "succeeded":
        fail(job["error"] or "failed")
    r = job["result"]
    if as_json:
        emit_json(r)
        return
    lists = r["lists"]
    table(
        f"top-{n} of {user}",
        ["rank", *[f"{x['version']} ({x['source']})" for x in lists]],
        [(i + 1, *[x["items"][i] if i < len(x["items"]) else "" for x in lists]) for i in range(n)],
    )
    for o in r["overlaps"]:
        console.print(f"{o['a']} vs {o['b']}: {o['common']} in common, Jaccard {o['jaccard']:.2f}")


@simulate_app.command("what-if")
def simulate_what_if(
    user: str,
    rate: list[str] = typer.Option(..., "--rate", help="ITEM=RATING (repeat)"),
    n: int = typer.Option(10, "--n", "-n", min=1, max=1000, help="list length"),
    as_json: bool = JsonOpt,
) -> None:
    """What USER would see after these ratings (fold-in, no retraining)."""
    ratings: dict[str, float] = {}
    for r in rate:
        item, _, value = r.partition("=")
        try:
            ratings[item] = float(value)
        except ValueError:
            fail(f"--rate takes ITEM=RATING, got {r!r}")
    job = run_inline(
        "simulate", {"mode": "what_if", "user": user, "ratings": ratings, "n": n}, quiet=as_json
    )
    if job["state"] != "succeeded":
        fail(job["error"] or "failed")
    r = job["result"]
    if as_json:
        emit_json(r)
        return
    table(
        f"{user} after {len(ratings)} hypothetical ratings ({r['version']})",
        ["rank", "item", "score"],
        [(i + 1, x["item"], f"{x['score']:.4f}") for i, x in enumerate(r["items"])],
    )


models_app = typer.Typer(help="The model registry.", no_args_is_help=True)


@models_app.command("list")
def models_list(as_json: bool = JsonOpt) -> None:
    """Model versions with their metrics."""
    from backend.config import get_settings
    from backend.db.migrate import upgrade
    from backend.db.session import session_scope
    from backend.registry import repository as repo
    from backend.registry import service

    settings = get_settings()
    upgrade(settings.sqlalchemy_url)
    with session_scope(settings.sqlalchemy_url) as s:
        rows = [service.to_dict(m) for m in repo.page(s, 100)]
    if as_json:
        emit_json(rows)
        return
    table(
        "models",
        ["id", "version", "algorithm", "active", "cv RMSE", "users", "items"],
        [
            (
                m["id"],
                m["version"],
                m["algorithm"],
                "yes" if m["active"] else "",
                f"{m['metrics']['cv_rmse']:.4f}" if m["metrics"].get("cv_rmse") else "-",
                m["n_users"],
                m["n_items"],
            )
            for m in rows
        ],
    )


@models_app.command("activate")
def models_activate(model_id: int, as_json: bool = JsonOpt) -> None:
    """Make MODEL_ID the version that serves (running APIs reload it within seconds)."""
    from backend.config import get_settings
    from backend.db.migrate import upgrade
    from backend.db.session import session_scope
    from backend.errors import AppError
    from backend.registry import service

    settings = get_settings()
    upgrade(settings.sqlalchemy_url)
    with session_scope(settings.sqlalchemy_url) as s:
        try:
            m = service.activate(s, model_id)
        except AppError as exc:
            fail(exc.message)
        out = {"id": m.id, "version": m.version, "active": True}
    if as_json:
        emit_json(out)
    else:
        console.print(f"model {out['id']} ({out['version']}) is active")


datasets_app = typer.Typer(help="Rating data sets.", no_args_is_help=True)


@datasets_app.command("download")
def datasets_download(
    name: str = typer.Argument(..., help="ml-100k, ml-1m or ml-latest-small"),
    dest: Path = typer.Option(Path("var/datasets"), help="where to unpack"),
    as_json: bool = JsonOpt,
) -> None:
    """Download a MovieLens release and verify its checksum (needs network access)."""
    from backend.recsys.download import download_dataset
    from backend.recsys.errors import DataError

    try:
        out = download_dataset(name, dest)
    except DataError as exc:
        fail(str(exc))
    if as_json:
        emit_json({"dataset": name, "path": str(out)})
    else:
        console.print(f"{name} is in {out}")


@datasets_app.command("synth")
def datasets_synth(
    out: Path = typer.Argument(..., help="CSV file to write (user,item,rating,timestamp)"),
    users: int = typer.Option(1000),
    items: int = typer.Option(500),
    ratings: int = typer.Option(50_000),
    rank: int = typer.Option(10),
    seed: int = typer.Option(0),
    as_json: bool = JsonOpt,
) -> None:
    """Write a seeded synthetic rating set with a known latent-factor structure."""
    from backend.recsys.errors import DataError
    from backend.recsys.synthetic import generate_ratings

    try:
        data = generate_ratings(users, items, ratings, rank=rank, seed=seed)
    except DataError as exc:
        fail(str(exc))
    out.parent.mkdir(parents=True, exist_ok=True)
    data.ratings.frame.to_csv(out, index=False)
    summary = {"ratings": data.ratings.n_ratings, "users": users, "items": items, "path": str(out)}
    if as_json:
        emit_json(summary)
    else:
        console.print(f"{summary['ratings']} ratings of {users} users on {items} items -> {out}")
