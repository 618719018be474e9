"""Parameter schemas shared by the recommender jobs: where ratings and item metadata come from.

Paths are checked against the allowed roots (``backend.paths``) when the params are validated
with settings in the context (at submit time and again in the worker), and once more by
:func:`load` and :meth:`ItemsParams.folder` just before the files are read.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from backend.config import Settings
from backend.jobs.params import (
    HyperValue,
    JobParams,
    at_most,
    context_settings,
    custom_error,
    path_error,
)
from backend.paths import PathNotAllowedError, confine, confine_member, confine_tree
from backend.recsys.algorithms import AlgoSpec
from backend.recsys.datasets import Ratings, RatingsSource, load_ratings, ratings_from_frame
from backend.recsys.errors import DataError
from backend.recsys.synthetic import generate_ratings

RatingsFormat = Literal["ml-100k", "ml-1m", "ml-latest", "csv", "parquet", "lake", "synthetic"]
ItemsFormat = Literal["ml-100k", "ml-1m", "ml-latest"]

# The files each MovieLens release is read from (ratings; item metadata, then optional ones).
RATINGS_FILE: dict[str, str] = {
    "ml-100k": "u.data",
    "ml-1m": "ratings.dat",
    "ml-latest": "ratings.csv",
}
ITEMS_FILES: dict[str, tuple[str, ...]] = {
    "ml-100k": ("u.item",),
    "ml-1m": ("movies.dat",),
    "ml-latest": ("movies.csv",),
}
OPTIONAL_ITEMS_FILES: dict[str, tuple[str, ...]] = {"ml-100k": ("u.genre",)}


def confine_ratings(fmt: str, raw: str, settings: Settings, *, field: str = "path") -> Path:
    """The resolved ratings path of format ``fmt``, with every file it reads checked.

    csv: a file; parquet: a file or a folder (all its files count toward the size cap); lake: a
    folder (its files must stay inside the roots; the reader takes only the rating columns);
    MovieLens: the release folder or the ratings file itself.
    """
    if fmt == "csv":
        return confine(raw, settings, field=field, kind="file")
    if fmt == "lake":
        folder = confine(raw, settings, field=field, kind="dir")
        confine_tree(folder, settings, field=field, cap=False)
        return folder
    path = confine(raw, settings, field=field, kind="any")
    if fmt == "parquet":
        if path.is_dir():
            confine_tree(path, settings, field=field)
        return path
    confine_member(path, RATINGS_FILE[fmt], settings, field=field)
    return path


class RatingsParams(JobParams):
    """Ratings to train or validate on. ``lake`` reads the rating events the ingest job wrote."""

    format: RatingsFormat = "lake"
    path: str | None = Field(
        default=None,
        description="file or folder (MovieLens: the release folder) inside the data dir, its "
        "uploads dir or a RECFLOW_DATA_ROOTS entry; lake: default the data dir's lake",
    )
    user_col: str = "user"
    item_col: str = "item"
    rating_col: str = "rating"
    timestamp_col: str | None = "timestamp"
    scale: tuple[float, float] | None = None
    sep: str = Field(default=",", min_length=1, max_length=4, description="csv separator")
    # synthetic: a seeded latent-factor model with known structure
    n_users: int = Field(default=1000, ge=2, le=10_000_000)
    n_items: int = Field(default=500, ge=2, le=10_000_000)
    n_ratings: int = Field(
        default=50_000, ge=1, description="at most RECFLOW_MAX_SYNTHETIC_RATINGS (20,000,000)"
    )
    rank: int = Field(default=10, ge=1, description="at most RECFLOW_MAX_SYNTHETIC_RANK (256)")
    seed: int = 0

    @field_validator("path")
    @classmethod
    def _confined(cls, value: str | None, info: ValidationInfo) -> str | None:
        settings = context_settings(info)
        fmt = info.data.get("format")
        if value is None or settings is None or fmt is None or fmt == "synthetic":
            return value
        try:
            confine_ratings(fmt, value, settings)
        except PathNotAllowedError as exc:
            raise path_error(exc) from None
        return value

    @field_validator("n_ratings")
    @classmethod
    def _ratings_ceiling(cls, value: int, info: ValidationInfo) -> int:
        at_most(value, info, "max_synthetic_ratings")
        return value

    @field_validator("rank")
    @classmethod
    def _rank_ceiling(cls, value: int, info: ValidationInfo) -> int:
        at_most(value, info, "max_synthetic_rank")
        return value

    @field_validator("scale")
    @classmethod
    def _scale(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not value[0] < value[1]:
            raise ValueError(f"scale must be (low, high) with low < high; got {list(value)}")
        return value

    @model_validator(mode="after")
    def _path_needed(self) -> RatingsParams:
        if self.format not in ("lake", "synthetic") and not self.path:
            raise ValueError(f"format {self.format} needs a path")
        if self.format == "synthetic" and self.n_ratings > self.n_users * self.n_items // 2:
            # generate_ratings draws distinct (user, item) pairs from at most half the cells.
            raise ValueError(
                f"n_ratings={self.n_ratings} must be at most half the {self.n_users}x"
                f"{self.n_items} cells ({self.n_users * self.n_items // 2}); add users or items"
            )
        return self

    def describe(self) -> str:
        if self.format == "synthetic":
            return f"synthetic {self.n_users}x{self.n_items}, {self.n_ratings} ratings"
        # The path's last part only: a job's result never shows where the server keeps files.
        return f"{self.format} {Path(self.path).name if self.path else ''}".strip()


def load(params: RatingsParams, settings: Settings) -> Ratings:
    if params.format == "synthetic":
        return generate_ratings(
            params.n_users, params.n_items, params.n_ratings, rank=params.rank, seed=params.seed
        ).ratings
    if params.format == "lake":
        # The lake readers give the latest rating per (user, item) from the rating events.
        from backend.lake.readers import read_ratings

        folder = (
            confine_ratings("lake", params.path, settings, field="data.path")
            if params.path
            else settings.lake_dir
        )
        frame = read_ratings(folder)
        return ratings_from_frame(frame, params.scale or (1.0, 5.0), source="the lake")
    # Checked again right before reading: the file may have changed since the job was queued.
    path = confine_ratings(params.format, params.path or "", settings, field="data.path")
    return load_ratings(
        RatingsSource(
            format=params.format,
            path=path,
            user_col=params.user_col,
            item_col=params.item_col,
            rating_col=params.rating_col,
            timestamp_col=params.timestamp_col,
            scale=params.scale,
            sep=params.sep,
        )
    )


class ItemsParams(JobParams):
    """Item metadata (titles, genres) for serving titles and category filters."""

    format: ItemsFormat = "ml-100k"
    path: str = Field(description="the MovieLens release folder (inside the allowed roots)")

    @field_validator("path")
    @classmethod
    def _confined(cls, value: str, info: ValidationInfo) -> str:
        settings = context_settings(info)
        fmt = info.data.get("format")
        if settings is not None and fmt is not None:
            try:
                confine_items(fmt, value, settings)
            except PathNotAllowedError as exc:
                raise path_error(exc) from None
        return value

    def folder(self, settings: Settings) -> Path:
        """The resolved release folder (or file), checked again right before it is read."""
        return confine_items(self.format, self.path, settings, field="items.path")


def confine_items(fmt: str, raw: str, settings: Settings, *, field: str = "path") -> Path:
    """The resolved item metadata path of a MovieLens release, with each file it reads checked."""
    path = confine(raw, settings, field=field, kind="any")
    for name in ITEMS_FILES[fmt]:
        confine_member(path, name, settings, field=field)
    # Optional files sit beside the main one (ml-100k's u.genre), also when path is that file.
    folder = path if path.is_dir() else path.parent
    for name in OPTIONAL_ITEMS_FILES.get(fmt, ()):
        member = folder / name
        if member.exists() or member.is_symlink():
            confine(member, settings, field=f"{field} ({name})", kind="file")
    return path


class AlgoParams(JobParams):
    algorithm: Literal[
        "svd", "svdpp", "baseline", "global_mean", "implicit_als", "item_knn", "als"
    ] = "svd"
    params: dict[str, HyperValue] = Field(
        default_factory=dict,
        description="hyperparameters, e.g. n_factors, n_epochs, lr_all, reg_all, biased, "
        "random_state (implicit_als: factors, regularization, alpha, iterations, use_cg, "
        "dtype, num_threads, random_state)",
    )

    @field_validator("params")
    @classmethod
    def _known(cls, value: dict[str, HyperValue], info: ValidationInfo) -> dict[str, HyperValue]:
        algorithm = info.data.get("algorithm")
        if algorithm is not None:
            check_hyperparameters(algorithm, value)
        return value


def check_hyperparameters(algorithm: str, params: dict[str, HyperValue]) -> None:
    """Refuse names the algorithm does not have and values it cannot take (AlgoSpec's rules)."""
    try:
        AlgoSpec(algorithm, params)
    except DataError as exc:
        raise custom_error("hyperparameter", str(exc)) from None


def scaled(
    progress: Callable[[float, str], None], start: float, width: float
) -> Callable[[float, str], None]:
    """Map a sub-task's progress in [0, 1] onto [start, start + width] of the job."""
    return lambda f, m: progress(start + width * f, m)
