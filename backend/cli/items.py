"""``recflow items``: the catalogue of items serving shows (titles, categories, hidden items).

The same rules as ``PUT``/``PATCH``/``GET /api/v1/items``; running APIs pick changes up at their
next refresh, and a hidden item is never served.
"""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError

from backend.catalogue.schemas import ITEM_ID_PATTERN, ITEM_ID_RULE, ItemIn, ItemOut, ItemPatch
from backend.cli.db import database
from backend.cli.errors import CommandGroup
from backend.cli.experiments import first_problem
from backend.cli.output import JsonFlag, console, emit_json, table, usage

app = typer.Typer(cls=CommandGroup, help="The item catalogue.", no_args_is_help=True)

ItemArg = Annotated[str, typer.Argument(metavar="ITEM", help=f"the item's id, {ITEM_ID_RULE}")]
TitleOpt = Annotated[str | None, typer.Option("--title", help="the item's title")]
CategoryOpt = Annotated[
    list[str] | None, typer.Option("--category", help="a category (repeat for several)")
]


def _item_id(item: str) -> str:
    import re

    if re.fullmatch(ITEM_ID_PATTERN, item) is None:
        usage(f"item id {item!r} must be {ITEM_ID_RULE}")
    return item


def _print(out: ItemOut, as_json: bool, verb: str = "") -> None:
    if as_json:
        emit_json(out.model_dump(mode="json"))
        return
    shown = "hidden" if out.hidden else "served"
    cats = ", ".join(out.categories) or "no category"
    console.print(f"item {out.item}{verb}: {out.title or '(no title)'} [{cats}] {shown}")


@app.command("put")
def put(
    item: ItemArg,
    title: TitleOpt = None,
    category: CategoryOpt = None,
    hidden: Annotated[bool, typer.Option("--hidden", help="never serve this item")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Create ITEM or replace all its fields (what is not given takes its default)."""
    from backend.catalogue import service

    try:
        body = ItemIn(title=title, categories=category or [], hidden=hidden)
    except ValidationError as exc:
        usage(first_problem(exc))
    with database() as s:
        out, created = service.put(s, _item_id(item), body)
    _print(out, as_json, " created" if created else " replaced")


@app.command("update")
def update(
    item: ItemArg,
    title: TitleOpt = None,
    category: CategoryOpt = None,
    hidden: Annotated[
        bool | None, typer.Option("--hidden/--shown", help="hide the item, or serve it again")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Change only the fields given (PATCH)."""
    from backend.catalogue import service

    given: dict[str, object] = {}
    if title is not None:
        given["title"] = title
    if category is not None:
        given["categories"] = category
    if hidden is not None:
        given["hidden"] = hidden
    if not given:
        usage("nothing to change: give --title, --category or --hidden/--shown")
    try:
        body = ItemPatch.model_validate(given)
    except ValidationError as exc:
        usage(first_problem(exc))
    with database() as s:
        out = service.patch(s, _item_id(item), body)
    _print(out, as_json, " updated")


@app.command("show")
def show(item: ItemArg, as_json: JsonFlag = False) -> None:
    """ITEM as the catalogue holds it."""
    from backend.catalogue import service

    with database() as s:
        out = service.get(s, _item_id(item))
    _print(out, as_json)


@app.command("list")
def list_items(
    category: Annotated[str | None, typer.Option(help="only items of this category")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="at most this many")] = 100,
    after: Annotated[str | None, typer.Option(help="start after this item id")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Items by id, a page at a time."""
    from backend.catalogue import service

    with database() as s:
        page = service.page(s, category, limit, after)
    if as_json:
        emit_json(page.model_dump(mode="json"))
        return
    table(
        "items",
        ["item", "title", "categories", "hidden"],
        [
            (i.item, i.title or "", ", ".join(i.categories), "yes" if i.hidden else "")
            for i in page.items
        ],
    )
    if page.next_after:
        console.print(f"more: --after {page.next_after}")
