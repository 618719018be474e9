"""Beta-Binomial comparison of two CTRs: P(treatment beats control) and expected loss.

Model: each variant's CTR ``p`` has the prior ``Beta(a₀, b₀)`` (default ``Beta(1, 1)``, uniform
on [0, 1]), clicks are Binomial(n, p), so the posterior is ``Beta(a₀ + x, b₀ + n - x)``. The two
variants are independent. With no impressions the posterior is the prior, so every quantity here
is defined for any valid counts.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import integrate
from scipy.special import betaln, logsumexp
from scipy.stats import beta as beta_dist

from backend.abtest.errors import AbTestInputError

#: Above this many terms the exact sum gives way to numerical integration (memory, not accuracy).
MAX_SUM_TERMS = 2_000_000
#: Monte Carlo draws are made in blocks of this size so memory stays bounded for any N.
MC_BLOCK = 1_000_000


@dataclass(frozen=True)
class BetaPrior:
    """A ``Beta(alpha, beta)`` prior on a CTR; both parameters positive and finite."""

    alpha: float = 1.0
    beta: float = 1.0

    def __post_init__(self) -> None:
        for name in ("alpha", "beta"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise AbTestInputError(f"prior {name} must be a number; got {value!r}")
            number = float(value)
            if not (math.isfinite(number) and number > 0):
                raise AbTestInputError(f"prior {name} must be positive and finite; got {value!r}")
            object.__setattr__(self, name, number)

    def posterior(self, clicks: int, impressions: int) -> tuple[float, float]:
        """``(a₀ + clicks, b₀ + impressions - clicks)``."""
        return self.alpha + clicks, self.beta + impressions - clicks


def _is_whole(value: float) -> bool:
    return float(value).is_integer()


def _miller_sum(a_x: float, b_x: float, a_y: float, b_y: float) -> float:
    # Evan Miller's closed form for P(Y > X), X ~ Beta(a_x, b_x), Y ~ Beta(a_y, b_y), integer a_y:
    #   Σ_{i=0}^{a_y-1} B(a_x+i, b_x+b_y) / ((b_y+i) B(1+i, b_y) B(a_x, b_x))
    # Summed in log space: the individual Beta functions under- and overflow long before the
    # terms themselves do.
    i = np.arange(int(a_y), dtype=float)
    log_terms = (
        betaln(a_x + i, b_x + b_y) - np.log(b_y + i) - betaln(1.0 + i, b_y) - betaln(a_x, b_x)
    )
    return float(np.exp(logsumexp(log_terms)))


def _integrate(a_x: float, b_x: float, a_y: float, b_y: float) -> float:
    # P(Y > X) = ∫ f_Y(t) F_X(t) dt over the range holding all but 2e-14 of Y's mass.
    low = float(beta_dist.ppf(1e-14, a_y, b_y))
    high = float(beta_dist.isf(1e-14, a_y, b_y))
    marks = sorted(
        {min(max(a / (a + b), low), high) for a, b in ((a_x, b_x), (a_y, b_y))} - {low, high}
    )
    value, _ = integrate.quad(
        lambda t: beta_dist.pdf(t, a_y, b_y) * beta_dist.cdf(t, a_x, b_x),
        low,
        high,
        points=marks or None,
        limit=500,
        epsabs=1e-13,
        epsrel=1e-11,
    )
    return float(value)


def prob_greater(a_x: float, b_x: float, a_y: float, b_y: float) -> tuple[float, str]:
    """``P(Y > X)`` for independent ``X ~ Beta(a_x, b_x)`` and ``Y ~ Beta(a_y, b_y)``, exactly.

    Uses Evan Miller's finite sum (see ``_miller_sum``), which needs an integer ``a_y``. Through
    ``P(Y > X) = 1 - P(X > Y)`` and the mirror ``1 - p ~ Beta(b, a)`` any one integer parameter
    among the four is enough, and the shortest of the available sums is used (its length is that
    parameter). Returns ``(probability, method)``: ``"exact-sum"``, or ``"numerical-integration"``
    of ``∫ f_Y F_X`` when no parameter is a whole number (e.g. a Jeffreys prior) or every sum would
    exceed ``MAX_SUM_TERMS`` terms. Ties have probability zero. The result is clipped to [0, 1].
    """
    candidates: list[tuple[float, Any]] = []
    if _is_whole(a_y):
        candidates.append((a_y, lambda: _miller_sum(a_x, b_x, a_y, b_y)))
    if _is_whole(a_x):
        candidates.append((a_x, lambda: 1.0 - _miller_sum(a_y, b_y, a_x, b_x)))
    if _is_whole(b_x):
        candidates.append((b_x, lambda: _miller_sum(b_y, a_y, b_x, a_x)))
    if _is_whole(b_y):
        candidates.append((b_y, lambda: 1.0 - _miller_sum(b_x, a_x, b_y, a_y)))
    usable = [c for c in candidates if c[0] <= MAX_SUM_TERMS]
    if usable:
        value, method = min(usable, key=lambda c: c[0])[1](), "exact-sum"
    else:
        value, method = _integrate(a_x, b_x, a_y, b_y), "numerical-integration"
    return min(max(value, 0.0), 1.0), method


def expected_loss(a_x: float, b_x: float, a_y: float, b_y: float) -> float:
    """``E[max(X - Y, 0)]``: the CTR expected to be given up by choosing Y over X.

    Closed form from ``E[X·1{X>Y}] = E[X] · P(X⁺ > Y)`` with ``X⁺ ~ Beta(a_x + 1, b_x)``::

        E[max(X - Y, 0)] = a_x/(a_x+b_x) · P(X⁺ > Y) - a_y/(a_y+b_y) · P(X > Y⁺)

    Both probabilities come from :func:`prob_greater`; the difference is clipped at 0 against
    rounding.
    """
    mean_x = a_x / (a_x + b_x)
    mean_y = a_y / (a_y + b_y)
    p_xplus_beats_y, _ = prob_greater(a_y, b_y, a_x + 1.0, b_x)
    p_x_beats_yplus, _ = prob_greater(a_y + 1.0, b_y, a_x, b_x)
    return max(mean_x * p_xplus_beats_y - mean_y * p_x_beats_yplus, 0.0)


@dataclass(frozen=True)
class MonteCarloEstimate:
    """The same quantities estimated from ``samples`` posterior draws of each variant."""

    samples: int
    seed: int | None
    prob_treatment_beats_control: float
    standard_error: float
    expected_loss_treatment: float
    expected_loss_control: float


def monte_carlo(
    posterior_t: tuple[float, float],
    posterior_c: tuple[float, float],
    samples: int,
    rng: np.random.Generator,
    seed: int | None = None,
) -> MonteCarloEstimate:
    """Estimate P(p_t > p_c) and both expected losses from ``samples`` draws per variant.

    ``P ≈ mean(t_i > c_i)`` with standard error ``sqrt(P(1-P)/N)``; losses
    ``≈ mean(max(c_i - t_i, 0))`` (choosing treatment) and ``mean(max(t_i - c_i, 0))``. Draws
    come only from ``rng``; ``seed`` is recorded for the report.
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise AbTestInputError(f"mc_samples must be a positive integer; got {samples!r}")
    wins = 0
    loss_t = 0.0
    loss_c = 0.0
    remaining = samples
    while remaining:
        block = min(remaining, MC_BLOCK)
        t = rng.beta(posterior_t[0], posterior_t[1], size=block)
        c = rng.beta(posterior_c[0], posterior_c[1], size=block)
        diff = t - c
        wins += int(np.count_nonzero(diff > 0))
        loss_t += float(np.maximum(-diff, 0.0).sum())
        loss_c += float(np.maximum(diff, 0.0).sum())
        remaining -= block
    prob = wins / samples
    return MonteCarloEstimate(
        samples=samples,
        seed=seed,
        prob_treatment_beats_control=prob,
        standard_error=math.sqrt(prob * (1.0 - prob) / samples),
        expected_loss_treatment=loss_t / samples,
        expected_loss_control=loss_c / samples,
    )


