"""Per-variant counts, the input of every analysis, and the unit of analysis they are in.

Two units of analysis are supported:

``"user"`` (the default)
    Each user counts once. A user is *exposed* (``impressions`` = 1) when they had at least one
    impression, and *converted* (``clicks`` = 1) when they had at least one click; a user's CTR
    contribution is therefore 0 or 1, and a variant's CTR is the share of its exposed users who
    clicked at least once. ``units`` is the number of users assigned to the variant, exposed or
    not, so ``clicks <= impressions <= units``.

``"impression"``
    Every impression is one trial and every click one success: ``impressions`` and ``clicks`` are
    raw event totals, and ``units`` is still the number of users assigned.

Why the default is per user. Every test here (z-test, chi-square, Fisher, the intervals and the
Beta-Binomial model) assumes independent Bernoulli trials. The user is the unit that is
randomised, so users are independent, but impressions of the same user are not: one user's
impressions share that user's taste and habits. Analysed per impression, a user with many
impressions counts as many independent observations, the variance of the CTR is underestimated,
confidence intervals come out too narrow and p-values too small, so significance is inflated and
false positives become more frequent than α. Use ``"impression"`` only when users see about one
impression each, or as a descriptive figure next to the per-user analysis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from backend.abtest.errors import AbTestInputError

Unit = Literal["user", "impression"]
UNITS: tuple[str, ...] = get_args(Unit)


def check_unit(unit: str) -> Unit:
    """Return ``unit`` typed as :data:`Unit`, or raise naming the allowed values."""
    if unit not in UNITS:
        raise AbTestInputError(f"unit must be one of {', '.join(UNITS)}; got {unit!r}")
    return unit  # type: ignore[return-value]


def _count(value: Any, what: str, variant: str) -> int:
    # bool is an int subclass, but ``True`` clicks is always a bug in the caller.
    as_int: int | None = None
    if not isinstance(value, bool):
        try:
            as_int = int(value)
        except (TypeError, ValueError, OverflowError):
            as_int = None
    if as_int is None or as_int != value:
        raise AbTestInputError(
            f"variant {variant} has {what} = {value!r}; counts must be whole numbers"
        )
    if as_int < 0:
        raise AbTestInputError(f"variant {variant} has {as_int} {what}; counts cannot be negative")
    return as_int


@dataclass(frozen=True)
class VariantCounts:
    """Counts of one variant in one unit of analysis (see the module docstring).

    ``impressions`` are the trials and ``clicks`` the successes: users exposed and users who
    clicked for the per-user unit, raw impressions and clicks for the per-impression unit.
    Construction raises :class:`AbTestInputError` for an empty name, non-integer or negative
    counts, and more clicks than impressions.
    """

    variant: str
    units: int
    impressions: int
    clicks: int

    def __post_init__(self) -> None:
        if not isinstance(self.variant, str) or not self.variant.strip():
            raise AbTestInputError(f"variant name must be a non-empty string; got {self.variant!r}")
        for what in ("units", "impressions", "clicks"):
            object.__setattr__(self, what, _count(getattr(self, what), what, self.variant))
        if self.clicks > self.impressions:
            raise AbTestInputError(
                f"variant {self.variant} has {self.clicks} clicks but only "
                f"{self.impressions} impressions; clicks cannot exceed impressions"
            )

    @property
    def ctr(self) -> float | None:
        """``clicks / impressions``, or ``None`` when there are no impressions."""
        return self.clicks / self.impressions if self.impressions else None


def check_variant_set(counts: list[VariantCounts], unit: Unit) -> None:
    """Raise for an empty list, duplicate names, or (per user) more exposed users than units."""
    if not counts:
        raise AbTestInputError("no variants given; pass the counts of at least the control")
    seen: set[str] = set()
    for variant in counts:
        if not isinstance(variant, VariantCounts):
            raise AbTestInputError(
                f"expected VariantCounts, got {type(variant).__name__}: {variant!r}"
            )
        if variant.variant in seen:
            raise AbTestInputError(
                f"variant {variant.variant} appears more than once; merge its counts into one "
                "entry per variant"
            )
        seen.add(variant.variant)
        if unit == "user" and variant.impressions > variant.units:
            raise AbTestInputError(
                f"variant {variant.variant} has {variant.impressions} exposed users but only "
                f"{variant.units} users assigned; per user, impressions count users with at "
                "least one impression and cannot exceed units"
            )
