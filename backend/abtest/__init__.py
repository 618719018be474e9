"""Pure A/B-test statistics: CTR as a ratio metric (delta method), per-user metrics (Welch),
CUPED, always-valid sequential inference, guardrails, 2×2-table tests of shares, power,
Bayesian comparison, SRM and verdicts.

Nothing here imports FastAPI, SQLAlchemy, Celery or Kafka, or reads configuration. Inputs and
results are frozen dataclasses whose fields are their JSON shape: ``backend.jsonable.to_jsonable``
turns any of them into JSON, and an undefined figure is ``None`` with a reason, never NaN or
infinity. Bad input raises :class:`AbTestInputError`.

Entry points: :func:`analyze_users` on one row per user (read by :func:`users_from_csv`,
:func:`users_from_table`, :func:`users_from_events`), :func:`analyze` on per-variant counts
(and :func:`render_ctr_chart` in ``backend.abtest.chart``, kept
out of this namespace so matplotlib loads only when a chart is drawn), :func:`plan_sample_size`,
and the readers :func:`counts_from_events`, :func:`counts_from_user_table`,
:func:`counts_from_csv`.
"""

from backend.abtest.analysis import analyze
from backend.abtest.bayes import BetaPrior
from backend.abtest.counts import Unit, VariantCounts
from backend.abtest.errors import AbTestInputError
from backend.abtest.experiment import analyze_users
from backend.abtest.inputs import counts_from_csv, counts_from_events, counts_from_user_table
from backend.abtest.metrics import METRIC_NAMES, MetricName
from backend.abtest.power import SampleSizePlan, plan_sample_size
from backend.abtest.results import (
    Comparison,
    ExperimentAnalysis,
    MetricComparison,
    MetricSummary,
    VariantSummary,
)
from backend.abtest.users import users_from_csv, users_from_events, users_from_table

__all__ = [
    "METRIC_NAMES",
    "AbTestInputError",
    "BetaPrior",
    "Comparison",
    "ExperimentAnalysis",
    "MetricComparison",
    "MetricName",
    "MetricSummary",
    "SampleSizePlan",
    "Unit",
    "VariantCounts",
    "VariantSummary",
    "analyze",
    "analyze_users",
    "counts_from_csv",
    "counts_from_events",
    "counts_from_user_table",
    "plan_sample_size",
    "users_from_csv",
    "users_from_events",
    "users_from_table",
]
