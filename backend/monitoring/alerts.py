"""Alert rules over a monitor snapshot: pure functions and a book of open alerts, no I/O.

Three rules, each evaluated once per snapshot:

* ``ctr_drop`` (labels: experiment, variant): the variant's CTR in the short window is more than
  ``ctr_drop_pct`` % below its trailing mean, where the trailing mean is the CTR of the long window
  *minus* the short one, ``(clicks_long - clicks_short) / (impressions_long - impressions_short)``.
  It needs at least ``ctr_min_impressions`` impressions in the short window and
  ``ctr_min_trailing_impressions`` in the trailing part; with less data the rule says nothing
  (an open alert stays open). It resolves when the drop is below half the threshold (hysteresis,
  so a CTR hovering at the threshold does not fire and resolve every second).
* ``lag`` (label: topic): the total consumer lag over all partitions is above ``lag_max`` events;
  resolves at or below it. Unknown lag (broker unreachable) says nothing.
* ``no_events`` (label: topic): no valid event has been processed for ``idle_after_s`` seconds
  (counted from the monitor's start when none has arrived yet); resolves on the next event.

Storms are avoided by ``AlertBook``: at most one open alert per rule and label set; a condition
that keeps firing does not open another until the first is resolved.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

AlertKey = tuple[str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True)
class AlertRules:
    """Thresholds of the alert rules (see the module docstring)."""

    ctr_drop_pct: float = 30.0
    ctr_short_window: str = "1m"
    ctr_long_window: str = "1h"
    ctr_min_impressions: int = 200
    ctr_min_trailing_impressions: int = 1000
    lag_max: int = 10_000
    idle_after_s: float = 60.0

    def __post_init__(self) -> None:
        if not 0 < self.ctr_drop_pct < 100:
            raise ValueError(f"ctr_drop_pct must be in (0, 100), got {self.ctr_drop_pct}")
        if self.ctr_min_impressions < 1 or self.ctr_min_trailing_impressions < 1:
            raise ValueError("the minimum impression counts must be at least 1")
        if self.lag_max < 0:
            raise ValueError(f"lag_max must be >= 0, got {self.lag_max}")
        if self.idle_after_s <= 0:
            raise ValueError(f"idle_after_s must be > 0, got {self.idle_after_s}")


@dataclass(frozen=True)
class Condition:
    """One rule for one label set: ``firing`` is True, False, or None (not enough data)."""

    rule: str
    labels: dict[str, str]
    firing: bool | None
    value: float | None
    threshold: float
    message: str
    severity: str = "warning"

    @property
    def key(self) -> AlertKey:
        return alert_key(self.rule, self.labels)


def alert_key(rule: str, labels: Mapping[str, Any]) -> AlertKey:
    """The identity of an alert: its rule and its sorted labels."""
    return rule, tuple(sorted((str(k), str(v)) for k, v in labels.items()))


def _variants(window: Mapping[str, Any] | None) -> dict[tuple[str, str], tuple[int, int]]:
    if not window:
        return {}
    return {
        (v["experiment"], v["variant"]): (int(v["impressions"]), int(v["clicks"]))
        for v in window.get("variants", [])
    }


def ctr_conditions(windows: Mapping[str, Any], rules: AlertRules) -> list[Condition]:
    """``ctr_drop`` for every variant seen in the short window (see the module docstring)."""
    short = _variants(windows.get(rules.ctr_short_window))
    long = _variants(windows.get(rules.ctr_long_window))
    out: list[Condition] = []
    for (exp, var), (imp_s, clk_s) in sorted(short.items()):
        imp_l, clk_l = long.get((exp, var), (imp_s, clk_s))
        trail_imp, trail_clk = imp_l - imp_s, clk_l - clk_s
        labels = {"experiment": exp, "variant": var}
        threshold = rules.ctr_drop_pct
        if imp_s < rules.ctr_min_impressions or trail_imp < rules.ctr_min_trailing_impressions:
            out.append(Condition("ctr_drop", labels, None, None, threshold, "not enough data"))
            continue
        trailing = trail_clk / trail_imp
        current = clk_s / imp_s
        drop_pct = 0.0 if trailing == 0 else max(0.0, (trailing - current) / trailing * 100)
        if drop_pct > threshold:
            firing: bool | None = True
        elif drop_pct < threshold / 2:
            firing = False
        else:
            firing = None
        out.append(
            Condition(
                "ctr_drop",
                labels,
                firing,
                round(drop_pct, 3),
                threshold,
                f"CTR of {exp}/{var} is {current:.4f} over {rules.ctr_short_window}, "
                f"{drop_pct:.1f}% below its trailing mean {trailing:.4f} "
                f"(alert above {threshold:g}%)",
            )
        )
    return out


def lag_condition(topic: str, total_lag: int | None, rules: AlertRules) -> Condition:
    """``lag``: total consumer lag above ``lag_max``; ``firing=None`` when the lag is unknown."""
    labels = {"topic": topic}
    if total_lag is None:
        return Condition("lag", labels, None, None, rules.lag_max, "lag unknown")
    return Condition(
        "lag",
        labels,
        total_lag > rules.lag_max,
        float(total_lag),
        rules.lag_max,
        f"consumer lag on {topic} is {total_lag} events (alert above {rules.lag_max})",
    )


def idle_condition(topic: str, idle_s: float, rules: AlertRules) -> Condition:
    """``no_events``: no valid event for ``idle_after_s`` seconds."""
    return Condition(
        "no_events",
        {"topic": topic},
        idle_s >= rules.idle_after_s,
        round(idle_s, 3),
        rules.idle_after_s,
        f"no events on {topic} for {idle_s:.0f} s (alert after {rules.idle_after_s:g} s)",
        severity="critical",
    )


@dataclass
class Transitions:
    """What to do after an evaluation: alerts to open, and open alerts (by id) to resolve."""

    fire: list[Condition] = field(default_factory=list)
    resolve: list[tuple[AlertKey, int]] = field(default_factory=list)


@dataclass
class AlertBook:
    """Open alerts by key (rule + labels) with their stored ids; one open alert per key."""

    open: dict[AlertKey, int] = field(default_factory=dict)

    def transitions(self, conditions: Iterable[Condition]) -> Transitions:
        """Firing conditions without an open alert open one; open alerts whose condition is
        ``False`` resolve. ``None`` (not enough data) changes nothing."""
        out = Transitions()
        for cond in conditions:
            open_id = self.open.get(cond.key)
            if cond.firing is True and open_id is None:
                out.fire.append(cond)
            elif cond.firing is False and open_id is not None:
                out.resolve.append((cond.key, open_id))
        return out

    def opened(self, key: AlertKey, alert_id: int) -> None:
        self.open[key] = alert_id

    def resolved(self, key: AlertKey) -> None:
        self.open.pop(key, None)
