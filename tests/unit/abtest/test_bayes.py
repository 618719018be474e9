"""Beta-Binomial probabilities and losses against numerical integration and Monte Carlo."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import beta

from backend.abtest.bayes import (
    BetaPosterior,
    BetaPrior,
    bayes_compare,
    expected_loss,
    prob_greater,
)
from backend.abtest.errors import AbTestInputError

POSTERIORS = [
    (11.0, 91.0, 21.0, 81.0),
    (1.0, 1.0, 1.0, 1.0),
    (201.0, 9801.0, 231.0, 9771.0),
    (3.0, 500.0, 1.0, 502.0),
    (40.0, 12.0, 35.0, 18.0),
]


def _quad_prob(a_x: float, b_x: float, a_y: float, b_y: float) -> float:
    value, _ = integrate.quad(
        lambda t: beta.pdf(t, a_y, b_y) * beta.cdf(t, a_x, b_x),
        0,
        1,
        limit=500,
        points=[a_x / (a_x + b_x), a_y / (a_y + b_y)],
        epsabs=1e-14,
        epsrel=1e-12,
    )
    return value


def _quad_loss(a_x: float, b_x: float, a_y: float, b_y: float) -> float:
    # E[max(X - Y, 0)] = ∫ f_Y(y) ∫_y^1 (x - y) f_X(x) dx dy, inner part in closed form.
    mean_x = a_x / (a_x + b_x)

    def inner(y: float) -> float:
        return mean_x * beta.sf(y, a_x + 1, b_x) - y * beta.sf(y, a_x, b_x)

    value, _ = integrate.quad(
        lambda y: beta.pdf(y, a_y, b_y) * inner(y),
        0,
        1,
        limit=500,
        points=[mean_x, a_y / (a_y + b_y)],
        epsabs=1e-14,
        epsrel=1e-12,
    )
    return value


@pytest.mark.parametrize("params", POSTERIORS)
def test_exact_probability_matches_numerical_integration(
    params: tuple[float, float, float, float],
) -> None:
    prob, method = prob_greater(*params)
    assert method == "exact-sum"
    assert prob == pytest.approx(_quad_prob(*params), abs=1e-9)


@pytest.mark.parametrize("params", POSTERIORS)
def test_exact_expected_loss_matches_numerical_integration(
    params: tuple[float, float, float, float],
) -> None:
    assert expected_loss(*params) == pytest.approx(_quad_loss(*params), abs=1e-9)


def test_probabilities_of_both_orders_sum_to_one() -> None:
    p1, _ = prob_greater(11, 91, 21, 81)
    p2, _ = prob_greater(21, 81, 11, 91)
    assert p1 + p2 == pytest.approx(1.0, abs=1e-12)
    assert prob_greater(5, 7, 5, 7)[0] == pytest.approx(0.5, abs=1e-12)


def test_non_integer_prior_falls_back_to_integration() -> None:
    prob, method = prob_greater(10.5, 90.5, 20.5, 80.5)
    assert method == "numerical-integration"
    assert prob == pytest.approx(_quad_prob(10.5, 90.5, 20.5, 80.5), abs=1e-9)
    # One whole parameter is enough for the exact sum.
    assert prob_greater(10.5, 90.0, 20.5, 80.0)[1] == "exact-sum"


def test_large_counts_stay_stable() -> None:
    prob, _ = prob_greater(50_001, 949_999, 51_001, 948_999)
    assert 0.999 < prob <= 1.0


@pytest.mark.parametrize("prior", [BetaPrior(), BetaPrior(0.5, 0.5), BetaPrior(2, 30)])
def test_exact_agrees_with_a_million_monte_carlo_draws(prior: BetaPrior) -> None:
    result = bayes_compare(230, 10_000, 200, 10_000, prior, mc_samples=1_000_000, seed=7)
    mc = result.monte_carlo
    assert mc is not None and mc.samples == 1_000_000 and mc.seed == 7
    # Five standard errors of the estimate: a false alarm about once in three million runs.
    assert abs(result.prob_treatment_beats_control - mc.prob_treatment_beats_control) < max(
        5 * mc.standard_error, 1e-4
    )
    assert mc.expected_loss_treatment == pytest.approx(result.expected_loss_treatment, rel=0.05)
    assert mc.expected_loss_control == pytest.approx(result.expected_loss_control, rel=0.02)


def test_monte_carlo_is_reproducible_from_the_seed() -> None:
    first = bayes_compare(23, 1000, 20, 1000, mc_samples=1000, seed=3).monte_carlo
    again = bayes_compare(23, 1000, 20, 1000, mc_samples=1000, seed=3).monte_carlo
    rng_based = bayes_compare(
        23, 1000, 20, 1000, mc_samples=1000, rng=np.random.default_rng(3)
    ).monte_carlo
    assert first == again
    assert first is not None and rng_based is not None
    assert first.prob_treatment_beats_control == rng_based.prob_treatment_beats_control


def test_no_data_gives_the_prior_answer() -> None:
    result = bayes_compare(0, 0, 0, 0)
    assert result.prob_treatment_beats_control == pytest.approx(0.5)
    assert result.expected_loss_treatment == pytest.approx(1 / 6)
    assert result.posterior_treatment == BetaPosterior(1.0, 1.0)


@pytest.mark.parametrize("bad", [(0, 1), (1, -2), (float("inf"), 1), (True, 1), ("1", 1)])
def test_bad_prior(bad: tuple) -> None:
    with pytest.raises(AbTestInputError, match="prior"):
        BetaPrior(*bad)


def test_bad_sample_count() -> None:
    with pytest.raises(AbTestInputError, match="mc_samples"):
        bayes_compare(1, 10, 1, 10, mc_samples=-5)
