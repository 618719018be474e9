"""The one error of the A/B statistics core.

It is a ``ValueError`` for callers that only know the standard library, and an
:class:`backend.errors.InvalidInputError` so the API's single handler turns it into a 422 with
``{"error": ..., "detail": ...}`` without a special case.
"""

from __future__ import annotations

from backend.errors import InvalidInputError


class AbTestInputError(InvalidInputError, ValueError):
    """Input that cannot be analysed as given; the message says what to fix."""
