"""Serving: top-N per user, batches, similar items, history and what-if, from memory.

The routes answer with ``FastJSON`` (orjson straight from the service's dicts): FastAPI returns a
``Response`` as it is, so ``response_model`` documents each answer and costs nothing per request.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from backend.api.responses import FastJSON, errors
from backend.errors import InvalidInputError
from backend.jsonable import to_jsonable
from backend.registry.schemas import VERSION_PATTERN
from backend.serving import precomputed, service
from backend.serving.impressions import ImpressionLogger
from backend.serving.precomputed import PrecomputedReader
from backend.serving.schemas import (
    BatchOut,
    CompareOut,
    HistoryOut,
    RecommendationsOut,
    SimilarOut,
    WhatIfOut,
)
from backend.serving.service import ID_PATTERN, ID_RULE
from backend.serving.state import ModelHolder, ServingModel

router = APIRouter(tags=["recommendations"])

UserId = Annotated[str, Path(pattern=ID_PATTERN, description=f"user id, {ID_RULE}")]
ItemId = Annotated[str, Path(pattern=ID_PATTERN, description=f"item id, {ID_RULE}")]
N = Annotated[int, Query(ge=1, le=1000, description="list length, 1-1000")]
SERVING_ERRORS = errors(
    503, s503="no active model yet, or it cannot be loaded; the message says what to do"
)


def _holder(request: Request) -> ModelHolder:
    holder: ModelHolder = request.app.state.models
    return holder


def _serving(request: Request) -> ServingModel:
    return service.active(_holder(request))


_NO_READER = object()


def _precomputed(request: Request) -> PrecomputedReader | None:
    """The app's reader of precomputed lists (None when RECFLOW_SERVING_PRECOMPUTED is off),
    made on first use inside the event loop that its asyncio Redis client then belongs to."""
    state = request.app.state
    reader = getattr(state, "precomputed", _NO_READER)
    if reader is _NO_READER:
        reader = state.precomputed = precomputed.from_settings(state.settings)
    return reader  # type: ignore[return-value]


def _shown(request: Request, answers: list[dict[str, Any]]) -> None:
    """Log the impressions of what was served (buffered: never waits for the sink)."""
    logger: ImpressionLogger | None = request.app.state.impressions
    if logger is not None:
        ts = int(time.time() * 1000)
        for answer in answers:
            logger.log(answer, ts)


def _split(values: list[str] | None) -> list[str] | None:
    """Accept both repeated parameters and comma-separated lists."""
    if not values:
        return None
    return [v for value in values for v in value.split(",") if v]


_QUERY_DOCS = [
    {
        "name": "n",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10},
        "description": "list length",
    },
    {
        "name": "exclude_seen",
        "in": "query",
        "schema": {"type": "boolean", "default": True},
        "description": "leave out items the user rated in training",
    },
    {
        "name": "exclude",
        "in": "query",
        "schema": {"type": "array", "items": {"type": "string"}},
        "description": "item ids to leave out (repeat, or comma-separated)",
    },
    {
        "name": "category",
        "in": "query",
        "schema": {"type": "array", "items": {"type": "string"}},
        "description": "keep only items of these categories (repeat, or comma-separated)",
    },
]
_ID_RE = re.compile(ID_PATTERN)
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _int_query(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInputError(f"query.{name}: must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise InvalidInputError(f"query.{name}: must be between {low} and {high}, got {value}")
    return value


def _bool_query(request: Request, name: str, default: bool) -> bool:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise InvalidInputError(f"query.{name}: must be true or false, got {raw!r}")


@router.get(
    "/users/{user_id}/recommendations",
    response_class=FastJSON,
    response_model=RecommendationsOut,
    responses=SERVING_ERRORS,
    openapi_extra={"parameters": _QUERY_DOCS},
)
async def user_recommendations(request: Request, user_id: str) -> FastJSON:
    """Top-N for a user from the active model, or from their variant of the running experiment;
    unknown users get the popularity fallback."""
    # The hot path reads its query parameters by hand: FastAPI's generic parsing of list
    # parameters cost more than the scoring itself (bench/serve.py). Rules match the docs above.
    if not _ID_RE.match(user_id):
        raise InvalidInputError(f"path.user_id: must be {ID_RULE}, got {user_id[:80]!r}")
    n = _int_query(request, "n", 10, 1, 1000)
    exclude_seen = _bool_query(request, "exclude_seen", True)
    q = request.query_params
    exclude = _split(q.getlist("exclude"))
    category = _split(q.getlist("category"))
    reader = _precomputed(request)
    if reader is None:
        answer = service.serve(_holder(request), user_id, n, exclude_seen, exclude, category)
    else:
        answer = await service.serve_read(
            _holder(request), reader, user_id, n, exclude_seen, exclude, category
        )
    _shown(request, [answer])
    return FastJSON(answer)


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    users: list[Annotated[str, Field(pattern=ID_PATTERN)]] = Field(min_length=1, max_length=1000)
    n: int = Field(default=10, ge=1, le=1000)
    exclude_seen: bool = True
    exclude: list[str] | None = None
    category: list[str] | None = None


@router.post(
    "/recommendations/batch",
    response_class=FastJSON,
    response_model=BatchOut,
    responses=SERVING_ERRORS,
)
async def batch_recommendations(request: Request, body: BatchRequest) -> FastJSON:
    """Top-N for up to 1,000 users in one call (each in their experiment variant, if any)."""
    out = service.serve_batch(
        _holder(request), body.users, body.n, body.exclude_seen, body.exclude, body.category
    )
    _shown(request, out["results"])
    return FastJSON(out)


@router.get(
    "/items/{item_id}/similar",
    response_class=FastJSON,
    response_model=SimilarOut,
    responses={
        **SERVING_ERRORS,
        **errors(404, s404="the item is not in the active model's catalogue"),
    },
)
async def similar(request: Request, item_id: ItemId, n: N = 10) -> FastJSON:
    """Items most similar to this one (cosine similarity of the item factors)."""
    return FastJSON(service.similar(_serving(request), item_id, n))


@router.get(
    "/users/{user_id}/history",
    response_class=FastJSON,
    response_model=HistoryOut,
    responses={
        **SERVING_ERRORS,
        **errors(404, s404="the user has no history in the active model"),
    },
)
async def history(request: Request, user_id: UserId) -> FastJSON:
    """Items the user rated in the data the active model was trained on."""
    return FastJSON(service.history(_serving(request), user_id))


class WhatIfRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    ratings: dict[str, float] = Field(
        min_length=1, max_length=1000, description="hypothetical ratings: item id -> rating"
    )
    n: int = Field(default=10, ge=1, le=1000)
    reg: float | None = Field(
        default=None,
        ge=0,
        le=1e6,
        description="ridge penalty λ of the fold-in; default 5 for a rating model, the model's "
        "own λ for an implicit one",
    )
    category: list[str] | None = None


@router.post(
    "/users/{user_id}/what-if",
    response_class=FastJSON,
    response_model=WhatIfOut,
    responses=SERVING_ERRORS,
)
async def what_if(request: Request, user_id: UserId, body: WhatIfRequest) -> FastJSON:
    """What this user would see after these ratings: fold-in by ridge regression, no retraining."""
    sm = _serving(request)
    return FastJSON(service.what_if(sm, user_id, body.ratings, body.n, body.reg, body.category))


class CompareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    user: Annotated[str, Field(pattern=ID_PATTERN)]
    versions: list[Annotated[str, Field(pattern=VERSION_PATTERN)]] = Field(
        min_length=1, max_length=4, description="model versions (1-64 of [A-Za-z0-9._-])"
    )
    n: int = Field(default=10, ge=1, le=1000)


@router.post(
    "/scenarios/compare",
    response_class=FastJSON,
    response_model=CompareOut,
    responses=errors(
        404,
        409,
        s404="an unknown model version, or a user no version knows",
        s409="a version's artifact cannot be loaded; the message says what to do",
    ),
)
async def compare(request: Request, body: CompareRequest) -> FastJSON:
    """The user's top-N under several model versions side by side, with their overlap."""
    # A version not in memory is read from SQL and loaded from disk: off the event loop, so the
    # serving routes do not wait behind it.
    result = await asyncio.to_thread(
        service.compare, _holder(request), body.versions, body.user, body.n
    )
    return FastJSON(to_jsonable(result))
