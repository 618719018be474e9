"""CTR as clicks / impressions per user: delta method against pinned vectors and statsmodels,
and interval coverage on simulated traffic."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy.stats import t as t_dist

from backend.abtest.ratio import delta_variance, linearised, ratio_arm
from backend.abtest.welch import ArmStat, compare

# Data set A of the design note: per-user clicks M and impressions D.
C_D = np.array([3, 5, 2, 8, 4, 6, 1, 7, 3, 5])
C_M = np.array([1, 0, 1, 2, 0, 1, 0, 3, 1, 1])
T_D = np.array([4, 2, 6, 5, 3, 9, 2, 5, 7, 4])
T_M = np.array([2, 1, 2, 1, 1, 3, 0, 2, 3, 1])


def test_vector_a() -> None:
    c, t = ratio_arm(C_M, C_D), ratio_arm(T_M, T_D)
    assert c.mean == pytest.approx(0.2272727273, abs=1e-10)
    assert c.variance == pytest.approx(0.0277711374, abs=1e-10)
    assert t.variance == pytest.approx(0.0104241787, abs=1e-10)
    absolute, relative = compare(t, c, names=("B", "A"), alpha=0.05)
    assert absolute.estimate == pytest.approx(0.1131528046, abs=1e-10)
    assert absolute.se == pytest.approx(0.0618023592, abs=1e-10)
    assert absolute.dof == pytest.approx(14.9220887626, abs=1e-9)
    assert absolute.p_value == pytest.approx(0.0871592899, abs=1e-10)
    assert (absolute.ci.low, absolute.ci.high) == pytest.approx(
        (-0.0186357349, 0.2449413442), abs=1e-10
    )
    assert relative.estimate == pytest.approx(0.4978723404, abs=1e-10)
    assert relative.se == pytest.approx(0.3752457160, abs=1e-10)
    assert relative.p_value == pytest.approx(0.2045248449, abs=1e-10)
    assert (relative.ci.low, relative.ci.high) == pytest.approx(
        (-0.3023088418, 1.2980535227), abs=1e-10
    )


def _wls_hc1_se(m: np.ndarray, d: np.ndarray) -> float:
    # The ratio estimator is the WLS slope of M on D with weights 1/D; HC1 is the delta method.
    fit = sm.WLS(m.astype(float), d.astype(float), weights=1.0 / d).fit(cov_type="HC1")
    return float(fit.bse[0])


def test_matches_statsmodels_on_seeded_data() -> None:
    rng = np.random.default_rng(17)
    arms = []
    for n, base in ((800, 0.05), (900, 0.078)):
        d = 1 + rng.poisson(4, n)
        m = rng.binomial(d, rng.beta(base * 10, (1 - base) * 10, n))
        arms.append((m, d))
    (mc, dc), (mt, dt) = arms
    c, t = ratio_arm(mc, dc), ratio_arm(mt, dt)
    se_c, se_t = _wls_hc1_se(mc, dc), _wls_hc1_se(mt, dt)
    assert np.sqrt(c.variance / c.n) == pytest.approx(se_c, abs=1e-12)
    assert np.sqrt(t.variance / t.n) == pytest.approx(se_t, abs=1e-12)
    # Independent CI: the statsmodels SEs, Welch ν from them, scipy's t quantile.
    nu = (se_t**2 + se_c**2) ** 2 / (se_t**4 / (t.n - 1) + se_c**4 / (c.n - 1))
    diff = mt.sum() / dt.sum() - mc.sum() / dc.sum()
    half = t_dist.isf(0.025, nu) * np.hypot(se_t, se_c)
    absolute, _ = compare(t, c, names=("B", "A"), alpha=0.05)
    assert absolute.dof == pytest.approx(nu, abs=1e-9)
    assert (absolute.ci.low, absolute.ci.high) == pytest.approx(
        (diff - half, diff + half), abs=1e-9
    )
    assert absolute.p_value == pytest.approx(
        2 * t_dist.sf(abs(diff) / np.hypot(se_t, se_c), nu), abs=1e-9
    )


def test_linearised_form_equals_moment_form() -> None:
    e = linearised(C_M, C_D)
    moments = delta_variance(
        C_M.mean(),
        C_D.mean(),
        np.var(C_M, ddof=1),
        np.var(C_D, ddof=1),
        np.cov(C_M, C_D, ddof=1)[0, 1],
    )
    assert np.var(e, ddof=1) == pytest.approx(moments, abs=1e-14)


@pytest.mark.parametrize(
    ("m", "d", "reason"),
    [
        ([1, 2, 3], [2, 4, 6], "zero variance in A"),  # M ∝ D
        ([1], [3], "fewer than 2 users in A"),
        ([0, 0, 0, 0], [2, 3, 1, 4], "zero variance in A"),
        ([0, 0], [0, 0], "A has no value"),
    ],
)
def test_edge_cases_have_reasons(m: list[int], d: list[int], reason: str) -> None:
    t = ratio_arm(np.array([1, 0, 2]), np.array([3, 2, 4]))
    absolute, relative = compare(
        t, ratio_arm(np.array(m), np.array(d)), names=("B", "A"), alpha=0.05
    )
    assert absolute.estimate is None and absolute.ci.low is None
    assert absolute.reason is not None and absolute.reason.startswith(reason)
    assert relative.p_value is None


def test_edge_valid_small_arms() -> None:
    c = ratio_arm(np.array([1, 0, 2, 1]), np.array([3, 2, 4, 2]))
    t = ratio_arm(np.array([2, 1, 2, 0]), np.array([3, 2, 4, 2]))
    absolute, relative = compare(t, c, names=("B", "A"), alpha=0.05)
    assert absolute.estimate == pytest.approx(0.0909090909, abs=1e-10)
    assert absolute.p_value == pytest.approx(0.5796182885, abs=1e-10)
    assert relative.estimate == pytest.approx(0.25, abs=1e-12)
    assert relative.p_value == pytest.approx(0.6171432993, abs=1e-10)
    assert compare(t, ArmStat(4, 0.0, 0.1), names=("B", "A"), alpha=0.05)[1].estimate is None


def _moments(m: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, ...]:
    # Per-run (row) means, variances and covariance with n - 1.
    mc, dc = m - m.mean(1, keepdims=True), d - d.mean(1, keepdims=True)
    n = m.shape[1]
    return (
        m.mean(1),
        d.mean(1),
        (mc * mc).sum(1) / (n - 1),
        (dc * dc).sum(1) / (n - 1),
        (mc * dc).sum(1) / (n - 1),
    )


def test_interval_coverage_with_several_impressions_per_user() -> None:
    """Users see 1 + Poisson(5) impressions and click with their own rate ~ Beta: the delta
    method covers the true difference in 95% ± 1.5% of runs; per-impression intervals do not."""
    rng = np.random.default_rng(2024)
    runs, n = 2000, 400
    true_rates = (0.05, 0.078)
    arms = []
    for p in true_rates:
        d = 1 + rng.poisson(5, (runs, n))
        m = rng.binomial(d, rng.beta(0.6, 0.6 * (1 - p) / p, (runs, n)))
        arms.append((m.astype(float), d.astype(float)))
    true_diff = true_rates[1] - true_rates[0]
    (mc, dc), (mt, dt) = arms
    mom_c, mom_t = _moments(mc, dc), _moments(mt, dt)
    var_c, var_t = delta_variance(*mom_c), delta_variance(*mom_t)
    r_c, r_t = mc.sum(1) / dc.sum(1), mt.sum(1) / dt.sum(1)
    se = np.sqrt(var_c / n + var_t / n)
    nu = (var_c / n + var_t / n) ** 2 / ((var_c / n) ** 2 / (n - 1) + (var_t / n) ** 2 / (n - 1))
    half = t_dist.isf(0.025, nu) * se
    covered = np.abs(r_t - r_c - true_diff) <= half
    naive_se = np.sqrt(r_c * (1 - r_c) / dc.sum(1) + r_t * (1 - r_t) / dt.sum(1))
    naive_covered = np.abs(r_t - r_c - true_diff) <= 1.959963984540054 * naive_se
    coverage, naive = covered.mean(), naive_covered.mean()
    print(f"coverage: delta method {coverage:.4f}, per impression {naive:.4f}")
    assert abs(coverage - 0.95) <= 0.015
    assert naive < 0.95 - 0.05, f"per-impression coverage {naive:.3f} should fall short"
    # Spot-check the vectorised path against the module on one run.
    absolute, _ = compare(
        ratio_arm(mt[0], dt[0]), ratio_arm(mc[0], dc[0]), names=("B", "A"), alpha=0.05
    )
    assert absolute.ci.high == pytest.approx(r_t[0] - r_c[0] + half[0], abs=1e-12)
