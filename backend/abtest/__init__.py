"""Pure A/B-test statistics on CTR: intervals, tests, power, Bayesian comparison, SRM, verdicts.

Nothing here imports FastAPI, SQLAlchemy, Celery or Kafka, or reads configuration. Inputs and
results are frozen dataclasses whose fields are their JSON shape: ``backend.jsonable.to_jsonable``
turns any of them into JSON, and an undefined figure is ``None`` with a reason, never NaN or
infinity. Bad input raises :class:`AbTestInputError`.

Entry points: :func:`analyze` (and :func:`render_ctr_chart` in ``backend.abtest.chart``, kept
out of this namespace so matplotlib loads only when a chart is drawn), :func:`plan_sample_size`,
and the readers :func:`counts_from_events`, :func:`counts_from_user_table`,
:func:`counts_from_csv`.
"""

from backend.abtest.analysis import analyze
from backend.abtest.bayes import BetaPrior
from backend.abtest.counts import Unit, VariantCounts
from backend.abtest.errors import AbTestInputError
from backend.abtest.inputs import counts_from_csv, counts_from_events, counts_from_user_table
from backend.abtest.power import SampleSizePlan, plan_sample_size
from backend.abtest.results import Comparison, ExperimentAnalysis, VariantSummary

__all__ = [
    "AbTestInputError",
    "BetaPrior",
    "Comparison",
    "ExperimentAnalysis",
    "SampleSizePlan",
    "Unit",
    "VariantCounts",
    "VariantSummary",
    "analyze",
    "counts_from_csv",
    "counts_from_events",
    "counts_from_user_table",
    "plan_sample_size",
]
