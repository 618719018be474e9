"""``recflow experiments``: define, start and stop the experiment that serving runs.

The commands write the same database the API reads, through the same rules
(``backend.experiments.definitions``): running APIs pick a started or stopped experiment up at
their next refresh, as they do after ``POST /api/v1/experiments/{name}/start``.
"""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError

from backend.cli.db import database
from backend.cli.errors import CommandGroup
from backend.cli.output import JsonFlag, console, emit_json, table, usage
from backend.experiments.schemas import ExperimentIn, ExperimentOut, VariantIn

app = typer.Typer(
    cls=CommandGroup,
    help="Experiments in serving: variants that serve model versions or a strategy.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="the experiment's name")]
VARIANT_HELP = (
    "NAME=WEIGHT:SOURCE, SOURCE a registered model version or 'popular'; repeat per variant "
    "(e.g. --variant A=50:v20261130-120000-svd --variant B=50:popular)"
)


def parse_variant(text: str) -> VariantIn:
    """``NAME=WEIGHT:SOURCE`` as a variant; a usage error (exit 2) names what is wrong."""
    name, eq, rest = text.partition("=")
    weight, colon, source = rest.partition(":")
    if not (eq and colon and name and weight and source):
        usage(f"--variant {text!r}: expected NAME=WEIGHT:SOURCE, e.g. B=50:popular")
    try:
        share = float(weight)
    except ValueError:
        usage(f"--variant {text!r}: the weight {weight!r} is not a number")
    try:
        if source == "popular":
            return VariantIn(name=name, weight=share, strategy="popular")
        return VariantIn(name=name, weight=share, model_version=source)
    except ValidationError as exc:
        usage(f"--variant {text!r}: {first_problem(exc)}")


def first_problem(exc: ValidationError) -> str:
    """The first thing pydantic found wrong, as one line."""
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err["loc"])
    return f"{where}: {err['msg']}" if where else str(err["msg"])


def _show(out: ExperimentOut, as_json: bool) -> None:
    if as_json:
        emit_json(out.model_dump(mode="json"))
        return
    total = sum(v.weight for v in out.variants)
    console.print(f"experiment {out.name}: {out.status}")
    table(
        out.name,
        ["variant", "share", "serves"],
        [
            (v.name, f"{v.weight / total:.1%}", v.model_version or v.strategy or "-")
            for v in out.variants
        ],
    )


@app.command("create")
def create(
    name: NameArg,
    variant: Annotated[list[str], typer.Option("--variant", help=VARIANT_HELP)],
    description: Annotated[str, typer.Option(help="what the experiment tests")] = "",
    start: Annotated[bool, typer.Option("--start", help="start it right away")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Define experiment NAME as a draft (or start it with --start)."""
    from backend.experiments import definitions

    variants = [parse_variant(v) for v in variant]
    try:
        body = ExperimentIn(name=name, description=description, variants=variants)
    except ValidationError as exc:
        usage(first_problem(exc))
    with database() as s:
        out = definitions.create(s, body)
        if start:
            out = definitions.start(s, name)
    _show(out, as_json)


@app.command("start")
def start(name: NameArg, as_json: JsonFlag = False) -> None:
    """Start draft experiment NAME: serving assigns users to its variants."""
    from backend.experiments import definitions

    with database() as s:
        out = definitions.start(s, name)
    _show(out, as_json)


@app.command("stop")
def stop(name: NameArg, as_json: JsonFlag = False) -> None:
    """Stop running experiment NAME: serving goes back to the active model."""
    from backend.experiments import definitions

    with database() as s:
        out = definitions.stop(s, name)
    _show(out, as_json)


@app.command("show")
def show(name: NameArg, as_json: JsonFlag = False) -> None:
    """Experiment NAME: its status and variants."""
    from backend.experiments import definitions

    with database() as s:
        out = definitions.get(s, name)
    _show(out, as_json)
