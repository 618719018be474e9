"""Structured Streaming ingestion: raw events (Kafka or landing files) -> Parquet lake + quarantine.

One responsibility a module:

* ``options``: what to ingest, where to, and the tuning knobs (``IngestOptions``);
* ``run``: the streaming query (validation, dedupe) and its run loop (``run_ingest``);
* ``writer``: the exactly-once publication of each micro-batch (``BatchWriter``);
* ``progress``: the counts of each batch and of the run (``BatchStats``, ``IngestResult``);
* ``failures``: which query failures are worth a restart, and the public error of the others.

The ingest job kind (``backend.pipeline.job``) builds the options from ``Settings``; ``recflow
ingest`` runs that job in its own process.
"""

from backend.pipeline.ingest.failures import IngestError
from backend.pipeline.ingest.options import IngestOptions
from backend.pipeline.ingest.progress import BatchStats, IngestResult, IngestSummary, StageCallback
from backend.pipeline.ingest.run import build_query_frame, run_ingest, stamp_batch

__all__ = [
    "BatchStats",
    "IngestError",
    "IngestOptions",
    "IngestResult",
    "IngestSummary",
    "StageCallback",
    "build_query_frame",
    "run_ingest",
    "stamp_batch",
]
