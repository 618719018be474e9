"""CUPED on a mean and on a ratio metric: pinned vectors and an independent computation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ttest_ind

from backend.abtest.cuped import cuped_means, cuped_ratios, variance_reduction
from backend.abtest.ratio import ratio_arm
from backend.abtest.welch import compare
from tests.unit.abtest.test_ratio import C_D, C_M, T_D, T_M

X_C = np.array([2, 5, 1, 8, 3, 0, 6, 4, 7, 2], dtype=float)
Y_C = np.array([3, 6, 1, 9, 5, 1, 7, 4, 9, 2], dtype=float)
X_T = np.array([3, 1, 6, 2, 7, 5, 0, 4, 8, 3], dtype=float)
Y_T = np.array([5, 2, 8, 4, 9, 6, 1, 6, 10, 4], dtype=float)


def test_vector_c_mean_metric() -> None:
    arms = cuped_means(Y_T, X_T, Y_C, X_C)
    assert arms.theta == pytest.approx(1.1103974308, abs=1e-10)
    assert arms.control.variance == pytest.approx(0.4637473154, abs=1e-10)
    absolute, relative = compare(
        arms.treatment,
        arms.control,
        names=("B", "A"),
        alpha=0.05,
        relative_variance=arms.relative_variance,
        baseline=arms.baseline,
    )
    assert absolute.estimate == pytest.approx(0.6889602569, abs=1e-10)
    assert absolute.se == pytest.approx(0.2551405745, abs=1e-10)
    assert absolute.dof == pytest.approx(15.2484132940, abs=1e-9)
    assert absolute.p_value == pytest.approx(0.0162683593, abs=1e-10)
    assert relative.estimate == pytest.approx(0.1465872887, abs=1e-10)
    assert relative.se == pytest.approx(0.0693968482, abs=1e-10)
    assert (relative.ci.low, relative.ci.high) == pytest.approx(
        (-0.0011189895, 0.2942935669), abs=1e-10
    )
    assert variance_reduction(absolute.se**2, 1.3274871834**2) == pytest.approx(
        0.9630598730, abs=1e-9
    )


def test_mean_cuped_equals_welch_on_adjusted_values() -> None:
    rng = np.random.default_rng(11)
    x_c, x_t = rng.gamma(2.0, 3.0, 900), rng.gamma(2.0, 3.0, 1000)
    y_c = 0.8 * x_c + rng.normal(0, 2, 900)
    y_t = 0.8 * x_t + 0.3 + rng.normal(0, 2, 1000)
    arms = cuped_means(y_t, x_t, y_c, x_c)
    # θ independently: the OLS slope of Y on X over both arms pooled.
    theta = np.polyfit(np.concatenate([x_t, x_c]), np.concatenate([y_t, y_c]), 1)[0]
    assert arms.theta == pytest.approx(theta, abs=1e-9)
    absolute, _ = compare(arms.treatment, arms.control, names=("B", "A"), alpha=0.05)
    reference = ttest_ind(y_t - theta * x_t, y_c - theta * x_c, equal_var=False)
    assert absolute.statistic == pytest.approx(reference.statistic, abs=1e-9)
    assert absolute.p_value == pytest.approx(reference.pvalue, abs=1e-9)
    low, high = reference.confidence_interval(0.95)
    assert (absolute.ci.low, absolute.ci.high) == pytest.approx((low, high), abs=1e-9)


C_DP = np.array([4, 6, 2, 7, 5, 5, 2, 8, 3, 4], dtype=float)
C_MP = np.array([1, 1, 0, 2, 1, 1, 0, 2, 1, 1], dtype=float)
T_DP = np.array([3, 3, 5, 6, 2, 8, 1, 6, 6, 5], dtype=float)
T_MP = np.array([1, 1, 1, 2, 0, 2, 0, 2, 2, 1], dtype=float)


def test_vector_d_ratio_metric() -> None:
    arms = cuped_ratios((T_M, T_D), (T_MP, T_DP), (C_M, C_D), (C_MP, C_DP))
    assert arms.theta == pytest.approx(0.7278919686, abs=1e-10)
    assert arms.control.mean == pytest.approx(0.0690353428, abs=1e-10)
    assert arms.control.variance == pytest.approx(0.0231302356, abs=1e-10)
    assert arms.treatment.variance == pytest.approx(0.0090971507, abs=1e-10)
    absolute, relative = compare(
        arms.treatment,
        arms.control,
        names=("B", "A"),
        alpha=0.05,
        relative_variance=arms.relative_variance,
        baseline=arms.baseline,
    )
    assert absolute.estimate == pytest.approx(0.0772856642, abs=1e-10)
    assert absolute.dof == pytest.approx(15.1310376644, abs=1e-9)
    assert absolute.p_value == pytest.approx(0.1933164366, abs=1e-10)
    assert relative.estimate == pytest.approx(0.3400569223, abs=1e-10)
    assert relative.se == pytest.approx(0.3168644912, abs=1e-10)
    plain, _ = compare(ratio_arm(T_M, T_D), ratio_arm(C_M, C_D), names=("B", "A"), alpha=0.05)
    assert plain.se is not None and absolute.se is not None
    assert variance_reduction(absolute.se**2, plain.se**2) == pytest.approx(0.1562476871, abs=1e-9)


def _gradient_variance(m, d, mp, dp, theta):  # type: ignore[no-untyped-def]
    # gbstats' form: ∇ᵀΛ∇ with Λ the 4×4 covariance of (M, D, M', D').
    cov = np.cov(np.vstack([m, d, mp, dp]), ddof=1)
    b = np.array([m.mean(), d.mean(), mp.mean(), dp.mean()])
    grad = np.array([1 / b[1], -b[0] / b[1] ** 2, -theta / b[3], theta * b[2] / b[3] ** 2])
    return float(grad @ cov @ grad)


def test_ratio_cuped_equals_matrix_form_on_seeded_data() -> None:
    rng = np.random.default_rng(3)
    arms_data = []
    for n, p in ((600, 0.06), (650, 0.07)):
        rate = rng.beta(1.0, (1 - p) / p, n)
        d, dp = 1 + rng.poisson(4, n), 1 + rng.poisson(4, n)
        arms_data.append((rng.binomial(d, rate), d, rng.binomial(dp, rate), dp))
    (mc, dc, mpc, dpc), (mt, dt, mpt, dpt) = [tuple(a.astype(float) for a in x) for x in arms_data]
    arms = cuped_ratios((mt, dt), (mpt, dpt), (mc, dc), (mpc, dpc))
    assert arms.theta > 0
    assert arms.control.variance == pytest.approx(
        _gradient_variance(mc, dc, mpc, dpc, arms.theta), rel=1e-9
    )
    assert arms.treatment.variance == pytest.approx(
        _gradient_variance(mt, dt, mpt, dpt, arms.theta), rel=1e-9
    )
    plain = ratio_arm(mc, dc)
    assert arms.control.variance < plain.variance


def test_no_pre_period_variation_means_no_adjustment() -> None:
    arms = cuped_means(Y_T, np.ones(10), Y_C, np.ones(10))
    assert arms.theta == 0.0
    assert variance_reduction(None, 1.0) is None
