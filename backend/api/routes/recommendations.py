"""Serving: top-N per user, batches, similar items, history and what-if, from memory."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from backend.api.responses import FastJSON, errors
from backend.errors import InvalidInputError, NotFoundError, UnavailableError
from backend.recsys.errors import DataError
from backend.recsys.foldin import fold_in, recommend_folded
from backend.recsys.scenarios import compare_scenarios
from backend.recsys.similar import similar_items
from backend.recsys.topn import TopN, popular, recommend
from backend.serving.schemas import (
    BatchOut,
    CompareOut,
    HistoryOut,
    RecommendationsOut,
    SimilarOut,
    WhatIfOut,
)
from backend.serving.state import ModelHolder, ServingModel

router = APIRouter(tags=["recommendations"])

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
ID_RULE = "1-64 characters of [A-Za-z0-9_-]"
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
    holder = _holder(request)
    sm = holder.current
    if sm is None:
        if holder.failed is not None:
            model_id, version, message = holder.failed
            raise UnavailableError(message, detail={"model_id": model_id, "version": version})
        raise UnavailableError(
            "no active model yet: train one (POST /api/v1/jobs with kind=train, or "
            "`recflow train`) or activate one (POST /api/v1/models/{id}/activate)"
        )
    return sm


def _filters(
    sm: ServingModel, exclude: list[str] | None, category: list[str] | None
) -> tuple[npt.NDArray[np.int64] | None, npt.NDArray[np.bool_] | None]:
    excluded = None
    if exclude:
        # Items the model does not know cannot be recommended anyway: skip them quietly.
        known = [sm.ids.items[i] for i in exclude if i in sm.ids.items]
        excluded = np.asarray(known, dtype=np.int64)
    allowed = None
    if category:
        if sm.categories is None:
            raise InvalidInputError(
                "this model has no item metadata, so category= cannot filter; train it with "
                "items_path set"
            )
        try:
            allowed = sm.categories.mask(category)
        except DataError as exc:
            raise InvalidInputError(str(exc)) from None
    return excluded, allowed


def _items(sm: ServingModel, top: TopN) -> list[dict[str, Any]]:
    raw = sm.model.item_ids[top.items].tolist()
    titles = sm.titles[top.items].tolist() if sm.titles is not None else [None] * len(raw)
    return [
        {"rank": r + 1, "item": i, "score": round(float(s), 6), "title": t}
        for r, (i, s, t) in enumerate(zip(raw, top.scores.tolist(), titles, strict=True))
    ]


def _split(values: list[str] | None) -> list[str] | None:
    """Accept both repeated parameters and comma-separated lists."""
    if not values:
        return None
    return [v for value in values for v in value.split(",") if v]


def recommend_for(
    sm: ServingModel,
    user_id: str,
    n: int,
    exclude_seen: bool,
    exclude: list[str] | None,
    category: list[str] | None,
) -> dict[str, Any]:
    excluded, allowed = _filters(sm, exclude, category)
    inner = sm.ids.users.get(user_id)
    if inner is None:
        top = popular(sm.model, n, exclude_items=excluded, allowed_items=allowed)
        strategy = "popular"
    else:
        top = recommend(
            sm.model,
            inner,
            n,
            exclude_seen=exclude_seen,
            exclude_items=excluded,
            allowed_items=allowed,
        )
        strategy = "personalized"
    return {
        "user": user_id,
        "model_version": sm.version,
        "strategy": strategy,
        "items": _items(sm, top),
    }


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
    responses={200: {"model": RecommendationsOut}, **SERVING_ERRORS},
    openapi_extra={"parameters": _QUERY_DOCS},
)
async def user_recommendations(request: Request, user_id: str) -> FastJSON:
    """Top-N for a user from the active model; unknown users get the popularity fallback."""
    # The hot path reads its query parameters by hand: FastAPI's generic parsing of list
    # parameters cost more than the scoring itself (bench/serve.py). Rules match the docs above.
    if not _ID_RE.match(user_id):
        raise InvalidInputError(f"path.user_id: must be {ID_RULE}, got {user_id[:80]!r}")
    n = _int_query(request, "n", 10, 1, 1000)
    exclude_seen = _bool_query(request, "exclude_seen", True)
    q = request.query_params
    sm = _serving(request)
    return FastJSON(
        recommend_for(
            sm,
            user_id,
            n,
            exclude_seen,
            _split(q.getlist("exclude")),
            _split(q.getlist("category")),
        )
    )


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
    responses={200: {"model": BatchOut}, **SERVING_ERRORS},
)
async def batch_recommendations(request: Request, body: BatchRequest) -> FastJSON:
    """Top-N for up to 1,000 users in one call."""
    sm = _serving(request)
    results = [
        recommend_for(sm, u, body.n, body.exclude_seen, body.exclude, body.category)
        for u in body.users
    ]
    return FastJSON({"model_version": sm.version, "results": results})


@router.get(
    "/items/{item_id}/similar",
    response_class=FastJSON,
    responses={
        200: {"model": SimilarOut},
        **SERVING_ERRORS,
        **errors(404, s404="the item is not in the active model's catalogue"),
    },
)
async def similar(request: Request, item_id: ItemId, n: N = 10) -> FastJSON:
    """Items most similar to this one (cosine similarity of the item factors)."""
    sm = _serving(request)
    inner = sm.ids.items.get(item_id)
    if inner is None:
        raise NotFoundError(f"item {item_id!r} is not in the catalogue of model {sm.version}")
    top = similar_items(sm.model, inner, n)
    return FastJSON({"item": item_id, "model_version": sm.version, "items": _items(sm, top)})


@router.get(
    "/users/{user_id}/history",
    response_class=FastJSON,
    responses={
        200: {"model": HistoryOut},
        **SERVING_ERRORS,
        **errors(404, s404="the user has no history in the active model"),
    },
)
async def history(request: Request, user_id: UserId) -> FastJSON:
    """Items the user rated in the data the active model was trained on."""
    sm = _serving(request)
    inner = sm.ids.users.get(user_id)
    if inner is None:
        raise NotFoundError(f"user {user_id!r} has no history in model {sm.version}")
    seen = sm.model.seen(inner)
    raw = sm.model.item_ids[seen].tolist()
    titles = sm.titles[seen].tolist() if sm.titles is not None else [None] * len(raw)
    return FastJSON(
        {
            "user": user_id,
            "model_version": sm.version,
            "items": [{"item": i, "title": t} for i, t in zip(raw, titles, strict=True)],
        }
    )


class WhatIfRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    ratings: dict[str, float] = Field(
        min_length=1, max_length=1000, description="hypothetical ratings: item id -> rating"
    )
    n: int = Field(default=10, ge=1, le=1000)
    reg: float = Field(default=5.0, ge=0, le=1e6, description="ridge penalty λ of the fold-in")
    category: list[str] | None = None


@router.post(
    "/users/{user_id}/what-if",
    response_class=FastJSON,
    responses={200: {"model": WhatIfOut}, **SERVING_ERRORS},
)
async def what_if(request: Request, user_id: UserId, body: WhatIfRequest) -> FastJSON:
    """What this user would see after these ratings: fold-in by ridge regression, no retraining."""
    sm = _serving(request)
    existing = sm.ids.users.get(user_id)
    try:
        folded = fold_in(sm.model, body.ratings, reg=body.reg, existing_user=existing)
    except DataError as exc:
        raise InvalidInputError(str(exc)) from None
    _, allowed = _filters(sm, None, body.category)
    top = recommend_folded(sm.model, folded, body.n, allowed_items=allowed)
    return FastJSON(
        {
            "user": user_id,
            "model_version": sm.version,
            "strategy": "fold-in",
            "existing_user": existing is not None,
            "items": _items(sm, top),
        }
    )


class CompareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    user: Annotated[str, Field(pattern=ID_PATTERN)]
    versions: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]] = Field(
        min_length=1, max_length=4, description="model versions (1-64 of [A-Za-z0-9._-])"
    )
    n: int = Field(default=10, ge=1, le=1000)


@router.post(
    "/scenarios/compare",
    response_class=FastJSON,
    responses={
        200: {"model": CompareOut},
        **errors(
            404,
            409,
            s404="an unknown model version, or a user no version knows",
            s409="a version's artifact cannot be loaded; the message says what to do",
        ),
    },
)
async def compare(request: Request, body: CompareRequest) -> FastJSON:
    """The user's top-N under several model versions side by side, with their overlap."""
    holder = _holder(request)
    # A version not in memory is read from SQL and loaded from disk: off the event loop, so the
    # serving routes do not wait behind it.
    models = {v: (await asyncio.to_thread(holder.by_version, v)).model for v in body.versions}
    try:
        result = compare_scenarios(models, body.user, body.n)
    except DataError as exc:
        raise NotFoundError(str(exc)) from None
    return FastJSON(_plain(result))


def _plain(obj: Any) -> Any:
    """Frozen dataclasses to JSON-ready values."""
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj
