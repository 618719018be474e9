"""Regression flags: is a stage's recent median slower than its trailing median by a factor?"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from backend.reports.stats import median

RegressionStatus = Literal["ok", "regressed", "not_enough_data"]


@dataclass(frozen=True)
class RegressionCheck:
    """The outcome of :func:`check_regression` for one stage; its fields are its JSON form."""

    status: RegressionStatus
    flagged: bool
    recent_runs: int
    trailing_runs: int
    recent_median_s: float | None
    trailing_median_s: float | None
    ratio: float | None
    factor: float
    reason: str


def check_regression(
    durations: Sequence[float], *, recent: int, factor: float, min_trailing: int | None = None
) -> RegressionCheck:
    """Compare the median of the last ``recent`` durations with the median of those before.

    ``durations`` are in run order, oldest first. With ``R = median(last M)`` and
    ``T = median(the runs before them)``, the ratio is ``R / T`` and the stage is flagged when
    ``R > factor * T`` (strictly). The trailing window must hold at least ``min_trailing`` runs
    (default: ``recent``), otherwise the status is ``not_enough_data`` and nothing is flagged.
    When ``T == 0`` the ratio is undefined (None) and the stage is flagged if ``R > 0``.
    """
    need = recent if min_trailing is None else min_trailing
    n = len(durations)
    trailing_n = max(0, n - recent)
    if n < recent or trailing_n < need:
        return RegressionCheck(
            status="not_enough_data",
            flagged=False,
            recent_runs=min(n, recent),
            trailing_runs=trailing_n,
            recent_median_s=None,
            trailing_median_s=None,
            ratio=None,
            factor=factor,
            reason=f"needs at least {recent + need} runs ({recent} recent + {need} before); "
            f"has {n}",
        )
    recent_med = median(durations[n - recent :])
    trailing_med = median(durations[: n - recent])
    if trailing_med > 0:
        ratio: float | None = recent_med / trailing_med
        flagged = recent_med > factor * trailing_med
    else:
        ratio = None
        flagged = recent_med > 0
    if flagged:
        how = f"{ratio:.2f}x" if ratio is not None else "from zero"
        reason = (
            f"median of the last {recent} runs ({recent_med:.4g} s) is {how} the median of the "
            f"{trailing_n} runs before ({trailing_med:.4g} s), above the {factor}x threshold"
        )
    else:
        reason = f"within {factor}x of the median of the {trailing_n} runs before"
    return RegressionCheck(
        status="regressed" if flagged else "ok",
        flagged=flagged,
        recent_runs=recent,
        trailing_runs=trailing_n,
        recent_median_s=recent_med,
        trailing_median_s=trailing_med,
        ratio=ratio,
        factor=factor,
        reason=reason,
    )
