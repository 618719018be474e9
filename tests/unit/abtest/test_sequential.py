"""Confidence sequences: pinned vectors, and seeded simulations that peek after every batch."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import t as t_dist

from backend.abtest import sequential as seq
from backend.abtest.errors import AbTestInputError
from backend.abtest.guardrails import check_harm
from backend.abtest.ratio import delta_variance, ratio_arm
from backend.abtest.welch import Sequential, compare, welch_dof
from tests.unit.abtest.test_ratio import C_D, C_M, T_D, T_M

ALPHA = 0.05


def test_rho() -> None:
    assert seq.sequential_rho(ALPHA, 5000) == pytest.approx(0.0398400668, abs=1e-10)
    assert seq.sequential_rho(ALPHA, 5000, two_sided=False) == pytest.approx(
        0.0355776885, abs=1e-10
    )


@pytest.mark.parametrize(
    ("est", "se", "n", "hw2", "p2", "hw1", "p1"),
    [
        (0.01, 0.004, 10000, 0.0122459089, 0.2171974575, 0.0112053229, 1.0),
        (-0.02, 0.01, 2000, 0.0312377909, 0.4464608331, 0.0288601396, 0.2941749558),
        (0.5, 0.2, 100, 1.3388777234, 0.7015897580, 1.3213776098, 1.0),
    ],
)
def test_vector_e(
    est: float, se: float, n: int, hw2: float, p2: float, hw1: float, p1: float
) -> None:
    assert seq.halfwidth(se, n, ALPHA, 5000) == pytest.approx(hw2, abs=1e-10)
    assert seq.p_value(est, se, n, ALPHA, 5000) == pytest.approx(p2, abs=1e-10)
    assert seq.halfwidth_one_sided(se, n, ALPHA, 5000) == pytest.approx(hw1, abs=1e-10)
    assert seq.p_value_one_sided(est, se, n, ALPHA, 5000, direction=-1) == pytest.approx(
        p1, abs=1e-10
    )


def test_vector_a_sequential_and_guardrail() -> None:
    t, c = ratio_arm(T_M, T_D), ratio_arm(C_M, C_D)
    absolute, relative = compare(t, c, names=("B", "A"), alpha=ALPHA, sequential=Sequential())
    assert absolute.ci.high - absolute.estimate == pytest.approx(0.8646737742, abs=1e-10)
    assert absolute.p_value == pytest.approx(0.9646949118, abs=1e-10)
    assert relative.ci.high - relative.estimate == pytest.approx(5.2500443927, abs=1e-9)
    assert relative.p_value == pytest.approx(0.9886094744, abs=1e-10)
    fixed, _ = compare(t, c, names=("B", "A"), alpha=ALPHA)
    check = check_harm(fixed, metric="ctr", label="CTR", treatment="B", control="A", alpha=ALPHA)
    assert check.p_harm == pytest.approx(0.9564203550, abs=1e-10)
    assert check.bound == pytest.approx(0.2215326113, abs=1e-10)
    assert check.harmed is False


def test_bad_settings_are_refused() -> None:
    with pytest.raises(AbTestInputError, match=r"between 0 and 0\.5"):
        seq.check_sequential(0.6, 5000, one_sided=True)
    with pytest.raises(AbTestInputError, match="n_star"):
        seq.check_sequential(0.05, 0)


def _simulate(
    rng: np.random.Generator, runs: int, users: int, batch: int, lift: float
) -> dict[str, np.ndarray]:
    """Per-look ratio statistics of ``runs`` experiments with ``users`` per arm: impressions
    1 + Poisson(3), user CTR ~ Beta(1, 9) (scaled by 1 + lift in the treatment)."""
    looks = users // batch
    out: dict[str, np.ndarray] = {}
    for arm, scale in (("c", 1.0), ("t", 1.0 + lift)):
        d = 1 + rng.poisson(3, (runs, users))
        m = rng.binomial(d, np.minimum(rng.beta(1, 9, (runs, users)) * scale, 1.0))
        sums = {}
        for name, values in (("m", m), ("d", d), ("mm", m * m), ("dd", d * d), ("md", m * d)):
            per_batch = values.reshape(runs, looks, batch).sum(2).astype(float)
            sums[name] = np.cumsum(per_batch, axis=1)
        n = batch * np.arange(1, looks + 1, dtype=float)
        var_m = (sums["mm"] - sums["m"] ** 2 / n) / (n - 1)
        var_d = (sums["dd"] - sums["d"] ** 2 / n) / (n - 1)
        cov = (sums["md"] - sums["m"] * sums["d"] / n) / (n - 1)
        out["r" + arm] = sums["m"] / sums["d"]
        out["v" + arm] = delta_variance(sums["m"] / n, sums["d"] / n, var_m, var_d, cov)
        out["n"] = n
    return out


def _ever_significant(sim: dict[str, np.ndarray], n_star: float) -> dict[str, np.ndarray]:
    n = sim["n"]
    diff = sim["rt"] - sim["rc"]
    var = sim["vt"] / n + sim["vc"] / n
    se = np.sqrt(var)
    p_seq = seq.p_value(diff, se, 2 * n, ALPHA, n_star)
    harm = seq.p_value_one_sided(diff, se, 2 * n, ALPHA, n_star, direction=-1)
    dof = welch_dof(sim["vt"], n, sim["vc"], n)
    p_fixed = 2 * t_dist.sf(np.abs(diff / se), dof)
    hw = seq.halfwidth(se, 2 * n, ALPHA, n_star)
    return {
        "seq": (p_seq < ALPHA).any(1),
        "seq_cs_excludes_0": (np.abs(diff) > hw).any(1),
        "harm": (harm < ALPHA).any(1),
        "fixed": (p_fixed < ALPHA).any(1),
        "fixed_end": p_fixed[:, -1] < ALPHA,
        "seq_end": p_seq[:, -1] < ALPHA,
    }


def test_peeking_after_every_batch_keeps_the_false_positive_rate() -> None:
    """2,000 seeded A/A experiments, 1,000 users per arm, a look after every 20 users."""
    rng = np.random.default_rng(20251130)
    flags = _ever_significant(_simulate(rng, 2000, 1000, 20, 0.0), n_star=2000)
    rates = {k: float(v.mean()) for k, v in flags.items()}
    print("A/A false-positive rates over 50 looks:", rates)
    assert rates["seq"] <= ALPHA + 0.01
    assert rates["harm"] <= ALPHA + 0.01
    assert np.array_equal(flags["seq"], flags["seq_cs_excludes_0"])
    # The harness detects peeking: the fixed-horizon t-test, looked at 50 times, is inflated.
    assert rates["fixed"] > 0.15


def test_power_with_a_true_effect_is_reported() -> None:
    """A true +25% relative CTR lift: the power of the sequential test at the end and ever,
    next to the fixed-horizon test's single final look (the price of always-validity)."""
    rng = np.random.default_rng(7)
    flags = _ever_significant(_simulate(rng, 1000, 1000, 20, 0.25), n_star=2000)
    power = {k: float(v.mean()) for k, v in flags.items() if k != "harm"}
    print("power with a +25% lift:", power)
    assert power["seq"] > 0.5  # it detects real effects, not only nothing
    assert power["seq_end"] <= power["fixed_end"]
