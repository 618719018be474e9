"""Pure statistics of stage durations: percentiles, spread, box-plot figures and the trend.

No database here: these functions take plain sequences of seconds, so the same definitions
serve SQLite (where percentiles are computed here) and the checks of PostgreSQL's figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

PERCENTILE_METHOD = (
    "linear interpolation between closest ranks (Hyndman-Fan type 7, as PostgreSQL "
    "percentile_cont and numpy.percentile's default): h = (n - 1) * q, "
    "p_q = x[floor h] + (h - floor h) * (x[floor h + 1] - x[floor h]) over the sorted durations"
)


def percentile(ordered: Sequence[float], q: float) -> float:
    """The q-quantile (0 <= q <= 1) of an ascending sequence, by linear interpolation.

    With ``h = (n - 1) * q``, ``lo = floor(h)``: ``x[lo] + (h - lo) * (x[lo + 1] - x[lo])``
    (Hyndman-Fan type 7; PostgreSQL's ``percentile_cont``). One value is its own every quantile.
    Raises ``ValueError`` on an empty sequence or a q outside [0, 1].
    """
    if not ordered:
        raise ValueError("percentile of an empty sequence is undefined")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    h = (len(ordered) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (h - lo) * (ordered[hi] - ordered[lo])


def median(values: Sequence[float]) -> float:
    """The median (the 0.5 quantile of :func:`percentile`; the mean of the middle two if n even)."""
    return percentile(sorted(values), 0.5)


def sample_std(values: Sequence[float]) -> float | None:
    """Sample standard deviation ``sqrt(sum((x - mean)^2) / (n - 1))``; None when n < 2.

    Two passes (mean first), which stays accurate when the spread is tiny next to the mean.
    """
    n = len(values)
    if n < 2:
        return None
    mean = math.fsum(values) / n
    return math.sqrt(math.fsum((x - mean) ** 2 for x in values) / (n - 1))


@dataclass(frozen=True)
class Box:
    """Tukey box-plot figures in seconds: quartiles, whiskers at the most extreme data within
    1.5 IQR. Its fields are its JSON form in a report (the outliers are listed beside it)."""

    q1_s: float
    median_s: float
    q3_s: float
    whisker_low_s: float
    whisker_high_s: float


def tukey_fences(q1: float, q3: float) -> tuple[float, float]:
    """Tukey's fences ``(q1 - 1.5 * IQR, q3 + 1.5 * IQR)`` with ``IQR = q3 - q1``."""
    iqr = q3 - q1
    return q1 - 1.5 * iqr, q3 + 1.5 * iqr


def box(ordered: Sequence[float], q1: float, med: float, q3: float) -> Box:
    """Box-plot figures of ascending durations, given their quartiles.

    Whiskers end at the smallest and largest values inside Tukey's fences; values outside them
    are outliers. The quartiles are passed in so that they are the database's own
    figures where the database computed them.
    """
    low, high = tukey_fences(q1, q3)
    inside = [x for x in ordered if low <= x <= high]
    # Quartiles from a database may differ from the data in the last bit; keep the box closed.
    w_low = min(inside[0], q1) if inside else q1
    w_high = max(inside[-1], q3) if inside else q3
    return Box(q1, med, q3, w_low, w_high)


def ols_slope(values: Sequence[float]) -> float | None:
    """Least-squares slope of the values against their index 0..n-1 (seconds per run).

    ``sum((i - i_mean) * (x - x_mean)) / sum((i - i_mean)^2)``; None when n < 2.
    """
    n = len(values)
    if n < 2:
        return None
    i_mean = (n - 1) / 2
    x_mean = math.fsum(values) / n
    num = math.fsum((i - i_mean) * (x - x_mean) for i, x in enumerate(values))
    den = math.fsum((i - i_mean) ** 2 for i in range(n))
    return num / den


def chunk_bounds(n: int, parts: int) -> list[tuple[int, int]]:
    """Split range(n) into ``min(parts, n)`` consecutive [start, stop) chunks of near-equal size.

    The first ``n % k`` chunks get one extra element (as ``numpy.array_split``).
    """
    k = min(parts, n)
    if k <= 0:
        return []
    size, extra = divmod(n, k)
    bounds = []
    start = 0
    for i in range(k):
        stop = start + size + (1 if i < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds
