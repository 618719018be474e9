"""The serving policy: which model answers (the active one, or the variant of the running
experiment the user is assigned to), the cold-start fallback, filters (hidden catalogue items are
never served), and what each answer holds.

Answers are plain dicts shaped like ``backend.serving.schemas`` (the routes render them with
orjson, the CLI prints them): building pydantic models per request would cost more than the
scoring itself (``bench/serve.py``). Errors are domain errors; the pure core's ``DataError`` (an
unknown category, a rating off the scale) propagates as it is, a 422 at the API.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import numpy.typing as npt

from backend.errors import InvalidInputError, NotFoundError, UnavailableError
from backend.recsys.errors import UnknownUserError
from backend.recsys.foldin import fold_in, fold_in_reg, recommend_folded
from backend.recsys.scenarios import ScenarioComparison, compare_scenarios
from backend.recsys.similar import similar_items
from backend.recsys.topn import TopN, popular, recommend
from backend.serving.precomputed import PrecomputedReader
from backend.serving.state import LiveExperiment, ModelHolder, ServingModel
from backend.streaming.assignment import assign_variant

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
                "items_path set or give the items categories (PUT /api/v1/items/{id})"
            )
        allowed = sm.categories.mask(category)
    if sm.visible is not None:  # hidden items go before the top-N cut, like exclude
        allowed = sm.visible if allowed is None else allowed & sm.visible
    return excluded, allowed


def ranked(sm: ServingModel, top: TopN) -> list[dict[str, Any]]:
    """A top-N list as answers show it: rank, raw item id, score (6 decimals) and title."""
    raw = sm.model.item_ids[top.items].tolist()
    titles = sm.titles[top.items].tolist() if sm.titles is not None else [None] * len(raw)
    return [
        {"rank": r + 1, "item": i, "score": round(float(s), 6), "title": t}
        for r, (i, s, t) in enumerate(zip(raw, top.scores.tolist(), titles, strict=True))
    ]


def _answer(
    sm: ServingModel, user_id: str, strategy: str, top: TopN, source: str
) -> dict[str, Any]:
    return {
        "user": user_id,
        "model_version": sm.version,
        "strategy": strategy,
        "items": ranked(sm, top),
        "experiment": None,
        "variant": None,
        "recommendation_id": uuid.uuid4().hex,
        "source": source,
    }


def _recommend(
    sm: ServingModel,
    user_id: str,
    n: int,
    exclude_seen: bool,
    chosen: Filters,
    *,
    popular_only: bool = False,
) -> dict[str, Any]:
    excluded, allowed = chosen
    inner = None if popular_only else sm.ids.users.get(user_id)
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
    return _answer(sm, user_id, strategy, top, "computed")


class _Assigner:
    """Answers users as the running experiment (if any) assigns them, filters computed once per
    model: a request reads only memory."""

    def __init__(
        self,
        sm: ServingModel,
        live: LiveExperiment | None,
        exclude: list[str] | None,
        category: list[str] | None,
    ) -> None:
        self.sm = sm
        self.live = live
        self.exclude = exclude
        self.category = category
        self._filters: dict[int, Filters] = {}

    def _chosen(self, model: ServingModel) -> Filters:
        key = id(model)
        hit = self._filters.get(key)
        if hit is None:
            hit = self._filters[key] = filters(model, self.exclude, self.category)
        return hit

    def route(self, user_id: str) -> tuple[ServingModel | None, str | None, str | None]:
        """The model that answers ``user_id`` (None: the popular strategy), with the running
        experiment and the user's variant (None outside any experiment)."""
        live = self.live
        if live is None:
            return self.sm, None, None
        experiment = live.experiment
        variant = assign_variant(experiment.name, user_id, experiment.names, experiment.weights)
        return live.models[variant], experiment.name, variant

    def answer(self, user_id: str, n: int, exclude_seen: bool) -> dict[str, Any]:
        if self.live is None:
            return _recommend(self.sm, user_id, n, exclude_seen, self._chosen(self.sm))
        return self.answer_routed(user_id, n, exclude_seen, self.route(user_id))

    def answer_routed(
        self,
        user_id: str,
        n: int,
        exclude_seen: bool,
        routed: tuple[ServingModel | None, str | None, str | None],
    ) -> dict[str, Any]:
        model, experiment, variant = routed
        if model is None:  # the popular strategy: the active model's popularity list
            out = _recommend(
                self.sm, user_id, n, exclude_seen, self._chosen(self.sm), popular_only=True
            )
        else:
            out = _recommend(model, user_id, n, exclude_seen, self._chosen(model))
        out["experiment"] = experiment
        out["variant"] = variant
        return out


