"""Sliding-window aggregates of interaction events: pure, no I/O, no clock of its own.

Window semantics
----------------
Events are placed by **event time** (``ts``, epoch ms) into one-second buckets. The caller moves
the clock forward with ``advance(now_ms)`` (the monitor passes its processing time). A window of
``span`` seconds at ``now`` holds the buckets of the seconds ``s`` with
``now_s - span < s <= now_s`` (``now_s = now_ms // 1000``): the last ``span`` whole seconds of event
time, counting the current, still filling, second.

Edge cases, decided once here:

* **Future events** (``ts`` ahead of ``now``, which the validator allows within its clock-skew
  limit) are counted in the current second and reported as ``future``; their latency is negative
  and lands in the histogram's first bin (0 s).
* **Late events** (``ts`` at or before ``now_s - longest span``) belong to no window; they are
  reported as ``late`` and otherwise ignored. An event older than a shorter window but inside a
  longer one counts only in the longer ones.
* **Rates** divide a count by the window's *coverage*: ``min(span, seconds since the earliest of
  the start time and the earliest event second seen)``, so a monitor started 10 s ago does not
  report a sixth of the true 1-minute rate.
* **CTR** of an experiment variant is clicks / impressions of events that carry that experiment and
  variant, in the window; ``None`` when the window has no impression of it (never NaN). Clicks
  without an impression in the window still count, so CTR can exceed 1 on thin data.
* **CTR per model version** is the same ratio per (experiment, variant, ``model_version``), over
  the impressions and clicks that carry a ``model_version`` (events without an experiment
  included, as experiment and variant ``None``): the model that served the recommendation an
  impression shows, and the one a click's recommendation came from when the client echoes it.
* **Distinct users** counts users with at least one event in the window (events without an
  experiment included). It is exact: the last second each user was seen is kept for the longest
  span.
* **Latency** is processing time minus event time, recorded in a log-spaced histogram (20 bins per
  decade from 1 ms to 1 h, so a quantile is exact to within one bin, about 12 %); a quantile is
  reported as the upper edge of its bin, i.e. conservatively. Above 1 h it is reported as 3600 s.

Memory is bounded by the longest span: one bucket per second that had events, holding per-type
counts, per-variant and per-model impressions and clicks, clicks per item and a sparse latency
histogram; plus one entry per distinct user of the longest span.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from backend.monitoring.latency import LATENCY_EDGES_S as LATENCY_EDGES_S
from backend.monitoring.latency import histogram_quantile, latency_bin


class EventLike(Protocol):
    """What the windows read from an event (``backend.streaming.events.Event`` fits)."""

    @property
    def ts(self) -> int: ...
    @property
    def type(self) -> str: ...
    @property
    def user(self) -> str: ...
    @property
    def item(self) -> str: ...
    @property
    def experiment(self) -> str | None: ...
    @property
    def variant(self) -> str | None: ...
    @property
    def model_version(self) -> str | None: ...


DEFAULT_SPANS_S: Final[tuple[int, ...]] = (60, 300, 3600)


def window_name(span_s: int) -> str:
    """``60`` -> ``"1m"``, ``3600`` -> ``"1h"``, ``45`` -> ``"45s"``: the names the API accepts."""
    if span_s % 3600 == 0:
        return f"{span_s // 3600}h"
    if span_s % 60 == 0:
        return f"{span_s // 60}m"
    return f"{span_s}s"


class _Agg:
    """Counts of one bucket or of one window (a running sum of buckets)."""

    __slots__ = ("clicks", "latency", "models", "types", "variants")

    def __init__(self) -> None:
        self.types: dict[str, int] = {}
        self.variants: dict[tuple[str, str], list[int]] = {}  # [impressions, clicks]
        # (experiment, variant, model version) -> [impressions, clicks]; "" for no experiment.
        self.models: dict[tuple[str, str, str], list[int]] = {}
        self.clicks: dict[str, int] = {}  # item -> clicks
        self.latency: dict[int, int] = {}  # bin -> count

    def add(
        self,
        etype: str,
        item: str,
        key: tuple[str, str] | None,
        model: tuple[str, str, str] | None,
        lat_bin: int,
    ) -> None:
        types = self.types
        types[etype] = types.get(etype, 0) + 1
        lat = self.latency
        lat[lat_bin] = lat.get(lat_bin, 0) + 1
        if etype == "click":
            clicks = self.clicks
            clicks[item] = clicks.get(item, 0) + 1
        if etype == "impression" or etype == "click":
            slot = 0 if etype == "impression" else 1
            if key is not None:
                _bump(self.variants, key, slot)
            if model is not None:
                _bump(self.models, model, slot)

    def subtract(self, other: _Agg) -> None:
        _sub(self.types, other.types)
        _sub(self.clicks, other.clicks)
        _sub(self.latency, other.latency)
        _sub_pairs(self.variants, other.variants)
        _sub_pairs(self.models, other.models)


def _bump(pairs: dict[Any, list[int]], key: Any, slot: int) -> None:
    pair = pairs.get(key)
    if pair is None:
        pair = pairs[key] = [0, 0]
    pair[slot] += 1


def _sub_pairs(into: dict[Any, list[int]], other: Mapping[Any, list[int]]) -> None:
    for key, (imp, clk) in other.items():
        pair = into[key]
        pair[0] -= imp
        pair[1] -= clk
        if pair[0] == 0 and pair[1] == 0:
            del into[key]


def _sub(into: dict[Any, int], other: Mapping[Any, int]) -> None:
    for k, v in other.items():
        left = into[k] - v
        if left:
            into[k] = left
        else:
            del into[k]


@dataclass(frozen=True)
class VariantStats:
    """Impressions, clicks and CTR (clicks / impressions, ``None`` without impressions)."""

    experiment: str
    variant: str
    impressions: int
    clicks: int
    ctr: float | None


@dataclass(frozen=True)
class ModelStats:
    """Impressions, clicks and CTR of one model version within an experiment variant
    (``experiment`` and ``variant`` are ``None`` for events outside any experiment)."""

    experiment: str | None
    variant: str | None
    model_version: str
    impressions: int
    clicks: int
    ctr: float | None


@dataclass(frozen=True)
class TopItem:
    """An item and its clicks in a window."""

    item: str
    clicks: int


@dataclass(frozen=True)
class WindowSummary:
    """What one window holds at ``now_ms``; see the module docstring for the definitions.

    The fields are the summary's JSON (``backend.jsonable.to_jsonable``); ``complete`` says
    whether the events seen cover the whole span (``coverage_s >= span_s``).
    """

    window: str
    span_s: int
    now_ms: int
    coverage_s: int
    complete: bool
    events: int
    events_by_type: dict[str, int]
    rate_per_s: dict[str, float]
    distinct_users: int
    variants: tuple[VariantStats, ...]
    models: tuple[ModelStats, ...]
    top_items: tuple[TopItem, ...]
    latency_p50_s: float | None
    latency_p99_s: float | None


@dataclass
class Placement:
    """Where ``add_many`` put a batch: counted in windows, clamped from the future, or too late."""

    counted: int = 0
    future: int = 0
    late: int = 0
    without_experiment: int = 0


@dataclass
class SlidingWindows:
    """Incremental aggregates for several window spans over one-second event-time buckets.

    Each event updates its bucket and the running sum of every window that covers its second;
    ``advance`` subtracts the buckets that leave a window and drops those older than the longest
    span. Cost per event is O(number of windows); a summary is O(variants + items + histogram
    bins + longest span).
    """

    start_ms: int
    spans_s: tuple[int, ...] = DEFAULT_SPANS_S
    top_k: int = 10
    _now_s: int = field(init=False)
    _first_s: int = field(init=False)
    _buckets: dict[int, _Agg] = field(init=False, default_factory=dict)
    _windows: list[_Agg] = field(init=False)
    _last_seen: dict[str, int] = field(init=False, default_factory=dict)
    _seen_at: dict[int, int] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        if not self.spans_s or any(s < 1 for s in self.spans_s):
            raise ValueError(f"window spans must be whole seconds >= 1, got {self.spans_s}")
        if len(set(self.spans_s)) != len(self.spans_s):
            raise ValueError(f"window spans must be distinct, got {self.spans_s}")
        self.spans_s = tuple(sorted(self.spans_s))
        self._now_s = self.start_ms // 1000
        self._first_s = self._now_s
        self._windows = [_Agg() for _ in self.spans_s]

    @property
    def longest_s(self) -> int:
        return self.spans_s[-1]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(window_name(s) for s in self.spans_s)

    def advance(self, now_ms: int) -> None:
        """Move the clock to ``now_ms``; a clock that goes backwards is ignored (kept monotonic)."""
        new_s = now_ms // 1000
        old_s = self._now_s
        if new_s <= old_s:
            return
        for span, agg in zip(self.spans_s, self._windows, strict=True):
            # Seconds in (old_s - span, new_s - span] leave this window.
            lo, hi = old_s - span, new_s - span
            if hi - lo <= len(self._buckets):
                leaving: Iterable[int] = range(lo + 1, hi + 1)
            else:
                leaving = [s for s in self._buckets if lo < s <= hi]
            for s in leaving:
                bucket = self._buckets.get(s)
                if bucket is not None:
                    agg.subtract(bucket)
        cutoff = new_s - self.longest_s
        for s in [s for s in self._buckets if s <= cutoff]:
            del self._buckets[s]
        self._now_s = new_s
        if len(self._seen_at) > 2 * self.longest_s:
            self._forget_users(cutoff)

    def _forget_users(self, cutoff: int) -> None:
        self._last_seen = {u: s for u, s in self._last_seen.items() if s > cutoff}
        self._seen_at = {s: n for s, n in self._seen_at.items() if s > cutoff}

    def add_many(self, events: Iterable[EventLike], processed_ms: int) -> Placement:
        """Count events processed at ``processed_ms`` (their latency is ``processed_ms - ts``).

        Call ``advance`` first: the windows are those at the current clock.
        """
        placed = Placement()
        now_s = self._now_s
        cutoff = now_s - self.longest_s
        spans = self.spans_s
        windows = self._windows
        buckets = self._buckets
        last_seen = self._last_seen
        seen_at = self._seen_at
        for ev in events:
            s = ev.ts // 1000
            if s > now_s:
                s = now_s
                placed.future += 1
            elif s <= cutoff:
                placed.late += 1
                continue
            placed.counted += 1
            exp = ev.experiment
            if exp is None:
                key = None
                placed.without_experiment += 1
            else:
                key = (exp, ev.variant or "")
            version = ev.model_version
            model = None if version is None else (exp or "", ev.variant or "", version)
            lat_bin = latency_bin((processed_ms - ev.ts) / 1000)
            bucket = buckets.get(s)
            if bucket is None:
                bucket = buckets[s] = _Agg()
                if s < self._first_s:
                    self._first_s = s
            bucket.add(ev.type, ev.item, key, model, lat_bin)
            age = now_s - s
            for span, agg in zip(spans, windows, strict=True):
                if age < span:
                    agg.add(ev.type, ev.item, key, model, lat_bin)
            prev = last_seen.get(ev.user)
            if prev is None or s > prev:
                if prev is not None:
                    left = seen_at[prev] - 1
                    if left:
                        seen_at[prev] = left
                    else:
                        del seen_at[prev]
                last_seen[ev.user] = s
                seen_at[s] = seen_at.get(s, 0) + 1
        return placed

    def summary(self, span_s: int) -> WindowSummary:
        """The aggregates of the window of ``span_s`` seconds at the current clock."""
        try:
            agg = self._windows[self.spans_s.index(span_s)]
        except ValueError:
            raise ValueError(
                f"no window of {span_s} s; the windows are {', '.join(self.names)}"
            ) from None
        now_s = self._now_s
        coverage = max(1, min(span_s, now_s - self._first_s + 1))
        events = sum(agg.types.values())
        rates = {t: round(n / coverage, 6) for t, n in sorted(agg.types.items())}
        rates["total"] = round(events / coverage, 6)
        cutoff = now_s - span_s
        users = sum(n for s, n in self._seen_at.items() if s > cutoff)
        variants = tuple(
            VariantStats(exp, var, imp, clk, (clk / imp) if imp else None)
            for (exp, var), (imp, clk) in sorted(agg.variants.items())
        )
        models = tuple(
            ModelStats(exp or None, var or None, version, imp, clk, (clk / imp) if imp else None)
            for (exp, var, version), (imp, clk) in sorted(agg.models.items())
        )
        top = heapq.nlargest(self.top_k, agg.clicks.items(), key=lambda kv: (kv[1], kv[0]))
        return WindowSummary(
            window=window_name(span_s),
            span_s=span_s,
            now_ms=now_s * 1000,
            coverage_s=coverage,
            complete=coverage >= span_s,
            events=events,
            events_by_type=dict(sorted(agg.types.items())),
            rate_per_s=rates,
            distinct_users=users,
            variants=variants,
            models=models,
            top_items=tuple(TopItem(item, clicks) for item, clicks in top),
            latency_p50_s=histogram_quantile(agg.latency, 0.5),
            latency_p99_s=histogram_quantile(agg.latency, 0.99),
        )

    def summaries(self) -> dict[str, WindowSummary]:
        """Every window's summary, keyed by its name (``"1m"``, ``"5m"``, ``"1h"``)."""
        return {window_name(s): self.summary(s) for s in self.spans_s}
