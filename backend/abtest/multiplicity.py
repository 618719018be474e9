"""Adjusting p-values when several treatments are each compared with the control."""

from __future__ import annotations

from collections.abc import Sequence

from backend.abtest.errors import AbTestInputError


def holm_adjust(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm–Bonferroni step-down adjusted p-values, in the order given.

    With the m p-values sorted ascending, ``p_(1) <= ... <= p_(m)``::

        p̃_(i) = min(1, max_{j <= i} (m - j + 1) · p_(j))

    Rejecting where ``p̃ <= α`` controls the family-wise error rate at α. It equals statsmodels'
    ``multipletests(p, method="holm")[1]``. An undefined p-value (``None``) still counts in m and
    is treated as 1, so it is never rejected and never makes the others less strict; its
    adjusted value is ``None``. Ties keep their input order. An empty input gives an empty list.
    """
    values: list[float] = []
    for p in p_values:
        if p is not None and not 0.0 <= p <= 1.0:
            raise AbTestInputError(f"p-values must lie in [0, 1]; got {p!r}")
        values.append(1.0 if p is None else float(p))
    m = len(values)
    order = sorted(range(m), key=lambda i: values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * values[index]))
        adjusted[index] = running
    return [None if p is None else adj for p, adj in zip(p_values, adjusted, strict=True)]
