"""Precomputed top-N lists in Redis, as the simulate job's precompute mode writes them
(``backend.recsys.precompute``): read by the recommendation route when they are valid.

A user's list answers a request only when all of these hold, otherwise serving computes:

* the version's meta key exists (the run completed), names the same version and, when it
  records one, the same registry model id as the model that answers this request (the active
  one, or the user's experiment variant's);
* it was computed at most ``max_age_s`` ago, with the request's ``exclude_seen``;
* the request has no ``exclude`` or ``category`` filter (checked by the caller);
* after the items the catalogue hides are dropped, at least ``n`` items remain, each known to
  the model.

The lists are the model's own top-N (``recommend``'s ranking, hidden items not masked), so the
first ``n`` visible items of a list are exactly what serving computes with the hidden items
masked out. The route is async, so Redis is read with ``redis.asyncio`` (one ``MGET`` of the
meta and the list): the event loop never blocks on it. An error or a timeout falls back to
computing, leaves Redis alone for ``retry_s`` (so an outage costs no timeout per request) and is
logged at most once per ``retry_s``; every fallback is counted by reason.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from backend.config import Settings
from backend.monitoring.prometheus import REGISTRY
from backend.recsys.precompute import meta_key, redis_key
from backend.recsys.topn import TopN
from backend.serving.model import ServingModel

__all__ = ["FALLBACKS", "SERVED", "Meta", "PrecomputedReader", "from_settings", "usable"]

log = logging.getLogger(__name__)

SERVED = Counter(
    "recflow_serving_precomputed_total",
    "Recommendation answers served from a precomputed Redis list.",
    registry=REGISTRY,
)
FALLBACKS = Counter(
    "recflow_serving_precomputed_fallbacks_total",
    "Recommendation answers computed although precomputed reading is on, by reason "
    "(missing, version, exclude_seen, stale, short, invalid, unavailable).",
    ["reason"],
    registry=REGISTRY,
)


@dataclass(frozen=True)
class Meta:
    """What a precompute run recorded for a version (``backend.recsys.precompute``)."""

    version: str
    model_id: int | None
    n: int
    exclude_seen: bool
    computed_at: float

    @classmethod
    def parse(cls, raw: bytes | str | None) -> Meta | None:
        """The meta key's value, or None when absent or not as precompute writes it."""
        if raw is None:
            return None
        try:
            d = json.loads(raw)
            model_id = d.get("model_id")
            return cls(
                version=str(d["version"]),
                model_id=None if model_id is None else int(model_id),
                n=int(d["n"]),
                exclude_seen=bool(d["exclude_seen"]),
                computed_at=float(d["computed_at"]),
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


def usable(
    sm: ServingModel,
    meta: Meta | None,
    raw_list: bytes | str | None,
    n: int,
    exclude_seen: bool,
    *,
    now: float,
    max_age_s: float,
) -> tuple[TopN | None, str]:
    """The first ``n`` served items of a precomputed list as a ``TopN`` over ``sm``'s inner ids,
    and ``"ok"``; or None and the reason it cannot answer (a ``FALLBACKS`` label)."""
    if meta is None or raw_list is None:
        return None, "missing"
    if meta.version != sm.version or (meta.model_id is not None and meta.model_id != sm.model_id):
        return None, "version"
    if meta.exclude_seen != exclude_seen:
        return None, "exclude_seen"
    if not 0 <= now - meta.computed_at <= max_age_s:
        return None, "stale"
    if meta.n < n:
        return None, "short"
    try:
        entries: list[dict[str, Any]] = json.loads(raw_list)
        index = sm.ids.items
        items = np.fromiter((index[e["item"]] for e in entries), dtype=np.int64)
        scores = np.fromiter((float(e["score"]) for e in entries), dtype=np.float64)
    except (ValueError, TypeError, KeyError):  # an item the model does not know is a KeyError
        return None, "invalid"
    if sm.visible is not None:
        keep = sm.visible[items]
        items, scores = items[keep], scores[keep]
    if items.shape[0] < n:
        return None, "short"
    return TopN(items=items[:n], scores=scores[:n]), "ok"


class PrecomputedReader:
    """Reads users' precomputed lists from Redis for the model that answers them."""

    def __init__(
        self, client: Redis, key_prefix: str, max_age_s: float, timeout_s: float, retry_s: float
    ) -> None:
        self._client = client
        self._prefix = key_prefix
        self._max_age_s = max_age_s
        self._timeout_s = timeout_s
        self._retry_s = retry_s
        self._down_until = 0.0
        self._logged_at = -float("inf")

    async def lookup(
        self, sm: ServingModel, user_id: str, n: int, exclude_seen: bool
    ) -> TopN | None:
        """``user_id``'s top ``n`` under ``sm`` from its precomputed list, or None (counted in
        ``FALLBACKS``) when there is no valid one or Redis cannot be read now."""
        mono = time.monotonic()
        if mono < self._down_until:
            FALLBACKS.labels("unavailable").inc()
            return None
        try:
            async with asyncio.timeout(self._timeout_s):
                raw_meta, raw_list = await self._client.mget(
                    meta_key(self._prefix, sm.version), redis_key(self._prefix, sm.version, user_id)
                )
        except (RedisError, OSError, TimeoutError) as exc:
            self._down_until = mono + self._retry_s
            if mono - self._logged_at >= self._retry_s:  # at most one line per interval
                self._logged_at = mono
                log.warning(
                    "cannot read precomputed lists from Redis (%s: %s); computing answers, "
                    "retrying in %.0f s",
                    type(exc).__name__,
                    exc,
                    self._retry_s,
                )
            FALLBACKS.labels("unavailable").inc()
            return None
        top, reason = usable(
            sm,
            Meta.parse(raw_meta),
            raw_list,
            n,
            exclude_seen,
            now=time.time(),
            max_age_s=self._max_age_s,
        )
        if top is None:
            FALLBACKS.labels(reason).inc()
        else:
            SERVED.inc()
        return top

    async def close(self) -> None:
        await self._client.aclose()  # type: ignore[attr-defined]


def from_settings(settings: Settings) -> PrecomputedReader | None:
    """The reader when ``serving_precomputed`` is on and Redis is configured, else None."""
    if not settings.serving_precomputed or not settings.redis_url:
        return None
    t = settings.serving_precomputed_timeout_s
    client = Redis.from_url(settings.redis_url, socket_timeout=t, socket_connect_timeout=t)
    return PrecomputedReader(
        client,
        settings.topn_key_prefix,
        settings.serving_precomputed_max_age_s,
        t,
        settings.serving_precomputed_retry_s,
    )
