"""How the live monitor consumes, counts and publishes: one frozen set of options."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from backend.monitoring.alerts import AlertRules
from backend.monitoring.windows import DEFAULT_SPANS_S
from backend.streaming.events import DEFAULT_RULES, ValidationRules


@dataclass(frozen=True)
class MonitorOptions:
    """How the monitor consumes and publishes. Defaults suit one monitor per topic."""

    bootstrap_servers: str
    topic: str = "interactions"
    group_id: str = "recflow-monitor"
    spans_s: tuple[int, ...] = DEFAULT_SPANS_S
    top_k: int = 10
    snapshot_interval_s: float = 1.0
    # Small batches keep the snapshot loop on time (both loops share one event loop).
    max_batch: int = 2000
    poll_timeout_ms: int = 100
    # Counted offsets are committed after a batch once this long has passed since the last
    # commit, or at once when the batch was not full (caught up). A commit is a round trip to the
    # broker; one per full batch cost the drain about a tenth of its time. Only counted offsets
    # are ever committed, so this changes how much a crashed monitor's successor re-reads, not
    # what is counted.
    commit_interval_s: float = 0.2
    # Where a group without committed offsets starts: "latest" watches live traffic only.
    auto_offset_reset: Literal["earliest", "latest"] = "latest"
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0
    request_timeout_s: float = 5.0
    rules: AlertRules = field(default_factory=AlertRules)
    validation: ValidationRules = DEFAULT_RULES
    # Processes that validate a share of each batch next to the event loop's own share. With
    # the contract's fast path (about 2.5 us a canonical record) shipping records to a process
    # costs about what validating them does; extra processes pay off only for records off the
    # canonical shape, which take the exact validator (17-60 us). 0 validates inline only.
    validate_workers: int = 0
    # Batches smaller than this are validated inline: shipping them costs more than it saves.
    parallel_min_batch: int = 256

    def __post_init__(self) -> None:
        if not self.bootstrap_servers:
            raise ValueError(
                "the monitor needs Kafka: set RECFLOW_KAFKA_BOOTSTRAP_SERVERS (e.g. kafka:9092)"
            )
        if self.snapshot_interval_s <= 0:
            raise ValueError(f"snapshot_interval_s must be > 0, got {self.snapshot_interval_s}")
        if self.validate_workers < 0:
            raise ValueError(f"validate_workers must be >= 0, got {self.validate_workers}")
        if self.commit_interval_s < 0:
            raise ValueError(f"commit_interval_s must be >= 0, got {self.commit_interval_s}")
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        if not 0 < self.backoff_initial_s <= self.backoff_max_s:
            raise ValueError("need 0 < backoff_initial_s <= backoff_max_s")
