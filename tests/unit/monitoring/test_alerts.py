"""Alert rules, the one-open-alert-per-key book, and the SQL alert store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from backend.config import Settings
from backend.db.migrate import upgrade
from backend.monitoring.alert_store import AlertStore
from backend.monitoring.alerts import (
    AlertBook,
    AlertRules,
    ctr_conditions,
    idle_condition,
    lag_condition,
)

RULES = AlertRules(ctr_drop_pct=30, ctr_min_impressions=100, ctr_min_trailing_impressions=1000)


def windows(short: tuple[int, int], long: tuple[int, int]) -> dict[str, Any]:
    def w(imp: int, clk: int) -> dict[str, Any]:
        return {
            "variants": [{"experiment": "x", "variant": "A", "impressions": imp, "clicks": clk}]
        }

    return {"1m": w(*short), "1h": w(*long)}


def test_ctr_drop_compares_the_short_window_with_the_trailing_rest() -> None:
    # Trailing: (1100 - 100) impressions, (55 - 2) clicks -> 5.3 %; short: 2 % -> 62 % drop.
    (c,) = ctr_conditions(windows((100, 2), (1100, 55)), RULES)
    assert c.firing is True and c.labels == {"experiment": "x", "variant": "A"}
    assert c.value == pytest.approx((53 / 1000 - 0.02) / (53 / 1000) * 100, abs=1e-3)
    assert "below its trailing mean" in c.message


def test_ctr_drop_hysteresis_and_thin_data() -> None:
    assert ctr_conditions(windows((100, 5), (1100, 55)), RULES)[0].firing is False  # no drop
    # 20 % drop: between half the threshold and the threshold -> no change either way
    assert ctr_conditions(windows((100, 4), (1100, 54)), RULES)[0].firing is None
    assert ctr_conditions(windows((99, 0), (1100, 55)), RULES)[0].firing is None  # short thin
    assert ctr_conditions(windows((100, 0), (1000, 50)), RULES)[0].firing is None  # trailing thin


def test_lag_and_idle_conditions() -> None:
    assert lag_condition("t", None, RULES).firing is None
    assert lag_condition("t", 10_001, RULES).firing is True
    assert lag_condition("t", 10_000, RULES).firing is False
    assert idle_condition("t", 60.0, RULES).firing is True
    assert idle_condition("t", 59.9, RULES).firing is False


def test_book_keeps_one_open_alert_per_rule_and_labels() -> None:
    book = AlertBook()
    firing = lag_condition("t", 20_000, RULES)
    todo = book.transitions([firing])
    assert todo.fire == [firing] and todo.resolve == []
    book.opened(firing.key, 7)
    assert book.transitions([firing, lag_condition("t", 30_000, RULES)]).fire == []
    assert book.transitions([lag_condition("other", 30_000, RULES)]).fire != []
    assert book.transitions([lag_condition("t", None, RULES)]).resolve == []
    todo = book.transitions([lag_condition("t", 5, RULES)])
    assert todo.resolve == [(firing.key, 7)]
    book.resolved(firing.key)
    assert book.transitions([firing]).fire == [firing]


def test_rules_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="ctr_drop_pct"):
        AlertRules(ctr_drop_pct=0)
    with pytest.raises(ValueError, match="idle_after_s"):
        AlertRules(idle_after_s=0)


def test_alert_store_fires_resolves_and_reloads_open_alerts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path)
    upgrade(settings.sqlalchemy_url)
    store = AlertStore(settings.sqlalchemy_url)
    cond = lag_condition("t", 20_000, RULES)
    with caplog.at_level("WARNING"):
        first = store.fire(cond)
    assert "alert" in caplog.text and "lag" in caplog.text
    second = store.fire(idle_condition("t", 99, RULES))
    assert store.load_open() == {cond.key: first, idle_condition("t", 99, RULES).key: second}
    store.resolve(first)
    store.resolve(first)  # idempotent
    assert list(store.load_open().values()) == [second]
