"""What an ingestion run reads, where it writes, and its tuning knobs: ``IngestOptions``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from backend.pipeline.sources import EventSource
from backend.streaming.events import DEFAULT_RULES, ValidationRules


@dataclass(frozen=True)
class IngestOptions:
    """What to ingest, where to, and the tuning knobs (each can be switched off to measure it).

    ``checkpoint_root`` holds one checkpoint per source (``<root>/<source.key>``); the same
    source must always use the same one. ``dedupe_watermark`` is how long (in ingestion time) an
    ``event_id`` is remembered. ``repartition_by_date`` shuffles each batch by event date before
    writing, so a batch writes one file per date instead of one per shuffle partition and date
    (with shuffle partitions sized to the cores, that is at most a few; with Spark's default of
    200 it is the small-file explosion). ``cache_batches`` persists a batch that will be read
    twice (valid rows, then rejected rows) instead of recomputing it from the source; a batch is
    taken to have rejected rows when the previous one had. ``fast_validation`` reads
    canonically shaped records without a VARIANT parse, with the JVM parser of
    ``backend.pipeline.native`` when ``native_validation`` (and the session has it), else with
    a regex and ``from_json`` (``validation.with_validation``). ``id_dictionaries`` writes
    ``user`` and ``item`` with Parquet dictionaries: off by default, because with many distinct
    ids building them took about a tenth of the ingestion time (1M events, 100k users), for
    files about a tenth smaller; ``recflow lake compact`` writes dictionaries for every column.
    ``trigger_interval`` is the micro-batch period when following. ``grace_s`` is how long a
    stop waits for the running batch to finish.

    A query that fails because the source went away for a while (``is_transient_source_error``)
    is restarted from its checkpoint. ``max_restarts`` is how many times in a row that is done
    without a micro-batch completing in between (0: never). Before the n-th restart in a row the
    run waits ``restart_backoff_s * 2 ** (n - 1)`` seconds (at most 30), then retries
    ``check_source`` with the same growing pause until it passes or ``source_wait_s`` has gone by.
    """

    source: EventSource
    lake_dir: Path
    checkpoint_root: Path
    rules: ValidationRules = DEFAULT_RULES
    dedupe_watermark: timedelta = timedelta(hours=1)
    repartition_by_date: bool = False
    cache_batches: bool = True
    fast_validation: bool = True
    native_validation: bool = True
    id_dictionaries: bool = False
    trigger_interval: timedelta = timedelta(seconds=5)
    grace_s: float = 60.0
    poll_s: int = 1
    max_restarts: int = 5
    restart_backoff_s: float = 1.0
    source_wait_s: float = 120.0

    @property
    def checkpoint_dir(self) -> Path:
        return self.checkpoint_root / self.source.key
