"""The one error of the A/B statistics core: input that cannot be analysed as given."""

from __future__ import annotations

from backend.errors import DataError


class AbTestInputError(DataError):
    """Input that cannot be analysed as given; the message says what to fix."""
