"""Sliding windows: placement by event time, expiry, CTR, users, rates, latency quantiles."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from backend.jsonable import to_jsonable
from backend.monitoring.validation import Counted
from backend.monitoring.windows import (
    LATENCY_EDGES_S,
    SlidingWindows,
    TopItem,
    histogram_quantile,
    latency_bin,
    window_name,
)

T0 = 1_700_000_000_000  # a whole second, epoch ms


def ev(
    ts: int,
    etype: str = "impression",
    user: str = "u1",
    item: str = "i1",
    exp: str | None = "home",
    var: str | None = "A",
    model: str | None = None,
) -> Counted:
    return Counted(ts, etype, user, item, exp, var, model)


def test_window_names() -> None:
    assert [window_name(s) for s in (60, 300, 3600, 45, 7200)] == ["1m", "5m", "1h", "45s", "2h"]


def test_counts_ctr_users_and_top_items_in_every_window() -> None:
    w = SlidingWindows(start_ms=T0)
    now = T0 + 10_000
    w.advance(now)
    events = [
        ev(now - 1000, "impression", "u1", "i1"),
        ev(now - 1000, "impression", "u2", "i2", var="B"),
        ev(now - 900, "click", "u1", "i1"),
        ev(now - 800, "impression", "u3", "i1"),
        ev(now - 500, "view", "u4", "i9", exp=None, var=None),
    ]
    placed = w.add_many(events, now)
    assert (placed.counted, placed.late, placed.future, placed.without_experiment) == (5, 0, 0, 1)
    for name, s in w.summaries().items():
        assert s.events == 5, name
        assert s.events_by_type == {"click": 1, "impression": 3, "view": 1}
        assert s.distinct_users == 4
        by = {(v.experiment, v.variant): (v.impressions, v.clicks, v.ctr) for v in s.variants}
        assert by == {("home", "A"): (2, 1, 0.5), ("home", "B"): (1, 0, 0.0)}
        assert s.top_items == (TopItem("i1", 1),)
    data = to_jsonable(w.summary(60))
    assert data["top_items"] == [{"item": "i1", "clicks": 1}]
    assert data["variants"][0] == {
        "experiment": "home",
        "variant": "A",
        "impressions": 2,
        "clicks": 1,
        "ctr": 0.5,
    }
    assert (data["coverage_s"], data["complete"]) == (11, False)


def test_events_leave_the_short_window_first_and_are_dropped_after_the_longest() -> None:
    w = SlidingWindows(start_ms=T0, spans_s=(60, 300))
    w.advance(T0 + 1000)
    w.add_many([ev(T0 + 500, user="u1"), ev(T0 + 500, "click", user="u1")], T0 + 1000)
    w.advance(T0 + 60_000)  # T0 second is 60 s back: out of the 1 min window (span 60 s)
    s1, s5 = w.summary(60), w.summary(300)
    assert (s1.events, s1.distinct_users, s1.variants) == (0, 0, ())
    assert (s5.events, s5.distinct_users) == (2, 1)
    w.advance(T0 + 300_000)
    s5 = w.summary(300)
    assert (s5.events, s5.distinct_users, s5.top_items, s5.variants) == (0, 0, (), ())
    assert s5.latency_p99_s is None


def test_a_second_is_in_a_window_exactly_span_seconds() -> None:
    w = SlidingWindows(start_ms=T0, spans_s=(60,))
    w.advance(T0)
    w.add_many([ev(T0)], T0)
    w.advance(T0 + 59_999)
    assert w.summary(60).events == 1
    w.advance(T0 + 60_000)
    assert w.summary(60).events == 0


def test_late_events_count_only_in_windows_that_cover_them() -> None:
    w = SlidingWindows(start_ms=T0, spans_s=(60, 300))
    now = T0 + 1_000_000
    w.advance(now)
    placed = w.add_many([ev(now - 120_000), ev(now - 400_000), ev(now - 2_000)], now)
    assert (placed.counted, placed.late) == (2, 1)
    assert w.summary(60).events == 1
    assert w.summary(300).events == 2


def test_future_events_are_clamped_to_now_with_zero_latency() -> None:
    w = SlidingWindows(start_ms=T0, spans_s=(60,))
    w.advance(T0)
    placed = w.add_many([ev(T0 + 120_000)], T0)
    assert (placed.counted, placed.future) == (1, 1)
    s = w.summary(60)
    assert s.events == 1 and s.latency_p50_s == 0.0
    w.advance(T0 + 60_000)  # it sits in T0's second, so it leaves with that second
    assert w.summary(60).events == 0


def test_rates_divide_by_the_covered_seconds() -> None:
    w = SlidingWindows(start_ms=T0, spans_s=(60, 300))
    w.advance(T0 + 9_500)  # 10 whole seconds covered: T0 .. T0+9
    w.add_many([ev(T0 + 1000 * i) for i in range(10)], T0 + 9_500)
    s = w.summary(60)
    assert s.coverage_s == 10 and s.rate_per_s["total"] == 1.0
    assert s.rate_per_s["impression"] == 1.0
    w.advance(T0 + 200_000)
    assert w.summary(300).coverage_s == 201
    assert w.summary(60).coverage_s == 60


def test_latency_quantiles_are_upper_bin_edges() -> None:
    w = SlidingWindows(start_ms=T0, spans_s=(60,))
    now = T0 + 30_000
    w.advance(now)
    w.add_many([ev(now - 100) for _ in range(98)] + [ev(now - 5000)] * 2, now)
    s = w.summary(60)
    assert s.latency_p50_s == LATENCY_EDGES_S[latency_bin(0.1)]
    assert 0.1 <= s.latency_p50_s < 0.1 * 1.13
    assert 5.0 <= (s.latency_p99_s or 0) < 5.0 * 1.13


def test_histogram_quantile_edges() -> None:
    assert histogram_quantile({}, 0.5) is None
    assert histogram_quantile({3: 1}, 1.0) == LATENCY_EDGES_S[3]
    assert latency_bin(-1.0) == 0 and latency_bin(1e9) == len(LATENCY_EDGES_S) - 1
    with pytest.raises(ValueError, match="quantile"):
        histogram_quantile({1: 1}, 0)


def test_bad_spans_are_refused_and_unknown_window_named() -> None:
    with pytest.raises(ValueError, match="whole seconds"):
        SlidingWindows(start_ms=T0, spans_s=(0,))
    with pytest.raises(ValueError, match="distinct"):
        SlidingWindows(start_ms=T0, spans_s=(60, 60))
    with pytest.raises(ValueError, match="1m, 5m"):
        SlidingWindows(start_ms=T0, spans_s=(60, 300)).summary(10)


@pytest.mark.parametrize(
    ("seed", "max_batch", "rounds"), [*((s, 4, 300) for s in range(5)), (5, 120, 80), (6, 400, 30)]
)
def test_incremental_windows_equal_a_recount_from_scratch(
    seed: int, max_batch: int, rounds: int
) -> None:
    """Random arrivals (late, on time, ahead) and clock jumps, in small batches and in large ones
    spread over many seconds; compare with brute force."""
    rng = random.Random(seed)
    spans = (5, 20, 60)
    w = SlidingWindows(start_ms=T0, spans_s=spans)
    now = T0
    kept: list[tuple[int, Counted, int]] = []  # (bucket second, event, latency bin)
    for _ in range(rounds):
        now += rng.choice([0, 0, 10, 300, 1000, 4000, 30_000])
        w.advance(now)
        now_s = now // 1000
        batch = [
            ev(
                now + rng.randint(-70_000, 3_000),
                rng.choice(["impression", "click", "view"]),
                f"u{rng.randrange(20)}",
                f"i{rng.randrange(5)}",
                *rng.choice([("x", "A"), ("x", "B"), (None, None)]),
                rng.choice([None, "m1", "m2"]),
            )
            for _ in range(rng.randrange(max_batch))
        ]
        w.add_many(batch, now)
        for e in batch:
            s = min(e.ts // 1000, now_s)
            if s > now_s - spans[-1]:
                kept.append((s, e, latency_bin((now - e.ts) / 1000)))
        for span in spans:
            inside = [e for s, e, _ in kept if s > now_s - span]
            got = w.summary(span)
            assert got.events == len(inside)
            assert got.events_by_type == dict(sorted(Counter(e.type for e in inside).items()))
            users = {e.user for s, e, _ in kept if s > now_s - span}
            bins = Counter(b for s, _, b in kept if s > now_s - span)
            assert got.latency_p99_s == histogram_quantile(bins, 0.99)
            assert got.latency_p50_s == histogram_quantile(bins, 0.5)
            assert got.distinct_users == len(users)
            clicks = Counter(e.item for e in inside if e.type == "click")
            assert {t.item: t.clicks for t in got.top_items} == dict(clicks.most_common(10))
            imp = Counter((e.experiment, e.variant) for e in inside if e.type == "impression")
            clk = Counter((e.experiment, e.variant) for e in inside if e.type == "click")
            want = {k: (imp[k], clk[k]) for k in set(imp) | set(clk) if k[0] is not None}
            assert {(v.experiment, v.variant): (v.impressions, v.clicks) for v in got.variants} == (
                want
            )
            by_model = Counter(
                (e.experiment, e.variant, e.model_version, e.type)
                for e in inside
                if e.model_version is not None and e.type in ("impression", "click")
            )
            keys = {k[:3] for k in by_model}
            want_models = {k: (by_model[(*k, "impression")], by_model[(*k, "click")]) for k in keys}
            assert {
                (m.experiment, m.variant, m.model_version): (m.impressions, m.clicks)
                for m in got.models
            } == want_models


def test_ctr_per_model_version_within_each_variant() -> None:
    w = SlidingWindows(start_ms=T0, spans_s=(60, 300))
    now = T0 + 5_000
    w.advance(now)
    events = [
        ev(now - 1000, "impression", "u1", "i1", model="als-v1"),
        ev(now - 1000, "impression", "u2", "i2", model="als-v1"),
        ev(now - 900, "click", "u1", "i1", model="als-v1"),
        ev(now - 900, "impression", "u3", "i3", var="B", model="als-v2"),
        ev(now - 800, "impression", "u4", "i3", var="B", model="als-v2"),
        ev(now - 800, "click", "u4", "i3", var="B", model="als-v2"),
        ev(now - 700, "click", "u5", "i3", var="B", model="als-v2"),
        ev(now - 700, "impression", "u6", "i4", exp=None, var=None, model="pop-1"),
        ev(now - 600, "view", "u6", "i4", model="als-v1"),  # not an impression or a click
        ev(now - 600, "impression", "u7", "i4"),  # no model version: per variant only
    ]
    w.add_many(events, now)
    s = w.summary(60)
    got = {
        (m.experiment, m.variant, m.model_version): (m.impressions, m.clicks, m.ctr)
        for m in s.models
    }
    assert got == {
        ("home", "A", "als-v1"): (2, 1, 0.5),
        ("home", "B", "als-v2"): (2, 2, 1.0),
        (None, None, "pop-1"): (1, 0, 0.0),
    }
    # The per-variant figures count every impression and click, with or without a model.
    by = {(v.experiment, v.variant): (v.impressions, v.clicks) for v in s.variants}
    assert by == {("home", "A"): (3, 1), ("home", "B"): (2, 2)}
    data = to_jsonable(s)
    assert data["models"][0] == {
        "experiment": None,
        "variant": None,
        "model_version": "pop-1",
        "impressions": 1,
        "clicks": 0,
        "ctr": 0.0,
    }
    # Model counts leave the window with their buckets.
    w.advance(now + 60_000)
    assert w.summary(60).models == () and len(w.summary(300).models) == 3
