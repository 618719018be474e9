"""Every job kind Recflow runs, in one explicit list.

Each domain declares its kind next to its rules; this module is the only place that gathers them,
so the job platform (``backend.jobs``) never imports a domain. Entry points call ``install()``.
"""

from __future__ import annotations

from backend.experiments import job as abtest
from backend.jobs import echo
from backend.jobs import kind as _kind
from backend.pipeline import job as ingest
from backend.reports import job as report
from backend.serving import simulate
from backend.training import crossval, search, train

CATALOG = _kind.Catalog(
    [
        abtest.KIND,
        crossval.KIND,
        echo.KIND,
        ingest.KIND,
        report.KIND,
        search.KIND,
        simulate.KIND,
        train.KIND,
    ]
)


def install() -> _kind.Catalog:
    """Install the catalog in this process (idempotent) and return it."""
    _kind.install(CATALOG)
    return CATALOG
