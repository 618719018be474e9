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
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Final, NamedTuple, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from backend.monitoring.counts import Counts, batch_counts, latency_bins
from backend.monitoring.latency import LATENCY_EDGES_S as LATENCY_EDGES_S
from backend.monitoring.latency import histogram_quantile as histogram_quantile
from backend.monitoring.latency import latency_bin as latency_bin


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


_T = TypeVar("_T")

DEFAULT_SPANS_S: Final[tuple[int, ...]] = (60, 300, 3600)


def window_name(span_s: int) -> str:
    """``60`` -> ``"1m"``, ``3600`` -> ``"1h"``, ``45`` -> ``"45s"``: the names the API accepts."""
    if span_s % 3600 == 0:
        return f"{span_s // 3600}h"
    if span_s % 60 == 0:
        return f"{span_s // 60}m"
    return f"{span_s}s"


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

    A batch is counted per event-time second (``backend.monitoring.counts``), and each second's
    counts are added to its bucket and to the running sum of every window that covers it;
    ``advance`` subtracts the buckets that leave a window and drops those older than the longest
    span. Cost per batch is O(events) in C-level counting plus O(distinct keys x windows) in
    Python; a summary is O(variants + items + histogram bins + longest span).
    """

    start_ms: int
    spans_s: tuple[int, ...] = DEFAULT_SPANS_S
    top_k: int = 10
    _now_s: int = field(init=False)
    _first_s: int = field(init=False)
    _buckets: dict[int, Counts] = field(init=False, default_factory=dict)
    _windows: list[Counts] = field(init=False)
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
        self._windows = [Counts() for _ in self.spans_s]

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

        Call ``advance`` first: the windows are those at the current clock. The batch is counted
        per event-time second (``batch_counts``), each second's counts added once to its bucket
        and to every window that covers it.
        """
        placed = Placement()
        rows = list(map(_COLUMNS, events))
        if not rows:
            return placed
        ts_l, *columns = (list(c) for c in zip(*rows, strict=True))
        cols = _Columns(*columns)
        now_s = self._now_s
        ts = np.asarray(ts_l, dtype=np.int64)
        secs = ts // 1000
        ahead = secs > now_s
        placed.future = int(ahead.sum())
        secs[ahead] = now_s
        keep = secs > now_s - self.longest_s
        placed.late = len(rows) - int(keep.sum())
        lat_bins = latency_bins(processed_ms - ts)
        if placed.late:
            cols = cols.pick(np.flatnonzero(keep).tolist())
            secs, lat_bins = secs[keep], lat_bins[keep]
        placed.counted = len(cols.types)
        placed.without_experiment = cols.experiments.count(None)
        if not placed.counted:
            return placed
        if secs.min() == secs.max():
            self._add_second(int(secs[0]), cols, lat_bins)
            return placed
        # Seconds in ascending order, so that a user's last second only moves forward.
        order = np.argsort(secs, kind="stable")
        seconds, starts = np.unique(secs[order], return_index=True)
        bounds = [*starts.tolist(), len(order)]
        for k, s in enumerate(seconds.tolist()):
            idx = order[bounds[k] : bounds[k + 1]]
            self._add_second(s, cols.pick(idx.tolist()), lat_bins[idx])
        return placed

    def _add_second(self, s: int, cols: _Columns, lat_bins: npt.NDArray[np.intp]) -> None:
        counts = batch_counts(
            cols.types, cols.items, cols.experiments, cols.variants, cols.versions, lat_bins
        )
        bucket = self._buckets.get(s)
        if bucket is None:
            bucket = self._buckets[s] = Counts()
            if s < self._first_s:
                self._first_s = s
        bucket.add(counts)
        age = self._now_s - s
        for span, agg in zip(self.spans_s, self._windows, strict=True):
            if age < span:
                agg.add(counts)
        self._see_users(s, cols.users)

    def _see_users(self, s: int, users: list[str]) -> None:
        """Move the last second seen of each user to ``s`` when it is later."""
        last_seen = self._last_seen
        seen_at = self._seen_at
        distinct = dict.fromkeys(users)
        before = Counter(map(last_seen.get, distinct))
        if any(prev is not None and prev > s for prev in before):
            # Some users were seen later already and keep that second: one by one.
            for user in distinct:
                prev = last_seen.get(user)
                if prev is None or s > prev:
                    if prev is not None:
                        _decrement(seen_at, prev, 1)
                    last_seen[user] = s
                    seen_at[s] = seen_at.get(s, 0) + 1
            return
        moved = 0
        for prev, n in before.items():
            if prev != s:
                moved += n
                if prev is not None:
                    _decrement(seen_at, prev, n)
        if moved:
            seen_at[s] = seen_at.get(s, 0) + moved
            last_seen.update(dict.fromkeys(distinct, s))

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


def _decrement(counts: dict[int, int], key: int, n: int) -> None:
    left = counts[key] - n
    if left:
        counts[key] = left
    else:
        del counts[key]


class _Columns(NamedTuple):
    """A batch of events as one list per field the windows read (``ts`` aside)."""

    types: list[str]
    users: list[str]
    items: list[str]
    experiments: list[str | None]
    variants: list[str | None]
    versions: list[str | None]

    def pick(self, indices: list[int]) -> _Columns:
        """The events at ``indices``, in that order."""
        return _Columns(
            _take(self.types, indices),
            _take(self.users, indices),
            _take(self.items, indices),
            _take(self.experiments, indices),
            _take(self.variants, indices),
            _take(self.versions, indices),
        )


def _take(column: list[_T], indices: list[int]) -> list[_T]:
    return [column[i] for i in indices]


_COLUMNS: Final = attrgetter("ts", "type", "user", "item", "experiment", "variant", "model_version")
