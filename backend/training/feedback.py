"""Implicit feedback for the training jobs: where interactions come from and how they weigh.

An implicit algorithm (``IMPLICIT_JOB_ALGORITHMS``) trains on interactions, built by
``backend.recsys.interactions`` either from the lake's events (``source=events``: views, clicks,
purchases, ratings and impressions, read here with the lake readers) or from the ratings the
``data`` section names (``source=ratings``: ratings at or above ``rating_threshold`` are
positives). By default the lake's events feed an implicit model when ``data.format`` is
``lake``, and ratings otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd
from pydantic import Field, model_validator

from backend.config import Settings
from backend.jobs.params import JobParams
from backend.recsys.datasets import fingerprint
from backend.recsys.errors import DataError
from backend.recsys.interactions import InteractionWeights, from_events, from_ratings
from backend.training.sources import RatingsParams, confine_ratings, load

#: The job algorithms that learn from interactions rather than ratings.
IMPLICIT_JOB_ALGORITHMS: tuple[str, ...] = ("implicit_als", "item_knn")


class FeedbackParams(JobParams):
    """How events become one confidence per (user, item) (``InteractionWeights``)."""

    source: Literal["events", "ratings"] | None = Field(
        default=None,
        description="events: the lake's events; ratings: data's ratings at or above "
        "rating_threshold (default: events when data.format is lake, else ratings)",
    )
    view: float = Field(default=1.0, ge=0)
    click: float = Field(default=2.0, ge=0)
    purchase: float = Field(default=4.0, ge=0)
    rating: float = Field(default=1.0, ge=0, description="weight of a rating >= threshold")
    rating_threshold: float = 4.0
    impression_negatives: bool = Field(
        default=False, description="a shown item with no positive event is a negative"
    )
    impression: float = Field(default=1.0, ge=0, description="strength of such a negative")
    half_life_days: float | None = Field(
        default=None, gt=0, description="halve an event's weight every this many days"
    )

    def weights(self) -> InteractionWeights:
        return InteractionWeights(
            view=self.view,
            click=self.click,
            purchase=self.purchase,
            rating=self.rating,
            rating_threshold=self.rating_threshold,
            impression_negatives=self.impression_negatives,
            impression=self.impression,
            half_life_days=self.half_life_days,
        )

    @model_validator(mode="after")
    def _finite(self) -> FeedbackParams:
        # InteractionWeights' own checks, so a bad weight fails at submit time.
        self.weights()
        return self


@dataclass(frozen=True, eq=False)
class Interactions:
    """Interactions loaded for a job, their fingerprint, and what they were built from."""

    frame: pd.DataFrame
    fingerprint: str
    source: str
    rows_read: int

    @property
    def n_users(self) -> int:
        return int(self.frame["user"].nunique())

    @property
    def n_items(self) -> int:
        return int(self.frame["item"].nunique())


def is_implicit(algorithm: str) -> bool:
    """Whether a job's algorithm trains on interactions."""
    return algorithm in IMPLICIT_JOB_ALGORITHMS


def load_interactions(
    data: RatingsParams, feedback: FeedbackParams | None, settings: Settings
) -> Interactions:
    """The interactions ``feedback`` describes, from the lake's events or ``data``'s ratings."""
    fb = feedback or FeedbackParams()
    source = fb.source or ("events" if data.format == "lake" else "ratings")
    if source == "events":
        if data.format != "lake":
            raise DataError("feedback.source=events reads the lake; set data.format to lake")
        from backend.lake.readers import read_events

        folder = (
            confine_ratings("lake", data.path, settings, field="data.path")
            if data.path
            else settings.lake_dir
        )
        events = read_events(folder, columns=["user", "item", "type", "rating", "ts"])
        frame = from_events(events, fb.weights())
        rows = len(events)
    else:
        ratings = load(data, settings)
        frame = from_ratings(ratings, fb.weights())
        rows = ratings.n_ratings
    if frame.empty:
        raise DataError(
            f"the {source} hold no positive interaction with these weights; lower "
            "feedback.rating_threshold or raise the weights"
        )
    digest = fingerprint(frame.rename(columns={"confidence": "rating"}))
    return Interactions(frame=frame, fingerprint=digest, source=source, rows_read=rows)
