"""Serving answers at the API boundary.

The serving routes render their answers with orjson straight from the service's dicts
(``FastJSON``): a pydantic pass would cost more than the scoring. These models are the routes'
``response_model``: FastAPI passes a returned ``Response`` through unvalidated, so they document
the answers in the OpenAPI document at no cost per request, and the schemathesis suite checks
every answer against them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class RankedItemOut(BaseModel):
    rank: int = Field(description="1 for the best")
    item: str
    score: float = Field(description="the model's predicted rating (or similarity)")
    title: str | None = Field(description="from the item metadata given at training, if any")


class RecommendationsOut(BaseModel):
    user: str
    model_version: str
    strategy: Literal["personalized", "popular"] = Field(
        description="popular: the cold-start fallback for a user the model does not know, or "
        "the variant's strategy"
    )
    items: list[RankedItemOut]
    experiment: str | None = Field(description="the running experiment the user is in, if any")
    variant: str | None = Field(description="the user's variant of that experiment, if any")
    recommendation_id: str = Field(
        description="unique id of this answer; impression and feedback events carry it"
    )
    source: Literal["computed", "precomputed"] = Field(
        default="computed",
        description="precomputed: read from the model's precomputed top-N list in Redis "
        "(RECFLOW_SERVING_PRECOMPUTED); computed: scored in memory for this request",
    )


class BatchOut(BaseModel):
    model_version: str
    results: list[RecommendationsOut] = Field(description="in the order of the users given")


class SimilarOut(BaseModel):
    item: str
    model_version: str
    items: list[RankedItemOut]


class HistoryItemOut(BaseModel):
    item: str
    title: str | None


class HistoryOut(BaseModel):
    user: str
    model_version: str
    items: list[HistoryItemOut]


class WhatIfOut(BaseModel):
    user: str
    model_version: str
    strategy: Literal["fold-in"]
    existing_user: bool
    items: list[RankedItemOut]


class ScenarioListOut(BaseModel):
    name: str = Field(description="the model version")
    items: list[str]
    scores: list[float]
    source: Literal["model", "popular"]


class PairOverlapOut(BaseModel):
    a: str
    b: str
    common: int
    jaccard: float
    overlap_at_n: float


class CompareOut(BaseModel):
    user: str
    n: int
    lists: list[ScenarioListOut]
    overlaps: list[PairOverlapOut] = Field(description="one per unordered pair of versions")
