"""Which variant of an experiment a user sees: the one assignment every part of Recflow uses.

Everything that puts a user in a variant calls it (today the traffic simulator and the CLI's
``produce``), so a user falls in the same variant whichever part of Recflow assigned them. The
rule, stable across processes, machines and Python versions (no ``hash()``, no seed, no state):

1. ``h`` = the first 8 bytes, big-endian, of SHA-256 of the UTF-8 text ``"<experiment>:<user>"``
   (ids of the contract hold no ``:``, so the text names one pair);
2. ``point`` = the top 53 bits of ``h`` as a fraction in [0, 1) (exact in a double);
3. the variants, sorted by name (so the order they are given in does not matter), split [0, 1)
   into consecutive intervals proportional to their weights (equal by default); the user's
   variant is the one whose interval holds ``point``.

A variant of weight 0 gets nobody. Changing the weights moves only the users whose point crosses
a boundary that moved; adding a variant reshuffles, since the intervals follow name order.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

_SCALE = 2.0**-53


def assignment_point(experiment: str, user: str) -> float:
    """The user's fixed position in [0, 1) for ``experiment`` (steps 1-2 of the module doc)."""
    digest = hashlib.sha256(f"{experiment}:{user}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) * _SCALE


def assign_variant(
    experiment: str,
    user: str,
    variants: Sequence[str],
    weights: Sequence[float] | None = None,
) -> str:
    """The variant of ``experiment`` that ``user`` sees (the rule in the module docstring).

    ``weights`` (same length as ``variants``, non-negative, not all 0) are the traffic shares,
    in any unit (``[90, 10]`` is ``[0.9, 0.1]``); ``None`` splits evenly. Deterministic and
    cache-free: a few microseconds a call. Raises ``ValueError`` for no variants, a variant named
    twice, or weights that do not fit.
    """
    n = len(variants)
    if n == 0:
        raise ValueError("an experiment needs at least one variant")
    point = assignment_point(experiment, user)
    if weights is None:
        ordered = sorted(variants)
        if n > 1 and len(set(ordered)) != n:
            raise ValueError(f"variant names must be distinct, got {list(variants)}")
        return ordered[min(int(point * n), n - 1)]
    if len(weights) != n:
        raise ValueError(f"{n} variants need {n} weights, got {len(weights)}")
    pairs = sorted(zip(variants, weights, strict=True))
    total = 0.0
    for i, (name, weight) in enumerate(pairs):
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"the weight of variant {name!r} must be a finite number >= 0")
        if i and pairs[i - 1][0] == name:
            raise ValueError(f"variant {name!r} is named twice")
        total += weight
    if total <= 0:
        raise ValueError("at least one variant needs a weight above 0")
    target = point * total
    edge = 0.0
    chosen = pairs[-1][0]
    for name, weight in pairs:
        if weight <= 0:
            continue
        edge += weight
        chosen = name
        if target < edge:
            return name
    # Only reached when rounding puts ``target`` on the last edge: the last variant with traffic.
    return chosen
