"""``recflow recommend``: a user's top-N from the active model, here or from a running API."""

from __future__ import annotations

import re
from typing import Annotated

import typer

from backend.cli.client import ApiClient
from backend.cli.output import JsonFlag, emit_json, fail, table, usage
from backend.errors import EXIT_UNAVAILABLE


def recommend(
    user: Annotated[str, typer.Argument(metavar="USER", help="user id")],
    n: Annotated[int, typer.Option("--n", "-n", min=1, max=1000, help="list length")] = 10,
    category: Annotated[
        list[str] | None,
        typer.Option(help="keep items of this category (repeat)", show_default=False),
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option(help="leave this item out (repeat)", show_default=False)
    ] = None,
    api: Annotated[
        str | None,
        typer.Option(
            "--api", metavar="URL", help="ask a running API instead of the DB", show_default=False
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Top-N for USER from the active model."""
    if api:
        params: list[tuple[str, str | int]] = [("n", n)]
        params += [("category", c) for c in category or []] + [
            ("exclude", e) for e in exclude or []
        ]
        out = ApiClient(api).request("GET", f"/api/v1/users/{user}/recommendations", params=params)
    else:
        from backend.config import get_settings
        from backend.serving.service import ID_PATTERN, recommend_for
        from backend.serving.state import ModelHolder

        if not re.match(ID_PATTERN, user):
            usage("USER must be 1-64 characters of [A-Za-z0-9_-]")
        holder = ModelHolder(get_settings().sqlalchemy_url, 60)
        holder.refresh()
        if holder.current is None:
            fail(
                holder.last_error or "no active model: run `recflow train` first", EXIT_UNAVAILABLE
            )
        out = recommend_for(holder.current, user, n, True, exclude, category)
    if as_json:
        emit_json(out)
        return
    table(
        f"{out['user']}: {out['strategy']} ({out['model_version']})",
        ["rank", "item", "score", "title"],
        [(i["rank"], i["item"], f"{i['score']:.4f}", i["title"] or "") for i in out["items"]],
    )
