"""``recflow simulate``: scenarios on trained models (top-N for all, side by side, what-if)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from backend.cli.errors import CommandGroup
from backend.cli.inline import run_inline
from backend.cli.output import JsonFlag, console, emit_json, table, usage
from backend.cli.params import ParamOpt, ParamsFileOpt, job_params

app = typer.Typer(
    cls=CommandGroup,
    help="Scenarios on trained models, without retraining.",
    no_args_is_help=True,
)

ListLength = Annotated[
    int | None, typer.Option("--n", "-n", min=1, max=1000, help="list length (default 10)")
]


def _simulate(flags: list[tuple[str, Any]], param: list[str] | None, params_file: Any,
              quiet: bool) -> dict[str, Any]:  # fmt: skip
    params = job_params("simulate", flags, param=param, params_file=params_file)
    result: dict[str, Any] = run_inline("simulate", params, quiet=quiet)["result"]
    return result


@app.command("precompute")
def precompute(
    version: Annotated[
        str | None,
        typer.Option(help="model version (default: the active one)", show_default=False),
    ] = None,
    n: ListLength = None,
    to_redis: Annotated[
        bool, typer.Option("--to-redis/--no-to-redis", help="also write each list to Redis")
    ] = False,
    memory_budget_mb: Annotated[
        int | None,
        typer.Option(help="memory for the score blocks (default 256)", show_default=False),
    ] = None,
    param: ParamOpt = None,
    params_file: ParamsFileOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Every user's top-N to the lake as Parquet (and Redis), with bounded memory."""
    flags = [("mode", "precompute"), ("version", version), ("n", n),
             ("to_redis", to_redis or None), ("memory_budget_mb", memory_budget_mb)]  # fmt: skip
    r = _simulate(flags, param, params_file, as_json)
    emit_json(r) if as_json else console.print_json(json.dumps(r))


@app.command("compare")
def compare(
    user: Annotated[str, typer.Argument(metavar="USER", help="user id")],
    versions: Annotated[
        list[str], typer.Option("--version", help="model version (repeat, 2 or more)")
    ],
    n: ListLength = None,
    param: ParamOpt = None,
    params_file: ParamsFileOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """USER's top-N under several model versions side by side, with the overlap."""
    flags = [("mode", "compare"), ("user", user), ("versions", versions), ("n", n)]
    r = _simulate(flags, param, params_file, as_json)
    if as_json:
        emit_json(r)
        return
    lists = r["lists"]
    length = max((len(x["items"]) for x in lists), default=0)
    table(
        f"top-{length} of {user}",
        ["rank", *[f"{x['version']} ({x['source']})" for x in lists]],
        [
            (i + 1, *[x["items"][i] if i < len(x["items"]) else "" for x in lists])
            for i in range(length)
        ],
    )
    for o in r["overlaps"]:
        console.print(f"{o['a']} vs {o['b']}: {o['common']} in common, Jaccard {o['jaccard']:.2f}")


@app.command("what-if")
def what_if(
    user: Annotated[str, typer.Argument(metavar="USER", help="user id")],
    rate: Annotated[list[str], typer.Option("--rate", metavar="ITEM=RATING", help="(repeat)")],
    n: ListLength = None,
    reg: Annotated[
        float | None,
        typer.Option(
            help="fold-in regularisation (default 5; an implicit model's own λ)", show_default=False
        ),
    ] = None,
    param: ParamOpt = None,
    params_file: ParamsFileOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """What USER would see after these ratings (fold-in, no retraining)."""
    ratings: dict[str, float] = {}
    for r in rate:
        item, _, value = r.partition("=")
        try:
            ratings[item] = float(value)
        except ValueError:
            usage(f"--rate takes ITEM=RATING, got {r!r}")
    flags = [("mode", "what_if"), ("user", user), ("ratings", ratings), ("n", n), ("reg", reg)]
    result = _simulate(flags, param, params_file, as_json)
    if as_json:
        emit_json(result)
        return
    table(
        f"{user} after {len(ratings)} hypothetical ratings ({result['version']})",
        ["rank", "item", "score"],
        [(i + 1, x["item"], f"{x['score']:.4f}") for i, x in enumerate(result["items"])],
    )
