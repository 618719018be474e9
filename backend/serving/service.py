"""The serving policy: which model answers, the cold-start fallback, filters, and what each answer
holds.

Answers are plain dicts shaped like ``backend.serving.schemas`` (the routes render them with
orjson, the CLI prints them): building pydantic models per request would cost more than the
scoring itself (``bench/serve.py``). Errors are domain errors; the pure core's ``DataError`` (an
unknown category, a rating off the scale) propagates as it is, a 422 at the API.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from backend.errors import InvalidInputError, NotFoundError, UnavailableError
from backend.recsys.errors import UnknownUserError
from backend.recsys.foldin import fold_in, recommend_folded
from backend.recsys.scenarios import ScenarioComparison, compare_scenarios
from backend.recsys.similar import similar_items
from backend.recsys.topn import TopN, popular, recommend
from backend.serving.state import ModelHolder, ServingModel

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
ID_RULE = "1-64 characters of [A-Za-z0-9_-]"

Filters = tuple[npt.NDArray[np.int64] | None, npt.NDArray[np.bool_] | None]


def active(holder: ModelHolder) -> ServingModel:
    """The model that serves now; ``UnavailableError`` saying what to do when there is none."""
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


def filters(sm: ServingModel, exclude: list[str] | None, category: list[str] | None) -> Filters:
    """Inner ids of the items to leave out, and the mask of the categories to keep."""
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
        allowed = sm.categories.mask(category)
    return excluded, allowed


def ranked(sm: ServingModel, top: TopN) -> list[dict[str, Any]]:
    """A top-N list as answers show it: rank, raw item id, score (6 decimals) and title."""
    raw = sm.model.item_ids[top.items].tolist()
    titles = sm.titles[top.items].tolist() if sm.titles is not None else [None] * len(raw)
    return [
        {"rank": r + 1, "item": i, "score": round(float(s), 6), "title": t}
        for r, (i, s, t) in enumerate(zip(raw, top.scores.tolist(), titles, strict=True))
    ]


def _recommend(
    sm: ServingModel, user_id: str, n: int, exclude_seen: bool, chosen: Filters
) -> dict[str, Any]:
    excluded, allowed = chosen
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
        "items": ranked(sm, top),
    }


def recommend_for(
    sm: ServingModel,
    user_id: str,
    n: int,
    exclude_seen: bool,
    exclude: list[str] | None,
    category: list[str] | None,
) -> dict[str, Any]:
    """Top ``n`` for ``user_id`` (``RecommendationsOut``): personalized for a user the model
    knows, the popularity list (the cold-start fallback) for any other."""
    return _recommend(sm, user_id, n, exclude_seen, filters(sm, exclude, category))


def recommend_batch(
    sm: ServingModel,
    users: list[str],
    n: int,
    exclude_seen: bool,
    exclude: list[str] | None,
    category: list[str] | None,
) -> dict[str, Any]:
    """``recommend_for`` each user, in order, from one model (``BatchOut``)."""
    chosen = filters(sm, exclude, category)
    results = [_recommend(sm, u, n, exclude_seen, chosen) for u in users]
    return {"model_version": sm.version, "results": results}


def similar(sm: ServingModel, item_id: str, n: int) -> dict[str, Any]:
    """The ``n`` items nearest ``item_id`` by cosine similarity of item factors (``SimilarOut``)."""
    inner = sm.ids.items.get(item_id)
    if inner is None:
        raise NotFoundError(f"item {item_id!r} is not in the catalogue of model {sm.version}")
    top = similar_items(sm.model, inner, n)
    return {"item": item_id, "model_version": sm.version, "items": ranked(sm, top)}


def history(sm: ServingModel, user_id: str) -> dict[str, Any]:
    """The items ``user_id`` rated in the model's training data (``HistoryOut``)."""
    inner = sm.ids.users.get(user_id)
    if inner is None:
        raise NotFoundError(f"user {user_id!r} has no history in model {sm.version}")
    seen = sm.model.seen(inner)
    raw = sm.model.item_ids[seen].tolist()
    titles = sm.titles[seen].tolist() if sm.titles is not None else [None] * len(raw)
    return {
        "user": user_id,
        "model_version": sm.version,
        "items": [{"item": i, "title": t} for i, t in zip(raw, titles, strict=True)],
    }


def what_if(
    sm: ServingModel,
    user_id: str,
    ratings: dict[str, float],
    n: int,
    reg: float,
    category: list[str] | None,
) -> dict[str, Any]:
    """The top ``n`` the user would get after ``ratings``, folded in by ridge regression with
    penalty ``reg`` and no retraining (``WhatIfOut``)."""
    existing = sm.ids.users.get(user_id)
    folded = fold_in(sm.model, ratings, reg=reg, existing_user=existing)
    _, allowed = filters(sm, None, category)
    top = recommend_folded(sm.model, folded, n, allowed_items=allowed)
    return {
        "user": user_id,
        "model_version": sm.version,
        "strategy": "fold-in",
        "existing_user": existing is not None,
        "items": ranked(sm, top),
    }


def compare(holder: ModelHolder, versions: list[str], user: str, n: int) -> ScenarioComparison:
    """The user's top ``n`` under each version, side by side, with their overlaps.

    A version not in memory is read from SQL and loaded from disk (``ModelHolder.by_version``:
    ``NotFoundError`` for an unknown version, ``ConflictError`` for one that cannot load); a
    user no version knows is ``NotFoundError``.
    """
    models = {v: holder.by_version(v).model for v in versions}
    try:
        return compare_scenarios(models, user, n)
    except UnknownUserError as exc:  # the one input a request can name that no model holds
        raise NotFoundError(str(exc)) from None