@dataclass(frozen=True)
class BetaPosterior:
    """The posterior ``Beta(alpha, beta)`` of one variant's CTR."""

    alpha: float
    beta: float


@dataclass(frozen=True)
class BayesResult:
    """Posterior comparison of a treatment with the control under one prior."""

    prior: BetaPrior
    posterior_treatment: BetaPosterior
    posterior_control: BetaPosterior
    prob_treatment_beats_control: float
    expected_loss_treatment: float
    expected_loss_control: float
    method: str
    monte_carlo: MonteCarloEstimate | None = None


def bayes_compare(
    clicks_t: int,
    n_t: int,
    clicks_c: int,
    n_c: int,
    prior: BetaPrior | None = None,
    *,
    mc_samples: int = 0,
    rng: np.random.Generator | None = None,
    seed: int | None = None,
) -> BayesResult:
    """Exact P(p_t > p_c) and expected losses, plus a Monte Carlo check when ``mc_samples > 0``.

    Expected loss of choosing the treatment is ``E[max(p_c - p_t, 0)]`` and of choosing the
    control ``E[max(p_t - p_c, 0)]``: the CTR given up if that choice is wrong, in CTR units.
    Monte Carlo uses ``rng`` if given, else ``numpy.random.default_rng(seed)``.
    """
    prior = prior or BetaPrior()
    a_t, b_t = prior.posterior(clicks_t, n_t)
    a_c, b_c = prior.posterior(clicks_c, n_c)
    prob, method = prob_greater(a_c, b_c, a_t, b_t)
    estimate = None
    if mc_samples:
        generator = rng if rng is not None else np.random.default_rng(seed)
        estimate = monte_carlo((a_t, b_t), (a_c, b_c), mc_samples, generator, seed)
    return BayesResult(
        prior=prior,
        posterior_treatment=BetaPosterior(a_t, b_t),
        posterior_control=BetaPosterior(a_c, b_c),
        prob_treatment_beats_control=prob,
        expected_loss_treatment=expected_loss(a_c, b_c, a_t, b_t),
        expected_loss_control=expected_loss(a_t, b_t, a_c, b_c),
        method=method,
        monte_carlo=estimate,
    )