def serve(
    holder: ModelHolder,
    user_id: str,
    n: int,
    exclude_seen: bool,
    exclude: list[str] | None,
    category: list[str] | None,
) -> dict[str, Any]:
    """Top ``n`` for ``user_id`` (``RecommendationsOut``) as served to traffic: from the model
    of the running experiment's variant the user is assigned to (``assign_variant``, the hash
    the simulator shares), else from the active model; ``experiment`` and ``variant`` say which
    (null outside any experiment), ``recommendation_id`` names the answer, and ``source`` is
    ``computed`` (``serve_read`` may answer ``precomputed``)."""
    return _assigner(holder, exclude, category).answer(user_id, n, exclude_seen)


def _assigner(
    holder: ModelHolder, exclude: list[str] | None, category: list[str] | None
) -> _Assigner:
    """The request's router over what the holder serves now (one consistent view)."""
    view = holder.view
    sm = view.active if view.active is not None else active(holder)
    return _Assigner(sm, view.experiment, exclude, category)


async def serve_read(
    holder: ModelHolder,
    reader: PrecomputedReader,
    user_id: str,
    n: int,
    exclude_seen: bool,
    exclude: list[str] | None,
    category: list[str] | None,
) -> dict[str, Any]:
    """``serve``, answered from the user's precomputed list (``source`` ``precomputed``) when
    ``reader`` finds a valid one for the model that answers the user; computed otherwise.

    Filters a list cannot honour (``exclude``, ``category``), the popular strategy and users the
    model does not know (the popularity fallback) are always computed, with no Redis read.
    """
    assigner = _assigner(holder, exclude, category)
    if exclude or category:
        return assigner.answer(user_id, n, exclude_seen)
    routed = assigner.route(user_id)
    model, experiment, variant = routed
    if model is not None and user_id in model.ids.users:
        top = await reader.lookup(model, user_id, n, exclude_seen)
        if top is not None:
            out = _answer(model, user_id, "personalized", top, "precomputed")
            out["experiment"] = experiment
            out["variant"] = variant
            return out
    return assigner.answer_routed(user_id, n, exclude_seen, routed)


def serve_batch(
    holder: ModelHolder,
    users: list[str],
    n: int,
    exclude_seen: bool,
    exclude: list[str] | None,
    category: list[str] | None,
) -> dict[str, Any]:
    """``serve`` each user, in order (``BatchOut``; its ``model_version`` is the active one)."""
    assigner = _assigner(holder, exclude, category)
    results = [assigner.answer(u, n, exclude_seen) for u in users]
    return {"model_version": assigner.sm.version, "results": results}


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


def similar(sm: ServingModel, item_id: str, n: int) -> dict[str, Any]:
    """The ``n`` items nearest ``item_id`` by cosine similarity of item factors (``SimilarOut``)."""
    inner = sm.ids.items.get(item_id)
    if inner is None:
        raise NotFoundError(f"item {item_id!r} is not in the catalogue of model {sm.version}")
    top = similar_items(sm.model, inner, n, allowed_items=sm.visible)
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
    reg: float | None,
    category: list[str] | None,
) -> dict[str, Any]:
    """The top ``n`` the user would get after ``ratings``, folded in by ridge regression with
    penalty ``reg`` and no retraining (``WhatIfOut``). ``reg=None``: ``DEFAULT_FOLD_IN_REG`` for
    a rating model, the model's own λ for an implicit one (whose "ratings" are interaction
    strengths)."""
    existing = sm.ids.users.get(user_id)
    folded = fold_in(sm.model, ratings, reg=fold_in_reg(sm.model, reg), existing_user=existing)
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
