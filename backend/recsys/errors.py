"""Errors of the recommender core.

Every error a user can cause (bad data, a bad parameter, a corrupt file, a failed download) is a
``DataError``, which is a ``ValueError``; the job layer turns it into a failed job with the
message as written, so each message names the problem and how to fix it.
"""

from __future__ import annotations

from backend.errors import DataError as _CoreDataError


class DataError(_CoreDataError):
    """Input data or parameters that the core cannot use."""


class CorruptArtifactError(DataError):
    """A saved model directory whose files do not match its manifest."""


class DownloadError(DataError):
    """A data set could not be downloaded (no network, HTTP error, bad archive)."""


class ChecksumMismatchError(DownloadError):
    """A downloaded archive whose checksum differs from the pinned one."""


class UnknownUserError(DataError):
    """A user id (raw or inner) that the model was not trained on."""


class UnknownItemError(DataError):
    """An item id (raw or inner) that the model does not know."""


class UnknownCategoryError(DataError):
    """A category name that no item carries."""


class InvalidRatingsError(DataError):
    """Ratings that cannot be used (outside the rating scale, not finite, empty)."""


class InvalidParameterError(DataError):
    """A request parameter out of range (``n < 1``, a mask of the wrong length, ...)."""
