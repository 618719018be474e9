"""Parameter schemas shared by the recommender jobs: where ratings and item metadata come from."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from backend.config import Settings
from backend.recsys.datasets import Ratings, RatingsSource, load_ratings, ratings_from_frame
from backend.recsys.synthetic import generate_ratings

RatingsFormat = Literal["ml-100k", "ml-1m", "ml-latest", "csv", "parquet", "lake", "synthetic"]


class RatingsParams(BaseModel):
    """Ratings to train or validate on. ``lake`` reads the rating events the ingest job wrote."""

    model_config = ConfigDict(extra="forbid")

    format: RatingsFormat = "lake"
    path: str | None = Field(
        default=None, description="file or folder (MovieLens: the release folder); not for lake"
    )
    user_col: str = "user"
    item_col: str = "item"
    rating_col: str = "rating"
    timestamp_col: str | None = "timestamp"
    scale: tuple[float, float] | None = None
    sep: str = ","
    # synthetic: a seeded latent-factor model with known structure
    n_users: int = Field(default=1000, ge=2, le=10_000_000)
    n_items: int = Field(default=500, ge=2, le=10_000_000)
    n_ratings: int = Field(default=50_000, ge=1, le=100_000_000)
    rank: int = Field(default=10, ge=1, le=500)
    seed: int = 0

    @model_validator(mode="after")
    def _path_needed(self) -> RatingsParams:
        if self.format not in ("lake", "synthetic") and not self.path:
            raise ValueError(f"format {self.format} needs a path")
        return self

    def describe(self) -> str:
        if self.format == "synthetic":
            return f"synthetic {self.n_users}x{self.n_items}, {self.n_ratings} ratings"
        return f"{self.format} {self.path or ''}".strip()


def load(params: RatingsParams, settings: Settings) -> Ratings:
    if params.format == "synthetic":
        return generate_ratings(
            params.n_users, params.n_items, params.n_ratings, rank=params.rank, seed=params.seed
        ).ratings
    if params.format == "lake":
        # The lake readers give the latest rating per (user, item) from the rating events.
        from backend.pipeline.lake import read_ratings

        frame = read_ratings(Path(params.path) if params.path else settings.lake_dir)
        return ratings_from_frame(frame, params.scale or (1.0, 5.0), source="the lake")
    path = Path(params.path or "")
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


class ItemsParams(BaseModel):
    """Item metadata (titles, genres) for serving titles and category filters."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["ml-100k", "ml-1m", "ml-latest"] = "ml-100k"
    path: str


class AlgoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    algorithm: Literal["svd", "svdpp", "baseline", "global_mean"] = "svd"
    params: dict[str, float | int | bool | str | None] = Field(
        default_factory=dict,
        description="hyperparameters, e.g. n_factors, n_epochs, lr_all, reg_all, biased, "
        "random_state",
    )


def scaled(
    progress: Callable[[float, str], None], start: float, width: float
) -> Callable[[float, str], None]:
    """Map a sub-task's progress in [0, 1] onto [start, start + width] of the job."""
    return lambda f, m: progress(start + width * f, m)
