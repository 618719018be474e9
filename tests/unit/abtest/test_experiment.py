"""analyze_users(): the default ratio CTR, the other metrics, CUPED, sequential, guardrails."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from backend.abtest.errors import AbTestInputError
from backend.abtest.experiment import analyze_users
from backend.abtest.results import MetricComparison
from backend.abtest.users import users_from_table
from backend.jsonable import to_jsonable


def traffic(
    rates: dict[str, float], users: int = 4000, seed: int = 1, purchase_drop: float = 0.0
) -> pd.DataFrame:
    """Users with 1 + Poisson(3) impressions and their own CTR ~ Beta around the variant's
    rate; a pre-period from the same users' rates; purchases ~ Poisson(0.3 - drop)."""
    rng = np.random.default_rng(seed)
    frames = []
    for i, (variant, rate) in enumerate(rates.items()):
        own = rng.beta(rate * 4, (1 - rate) * 4, users)
        impressions = 1 + rng.poisson(3, users)
        pre_impressions = 1 + rng.poisson(3, users)
        taste = rng.gamma(2.0, 0.15, users)
        frames.append(
            pd.DataFrame(
                {
                    "user": [f"{variant}{u}" for u in range(users)],
                    "variant": variant,
                    "impressions": impressions,
                    "clicks": rng.binomial(impressions, own),
                    "purchases": rng.poisson(taste * (1 - purchase_drop * i)),
                    "pre_impressions": pre_impressions,
                    "pre_clicks": rng.binomial(pre_impressions, own),
                    "pre_purchases": rng.poisson(taste),
                }
            )
        )
    return users_from_table(pd.concat(frames, ignore_index=True))


def test_default_ctr_is_clicks_over_impressions() -> None:
    users = traffic({"A": 0.05, "B": 0.078})
    result = analyze_users(users, control="A")
    assert result.metric == "ctr" and result.status == "ok"
    a, b = result.variants
    assert a.ctr == pytest.approx(users[users.variant == "A"].clicks.sum() / a.impressions)
    assert a.ctr == pytest.approx(0.05, abs=0.006) and b.ctr == pytest.approx(0.078, abs=0.006)
    assert a.click_users is not None and a.click_users / a.units > 0.1  # the other metric
    (cmp,) = result.comparisons
    assert isinstance(cmp, MetricComparison)
    assert cmp.difference.estimate == pytest.approx(b.ctr - a.ctr)  # type: ignore[operator]
    assert cmp.difference.estimate == pytest.approx(0.028, abs=0.006)
    assert cmp.decision == "treatment_better"
    assert result.verdict.startswith("B beats A on CTR (clicks/impressions, delta method): +2.")
    # The share of users who clicked stays available, under its own name.
    share = analyze_users(users, control="A", metric="click_users")
    assert share.metric == "click_users" and share.verdict.startswith(
        "B beats A on users who clicked"
    )
    data = to_jsonable(result)
    json.dumps(data, allow_nan=False)
    assert {"status", "verdict", "variants", "comparisons", "srm"} <= set(data)


def test_cuped_reduces_variance_and_sequential_widens() -> None:
    users = traffic({"A": 0.05, "B": 0.06})
    plain = analyze_users(users, control="A")
    cuped = analyze_users(users, control="A", cuped=True)
    (p,), (c,) = plain.comparisons, cuped.comparisons
    assert isinstance(p, MetricComparison) and isinstance(c, MetricComparison)
    assert c.cuped is not None and c.cuped.variance_reduction is not None
    assert 0.05 < c.cuped.variance_reduction < 1
    assert c.difference.se < p.difference.se  # type: ignore[operator]
    assert "CUPED" in cuped.verdict and cuped.metric_variants[0].pre_value is not None
    live = analyze_users(users, control="A", cuped=True, sequential=True, n_star=8000)
    (s,) = live.comparisons
    assert isinstance(s, MetricComparison) and s.difference.method == "sequential_cs"
    assert (s.difference.ci.high - s.difference.ci.low) > (  # type: ignore[operator]
        c.difference.ci.high - c.difference.ci.low  # type: ignore[operator]
    )
    assert "sequential" in live.verdict and "95% CS" in live.verdict


def test_guardrail_flags_harm_and_passes_no_harm() -> None:
    users = traffic({"A": 0.05, "B": 0.05}, purchase_drop=0.3)
    result = analyze_users(users, control="A", metric="ctr", guardrails=["purchases", "ctr"])
    harm = {g.metric: g for g in result.guardrails}
    assert harm["purchases"].harmed is True and harm["purchases"].bound < 0  # type: ignore[operator]
    assert harm["ctr"].harmed is False
    assert "purchases per user (B vs A) is significantly harmed" in result.verdict
    live = analyze_users(users, control="A", guardrails=["purchases"], sequential=True)
    assert live.guardrails[0].method == "sequential_cs_one_sided"


def test_welch_metric_and_several_treatments() -> None:
    users = traffic({"A": 0.05, "B": 0.05, "C": 0.05}, users=500)
    result = analyze_users(users, control="A", metric="purchases")
    assert [c.treatment for c in result.comparisons] == ["B", "C"]
    assert all(c.p_value_adjusted is not None for c in result.comparisons)
    assert "Holm-adjusted p" in result.verdict and "Welch t-test" in result.verdict


def test_options_that_do_not_fit_are_refused() -> None:
    users = traffic({"A": 0.05, "B": 0.06}, users=100)
    with pytest.raises(AbTestInputError, match="metric must be one of"):
        analyze_users(users, control="A", metric="revenue")
    with pytest.raises(AbTestInputError, match="2×2-table"):
        analyze_users(users, control="A", metric="click_users", sequential=True)
    with pytest.raises(AbTestInputError, match="needs the per-user column"):
        analyze_users(users.drop(columns="pre_clicks"), control="A", cuped=True)
    with pytest.raises(AbTestInputError, match="value"):
        analyze_users(users, control="A", metric="value")
    with pytest.raises(AbTestInputError, match="control variant"):
        analyze_users(users, control="Z")


def test_srm_with_an_unequal_split_and_thin_data() -> None:
    users = traffic({"A": 0.05, "B": 0.06}, users=300)
    skewed = users[~((users.variant == "B") & (users.index % 3 == 0))]
    ok = analyze_users(skewed, control="A", expected_split={"A": 3, "B": 2})
    assert ok.srm.mismatch is False
    bad = analyze_users(skewed, control="A")
    assert bad.srm.mismatch is True and bad.verdict.startswith("Sample ratio mismatch")
    thin = analyze_users(users.head(40), control="A")
    assert thin.status == "not_enough_data" and thin.verdict.startswith("Not enough data")


def test_per_impression_unit_keeps_the_old_analysis() -> None:
    users = traffic({"A": 0.05, "B": 0.078}, users=1000)
    result = analyze_users(users, control="A", unit="impression")
    assert result.unit == "impression" and result.settings.metric == "ctr"
    assert result.verdict.startswith("B beats A on CTR per impression")
