"""Power, MDE and the sample-size planner against statsmodels' NormalIndPower."""

from __future__ import annotations

import math

import pytest
from statsmodels.stats.power import NormalIndPower

from backend.abtest.errors import AbTestInputError
from backend.abtest.power import (
    achieved_power,
    cohens_h,
    minimum_detectable_effect,
    plan_sample_size,
    power_analysis,
)
from backend.jsonable import to_jsonable

SM = NormalIndPower()


def test_cohens_h_matches_statsmodels() -> None:
    from statsmodels.stats.proportion import proportion_effectsize

    assert cohens_h(0.12, 0.1) == pytest.approx(proportion_effectsize(0.12, 0.1), abs=1e-12)


@pytest.mark.parametrize(
    ("table", "alpha"),
    [
        ((58, 1000, 50, 1000), 0.05),
        ((520, 10_000, 500, 12_000), 0.05),
        ((30, 400, 12, 380), 0.01),
        ((0, 50, 3, 70), 0.1),
        ((50, 1000, 50, 1000), 0.05),
    ],
)
def test_achieved_power_matches_statsmodels(table: tuple[int, int, int, int], alpha: float):
    xt, nt, xc, nc = table
    h = cohens_h(xt / nt, xc / nc)
    expected = SM.power(effect_size=h, nobs1=nc, alpha=alpha, ratio=nt / nc)
    assert achieved_power(xt, nt, xc, nc, alpha) == pytest.approx(expected, abs=1e-9)


def test_achieved_power_without_impressions_is_none() -> None:
    assert achieved_power(0, 0, 5, 100) is None


@pytest.mark.parametrize(
    ("p_c", "n_t", "n_c", "alpha", "power"),
    [(0.05, 10_000, 10_000, 0.05, 0.8), (0.2, 800, 1200, 0.01, 0.9), (0.0, 5000, 5000, 0.05, 0.8)],
)
def test_mde_reaches_exactly_the_target_power(
    p_c: float, n_t: int, n_c: int, alpha: float, power: float
) -> None:
    mde, reason = minimum_detectable_effect(p_c, n_t, n_c, alpha, power)
    assert reason is None and mde is not None and mde > 0
    h = cohens_h(p_c + mde, p_c)
    # Evaluated by statsmodels at our answer: the defining equation holds to 1e-9.
    assert SM.power(effect_size=h, nobs1=n_c, alpha=alpha, ratio=n_t / n_c) == pytest.approx(
        power, abs=1e-9
    )
    # statsmodels' own root finder for the effect size stops early (about 1e-5 relative).
    h_sm = SM.solve_power(nobs1=n_c, alpha=alpha, power=power, ratio=n_t / n_c)
    assert h == pytest.approx(h_sm, rel=1e-4)


def test_mde_unreachable_with_tiny_samples() -> None:
    mde, reason = minimum_detectable_effect(0.9, 2, 2)
    assert mde is None and reason is not None and "100%" in reason


def test_power_analysis_bundles_both() -> None:
    result = power_analysis(58, 1000, 50, 1000)
    assert result.achieved is not None and 0.05 < result.achieved < 1
    assert result.mde_abs is not None and result.target_power == 0.8
    with pytest.raises(AbTestInputError, match="target power must lie between alpha"):
        power_analysis(58, 1000, 50, 1000, power=0.01)


@pytest.mark.parametrize(
    ("baseline", "kwargs"),
    [
        (0.05, {"mde_abs": 0.005}),
        (0.05, {"mde_rel": 0.1}),
        (0.3, {"mde_abs": -0.02, "alpha": 0.01, "power": 0.9}),
        (0.02, {"mde_rel": 0.25, "ratio": 2.0}),
        (0.1, {"mde_abs": 0.01, "ratio": 0.5, "power": 0.95}),
    ],
)
def test_plan_matches_statsmodels_solve_power(baseline: float, kwargs: dict[str, float]) -> None:
    plan = plan_sample_size(baseline, **kwargs)  # type: ignore[arg-type]
    h = cohens_h(plan.target_ctr, baseline)
    expected = SM.solve_power(
        effect_size=abs(h),
        alpha=kwargs.get("alpha", 0.05),
        power=kwargs.get("power", 0.8),
        ratio=kwargs.get("ratio", 1.0),
    )
    assert plan.units_control_exact == pytest.approx(expected, rel=1e-9)
    assert plan.units_control == math.ceil(expected - 1e-9)
    assert plan.units_per_treatment == math.ceil(kwargs.get("ratio", 1.0) * expected - 1e-9)
    assert plan.units_total == plan.units_control + plan.units_per_treatment


def test_plan_known_value() -> None:
    # 5% -> 6% at α = 0.05, power 0.8: the classic figure is about 8,150 per group.
    plan = plan_sample_size(0.05, mde_abs=0.01)
    assert 8_000 < plan.units_control < 8_300
    assert plan.mde_rel == pytest.approx(0.2)


def test_plan_uses_bonferroni_over_treatments() -> None:
    plan = plan_sample_size(0.05, mde_rel=0.1, n_variants=4)
    assert plan.alpha_per_comparison == pytest.approx(0.05 / 3)
    expected = SM.solve_power(
        effect_size=abs(cohens_h(0.055, 0.05)), alpha=0.05 / 3, power=0.8, ratio=1.0
    )
    assert plan.units_control_exact == pytest.approx(expected, rel=1e-9)
    assert plan.units_total == 4 * plan.units_control
    assert to_jsonable(plan)["n_variants"] == 4


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((0.0,), {"mde_abs": 0.01}, "baseline_ctr must lie strictly between 0 and 1"),
        ((0.05,), {}, "exactly one of mde_abs"),
        ((0.05,), {"mde_abs": 0.01, "mde_rel": 0.1}, "exactly one of mde_abs"),
        ((0.95,), {"mde_abs": 0.1}, "must lie in"),
        ((0.05,), {"mde_rel": 0.0}, "must not be zero"),
        ((0.05,), {"mde_abs": 0.01, "n_variants": 1}, "n_variants must be an integer"),
        ((0.05,), {"mde_abs": 0.01, "ratio": 0.0}, "ratio"),
        ((0.05,), {"mde_abs": 0.01, "alpha": 1.5}, "alpha must be between"),
        ((0.05,), {"mde_abs": 0.01, "power": 1.0}, "target power"),
    ],
)
def test_plan_rejects_bad_input(args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(AbTestInputError, match=message):
        plan_sample_size(*args, **kwargs)


def test_mde_when_the_control_ctr_is_already_one() -> None:
    mde, reason = minimum_detectable_effect(1.0, 100, 100)
    assert mde is None and reason is not None and "already 100%" in reason
