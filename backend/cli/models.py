"""``recflow models``: the model registry (list the versions, choose the one that serves)."""

from __future__ import annotations

from typing import Annotated

import typer

from backend.cli.db import database
from backend.cli.errors import CommandGroup
from backend.cli.output import JsonFlag, console, emit_json, table

app = typer.Typer(cls=CommandGroup, help="The model registry.", no_args_is_help=True)


@app.command("list")
def models_list(as_json: JsonFlag = False) -> None:
    """Model versions with their metrics."""
    from backend.registry import service

    with database() as s:
        rows = [m.model_dump() for m in service.list_models(s, 100).items]
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


@app.command("activate")
def models_activate(
    model_id: Annotated[
        int, typer.Argument(metavar="MODEL_ID", help="the model's id (see `recflow models list`)")
    ],
    as_json: JsonFlag = False,
) -> None:
    """Make MODEL_ID the version that serves (running APIs reload it within seconds)."""
    from backend.registry import service

    # An unknown id or an artifact that cannot be loaded is the registry's error (exit 3 or 4).
    with database() as s:
        m = service.activate(s, model_id)
        out = {"id": m.id, "version": m.version, "active": True}
    if as_json:
        emit_json(out)
    else:
        console.print(f"model {out['id']} ({out['version']}) is active")
