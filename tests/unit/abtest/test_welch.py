"""Welch's t-test on per-user values, against scipy and statsmodels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ttest_ind
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from backend.abtest.welch import ArmStat, Sequential, compare, sample_variance, welch_dof

C = np.array([0, 12.5, 3, 0, 7.25, 20, 1.5, 4])
T = np.array([5, 0, 15, 9.5, 2, 30, 0, 11, 6.5, 8])


def _arm(y: np.ndarray) -> ArmStat:
    return ArmStat(len(y), float(y.mean()), sample_variance(y))


def test_vector_b() -> None:
    absolute, relative = compare(_arm(T), _arm(C), names=("B", "A"), alpha=0.05)
    assert absolute.estimate == pytest.approx(2.66875, abs=1e-12)
    assert absolute.se == pytest.approx(3.7552218108, abs=1e-10)
    assert absolute.dof == pytest.approx(15.9999801142, abs=1e-9)
    assert absolute.p_value == pytest.approx(0.4875154113, abs=1e-10)
    assert (absolute.ci.low, absolute.ci.high) == pytest.approx(
        (-5.2919654206, 10.6294654206), abs=1e-10
    )
    assert relative.se == pytest.approx(0.7554702630, abs=1e-10)
    assert relative.p_value == pytest.approx(0.5662407177, abs=1e-10)
    seq_abs, _ = compare(_arm(T), _arm(C), names=("B", "A"), alpha=0.05, sequential=Sequential())
    assert seq_abs.ci.high - seq_abs.estimate == pytest.approx(55.2816878294, abs=1e-9)
    assert seq_abs.p_value == 1.0 and seq_abs.method == "sequential_cs"


def test_equals_scipy_and_statsmodels_on_seeded_data() -> None:
    rng = np.random.default_rng(5)
    y_c = rng.lognormal(1.0, 1.2, 700) * (rng.random(700) < 0.3)
    y_t = rng.lognormal(1.1, 1.2, 650) * (rng.random(650) < 0.3)
    absolute, _ = compare(_arm(y_t), _arm(y_c), names=("B", "A"), alpha=0.05)
    reference = ttest_ind(y_t, y_c, equal_var=False)
    assert absolute.statistic == pytest.approx(reference.statistic, abs=1e-9)
    assert absolute.p_value == pytest.approx(reference.pvalue, abs=1e-9)
    assert absolute.dof == pytest.approx(reference.df, abs=1e-9)
    low, high = CompareMeans(DescrStatsW(y_t), DescrStatsW(y_c)).tconfint_diff(
        alpha=0.05, usevar="unequal"
    )
    assert (absolute.ci.low, absolute.ci.high) == pytest.approx((low, high), abs=1e-9)
    assert welch_dof(sample_variance(y_t), 650, sample_variance(y_c), 700) == pytest.approx(
        reference.df, abs=1e-9
    )


def test_zero_control_mean_leaves_relative_undefined() -> None:
    absolute, relative = compare(_arm(T), ArmStat(8, 0.0, 2.0), names=("B", "A"), alpha=0.05)
    assert absolute.estimate is not None
    assert relative.estimate is None and relative.reason is not None
