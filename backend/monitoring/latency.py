"""The latency histogram of the live monitor: log-spaced bins and quantiles read from them.

20 bins per decade from 1 ms to 1 h, so a quantile is exact to within one bin (about 12 %); a
quantile is reported as the upper edge of its bin, i.e. conservatively. Pure, no I/O.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from typing import Final

#: Upper edges (seconds) of the latency histogram bins; bin 0 is ``<= 0`` (clock skew ahead).
LATENCY_EDGES_S: Final[tuple[float, ...]] = (
    0.0,
    *(round(10 ** (k / 20) * 0.001, 9) for k in range(0, 132)),
)


def latency_bin(seconds: float) -> int:
    """Index of the histogram bin of a latency: the first bin whose upper edge is >= it.

    Latencies above the last edge go to the last bin (reported as that edge).
    """
    return min(bisect_left(LATENCY_EDGES_S, seconds), len(LATENCY_EDGES_S) - 1)


def histogram_quantile(counts: Mapping[int, int], q: float) -> float | None:
    """The ``q``-quantile (0 < q <= 1) of a sparse latency histogram ``{bin: count}``.

    Returns the upper edge of the first bin where the cumulative count reaches ``q * total``
    (nearest-rank definition, so p99 of 100 samples is the 99th smallest); ``None`` when the
    histogram is empty.
    """
    if not 0 < q <= 1:
        raise ValueError(f"a quantile must be in (0, 1], got {q}")
    total = sum(counts.values())
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for b in sorted(counts):
        seen += counts[b]
        if seen >= rank:
            return LATENCY_EDGES_S[b]
    return LATENCY_EDGES_S[max(counts)]
