"""Sample ratio mismatch: were units split across variants as the experiment was configured?

A mismatch means assignment or logging is broken (a variant drops users, a bot hits one arm,
events are lost), and then no comparison of CTRs can be trusted, however significant it looks.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy.stats import chisquare

from backend.abtest.errors import AbTestInputError

#: SRM is flagged below this p-value: strict, because the check runs on every experiment and a
#: false alarm stops a healthy one.
DEFAULT_SRM_ALPHA = 0.001


@dataclass(frozen=True)
class SrmResult:
    """Chi-square goodness of fit of the observed units per variant to the expected split."""

    observed: dict[str, int]
    expected_split: dict[str, float]
    expected_units: dict[str, float]
    statistic: float | None
    p_value: float | None
    threshold: float
    mismatch: bool | None
    reason: str | None = None


def normalise_split(
    variants: Sequence[str], expected_split: Mapping[str, float] | None
) -> dict[str, float]:
    """Shares per variant summing to 1: equal when ``expected_split`` is None, else its weights
    scaled to sum 1 (so ``{"A": 50, "B": 50}`` and ``{"A": 0.5, "B": 0.5}`` are the same).

    Raises when the split names a variant that has no counts, misses one that has, or has a
    weight that is not a positive finite number.
    """
    if expected_split is None:
        return {v: 1.0 / len(variants) for v in variants}
    missing = [v for v in variants if v not in expected_split]
    extra = [v for v in expected_split if v not in variants]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if extra:
            parts.append(f"has no counts for {', '.join(map(str, extra))}")
        raise AbTestInputError(
            f"expected_split must give one weight per variant ({', '.join(variants)}); it "
            + " and ".join(parts)
        )
    weights: dict[str, float] = {}
    for v in variants:
        w = expected_split[v]
        valid = isinstance(w, numbers.Real) and not isinstance(w, bool)
        if not valid or not math.isfinite(w) or w <= 0:
            raise AbTestInputError(
                f"expected_split weight of variant {v} must be a positive number; got {w!r}"
            )
        weights[v] = float(w)
    total = sum(weights.values())
    return {v: w / total for v, w in weights.items()}


def srm_check(
    units: Mapping[str, int],
    expected_split: Mapping[str, float] | None = None,
    threshold: float = DEFAULT_SRM_ALPHA,
) -> SrmResult:
    """Pearson's goodness-of-fit test of units per variant against the configured split.

    ``χ² = Σ_v (O_v - E_v)² / E_v`` with ``E_v = share_v · Σ O``, ``k - 1`` degrees of freedom,
    computed by ``scipy.stats.chisquare``; ``mismatch = p < threshold`` (default 0.001).
    Undefined (``mismatch = None`` with a reason) with fewer than two variants or no units.
    """
    if not 0.0 < threshold < 1.0:
        raise AbTestInputError(f"SRM threshold must lie between 0 and 1; got {threshold!r}")
    names = list(units)
    shares = normalise_split(names, expected_split)
    total = sum(units.values())
    expected = {v: shares[v] * total for v in names}
    observed = {v: int(units[v]) for v in names}
    if len(names) < 2:
        reason = "only one variant, so there is no split to check"
    elif total == 0:
        reason = "no units in any variant"
    else:
        result = chisquare([observed[v] for v in names], [expected[v] for v in names])
        p = float(result.pvalue)
        return SrmResult(
            observed, shares, expected, float(result.statistic), p, threshold, p < threshold
        )
    return SrmResult(observed, shares, expected, None, None, threshold, None, reason)
