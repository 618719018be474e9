"""Side-by-side top-N of one user under several models (scenarios), with pairwise overlap.

Models may come from different training runs, so their inner ids differ; lists are compared by
raw item id. For two lists ``A`` and ``B`` of a requested length ``n``:

* Jaccard ``|A ∩ B| / |A ∪ B|`` (1.0 when both lists are empty: identical, nothing to differ on);
* overlap@n ``|A ∩ B| / n``, the share of the ``n`` slots both models agree on, whatever the order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations
from typing import Literal

from backend.recsys.errors import InvalidParameterError, UnknownUserError
from backend.recsys.indexes import id_index
from backend.recsys.model import FactorModel
from backend.recsys.topn import TopN, popular, recommend

__all__ = ["PairOverlap", "ScenarioComparison", "ScenarioList", "compare_scenarios", "overlap"]


@dataclass(frozen=True)
class ScenarioList:
    """One model's list. ``source`` is ``"model"``, or ``"popular"`` when the model does not know
    the user and the cold-start list stands in."""

    name: str
    items: tuple[str, ...]
    scores: tuple[float, ...]
    source: Literal["model", "popular"]


@dataclass(frozen=True)
class PairOverlap:
    """Agreement of the lists of scenarios ``a`` and ``b``."""

    a: str
    b: str
    common: int
    jaccard: float
    overlap_at_n: float


@dataclass(frozen=True)
class ScenarioComparison:
    """Lists in the order the scenarios were given, and one overlap per unordered pair."""

    user: str
    n: int
    lists: tuple[ScenarioList, ...]
    overlaps: tuple[PairOverlap, ...]


def overlap(a: tuple[str, ...], b: tuple[str, ...], n: int) -> tuple[int, float, float]:
    """``(|A ∩ B|, Jaccard, overlap@n)`` of two lists of item ids (see module doc)."""
    sa, sb = set(a), set(b)
    common = len(sa & sb)
    union = len(sa | sb)
    jaccard = 1.0 if union == 0 else common / union
    return common, jaccard, common / n


def compare_scenarios(
    models: Mapping[str, FactorModel],
    raw_user: str,
    n: int,
    *,
    exclude_seen: bool = True,
) -> ScenarioComparison:
    """Top ``n`` of ``raw_user`` under each named model, and the pairwise overlaps.

    A model that does not know the user contributes its popularity list (``source="popular"``);
    if no model knows the user, :class:`UnknownUserError` is raised.
    """
    if not models:
        raise InvalidParameterError("give at least one model to compare")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidParameterError(f"n must be a positive integer, got {n!r}")
    lists: list[ScenarioList] = []
    for name, model in models.items():
        inner = id_index(model).users.get(raw_user)
        top: TopN
        source: Literal["model", "popular"]
        if inner is None:
            top, source = popular(model, n), "popular"
        else:
            top, source = recommend(model, inner, n, exclude_seen=exclude_seen), "model"
        lists.append(
            ScenarioList(
                name=name,
                items=tuple(model.item_ids[top.items].tolist()),
                scores=tuple(top.scores.tolist()),
                source=source,
            )
        )
    if all(entry.source == "popular" for entry in lists):
        raise UnknownUserError(
            f"user {raw_user!r} is in none of the models {list(models)}; compare a trained user"
        )
    pairs = []
    for x, y in combinations(lists, 2):
        common, jac, at_n = overlap(x.items, y.items, n)
        pairs.append(PairOverlap(a=x.name, b=y.name, common=common, jaccard=jac, overlap_at_n=at_n))
    return ScenarioComparison(user=raw_user, n=n, lists=tuple(lists), overlaps=tuple(pairs))
