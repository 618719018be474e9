"""``recflow datasets``: fetch MovieLens releases and write synthetic rating sets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from backend.cli.errors import CommandGroup
from backend.cli.output import JsonFlag, console, emit_json, fail
from backend.errors import EXIT_UNAVAILABLE

app = typer.Typer(cls=CommandGroup, help="Rating data sets.", no_args_is_help=True)


@app.command("download")
def download(
    name: Annotated[str, typer.Argument(metavar="NAME", help="ml-100k, ml-1m or ml-latest-small")],
    dest: Annotated[Path, typer.Option(help="where to unpack")] = Path("var/datasets"),
    as_json: JsonFlag = False,
) -> None:
    """Download a MovieLens release and verify its checksum (needs network access)."""
    from backend.recsys.download import download_dataset
    from backend.recsys.errors import DownloadError

    # An unknown name is a DataError (exit 2); a failed download is the network's (exit 5).
    try:
        out = download_dataset(name, dest)
    except DownloadError as exc:
        fail(str(exc), EXIT_UNAVAILABLE)
    if as_json:
        emit_json({"dataset": name, "path": str(out)})
    else:
        console.print(f"{name} is in {out}")


@app.command("synth")
def synth(
    out: Annotated[
        Path, typer.Argument(metavar="FILE", help="CSV file to write (user,item,rating,timestamp)")
    ],
    users: Annotated[int, typer.Option(help="users")] = 1000,
    items: Annotated[int, typer.Option(help="items")] = 500,
    ratings: Annotated[int, typer.Option(help="ratings (distinct user-item pairs)")] = 50_000,
    rank: Annotated[int, typer.Option(help="latent factors of the generating model")] = 10,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Write a seeded synthetic rating set with a known latent-factor structure."""
    from backend.recsys.synthetic import generate_ratings

    data = generate_ratings(users, items, ratings, rank=rank, seed=seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    data.ratings.frame.to_csv(out, index=False)
    summary = {"ratings": data.ratings.n_ratings, "users": users, "items": items, "path": str(out)}
    if as_json:
        emit_json(summary)
    else:
        console.print(f"{summary['ratings']} ratings of {users} users on {items} items -> {out}")
