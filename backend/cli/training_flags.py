"""The flags ``recflow train``, ``validate`` and ``search`` share, and the params they build.

One function, :func:`training_params`, turns them into a job's params, with ``--param`` and
``--params-file`` (see ``backend.cli.params``): a search holds its algorithm and fixed
hyperparameters at the top, train and validate in ``model``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from backend.cli.output import usage
from backend.cli.params import NULL, assignments, job_params, pair
from backend.training.sources import RatingsFormat

Algorithm = Literal["svd", "svdpp", "baseline", "global_mean", "implicit_als", "item_knn", "als"]

FormatOpt = Annotated[
    RatingsFormat | None,
    typer.Option(
        "--format",
        "-f",
        metavar="FORMAT",
        help="ratings: ml-100k, ml-1m, ml-latest, csv, parquet, lake (default) or synthetic",
        show_default=False,
    ),
]
PathOpt = Annotated[
    Path | None,
    typer.Option(
        "--path", metavar="PATH", help="ratings file or MovieLens folder", show_default=False
    ),
]
UserColOpt = Annotated[
    str | None,
    typer.Option("--user-col", metavar="NAME", help="csv/parquet: user column (default user)"),
]
ItemColOpt = Annotated[
    str | None,
    typer.Option("--item-col", metavar="NAME", help="csv/parquet: item column (default item)"),
]
RatingColOpt = Annotated[
    str | None,
    typer.Option(
        "--rating-col", metavar="NAME", help="csv/parquet: rating column (default rating)"
    ),
]
TimestampColOpt = Annotated[
    str | None,
    typer.Option(
        "--timestamp-col",
        metavar="NAME",
        help="csv/parquet: timestamp column (default timestamp); 'none' if there is none",
    ),
]
ScaleOpt = Annotated[
    str | None,
    typer.Option(
        "--scale",
        metavar="LOW,HIGH",
        help="rating scale, e.g. 0.5,5 for half stars (default: 1,5)",
    ),
]
SepOpt = Annotated[
    str | None, typer.Option("--sep", metavar="TEXT", help="csv separator (default ',')")
]
AlgorithmOpt = Annotated[
    Algorithm | None,
    typer.Option(
        "--algorithm",
        metavar="NAME",
        help="svd (default), svdpp, baseline, global_mean; implicit feedback: implicit_als, "
        "item_knn; on Spark: als (explicit, or implicit with --set implicit=true)",
        show_default=False,
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="NAME=VALUE",
        help="hyperparameter, e.g. --set n_factors=50 (repeat)",
        show_default=False,
    ),
]
FeedbackOpt = Annotated[
    Literal["events", "ratings"] | None,
    typer.Option(
        "--feedback",
        metavar="SOURCE",
        help="implicit algorithms: events (the lake's views, clicks, purchases, ratings) or "
        "ratings (>= --param feedback.rating_threshold, default 4); default events for the "
        "lake, else ratings; weights via --param feedback.click=2 ...",
        show_default=False,
    ),
]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="random seed (default 0)")]
NJobsOpt = Annotated[int | None, typer.Option("--n-jobs", help="folds run in parallel (default 1)")]
FoldsOpt = Annotated[int | None, typer.Option("--k", "-k", help="folds (default 5)")]
SubmitOpt = Annotated[
    str | None,
    typer.Option(
        "--submit",
        metavar="URL",
        help="send the job to the API at URL instead of running it here",
        show_default=False,
    ),
]


@dataclass(frozen=True)
class Shared:
    """The flags train, validate and search share: where the ratings are, the model, the run."""

    fmt: str | None = None
    path: Path | None = None
    user_col: str | None = None
    item_col: str | None = None
    rating_col: str | None = None
    timestamp_col: str | None = None
    scale: str | None = None
    sep: str | None = None
    algorithm: str | None = None
    sets: list[str] | None = None
    seed: int | None = None
    n_jobs: int | None = None
    param: list[str] | None = None
    params_file: Path | None = None
    feedback: str | None = None


def existing(path: Path | None, option: str) -> str | None:
    """The resolved path a flag names (None when not given); a missing one is a usage error."""
    if path is None:
        return None
    if not path.exists():
        usage(f"{option}: no such file or folder: {path}")
    return str(path.resolve())


def training_params(kind: str, shared: Shared, own: dict[str, Any]) -> dict[str, Any]:
    """The params of a train, validate or search job from its flags.

    ``own`` holds the command's own flags by dotted param key (None: not given). A search holds
    its algorithm and fixed hyperparameters at the top; train and validate in ``model``.
    """
    timestamp: Any = shared.timestamp_col
    if timestamp is not None and timestamp.lower() in ("", "none"):
        timestamp = NULL
    search = kind == "search"
    flags: list[tuple[str, Any]] = [
        ("data.format", shared.fmt),
        ("data.path", existing(shared.path, "--path")),
        ("data.user_col", shared.user_col),
        ("data.item_col", shared.item_col),
        ("data.rating_col", shared.rating_col),
        ("data.timestamp_col", timestamp),
        ("data.scale", None if shared.scale is None else list(pair(shared.scale, "--scale"))),
        ("data.sep", shared.sep),
        ("algorithm" if search else "model.algorithm", shared.algorithm),
        ("seed", shared.seed),
        ("n_jobs", shared.n_jobs),
        ("feedback.source", shared.feedback),
        *own.items(),
        *assignments(
            shared.sets or [], option="--set", prefix="fixed." if search else "model.params."
        ),
    ]
    return job_params(kind, flags, param=shared.param, params_file=shared.params_file)
