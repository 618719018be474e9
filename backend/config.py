"""Settings: the one place configuration is read.

Every default is the embedded one, so Recflow runs with nothing configured: SQLite under ./var,
a Celery broker and result store on SQLite (kombu's SQLAlchemy transport), local Spark, and a
landing directory of JSON-lines files as the event source. Production points the same code at
PostgreSQL, Redis, Kafka and a Spark master through RECFLOW_* environment variables.
"""

from __future__ import annotations

import os
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from backend.streaming.events import ValidationRules


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECFLOW_", env_file=".env", extra="ignore")

    env: Literal["embedded", "production"] = "embedded"
    data_dir: Path = Path("var")

    # SQL: jobs, stages, models, metrics, experiments, alerts, reports.
    database_url: str = ""
    # Celery transport. Empty means the embedded SQLite transport under data_dir.
    broker_url: str = ""
    result_backend: str = ""
    # Redis, when present, also carries monitor snapshots and precomputed top-N lists.
    redis_url: str = ""

    # Events: Kafka when bootstrap servers are set, else the landing directory.
    kafka_bootstrap_servers: str = ""
    kafka_topic: str = "interactions"
    kafka_monitor_group: str = "recflow-monitor"

    # Limits of the event contract on top of its types (``events.ValidationRules``), shared by
    # the ingestion, the live monitor and the simulator: the inclusive rating scale (0.5 for
    # MovieLens ml-latest half stars), the largest raw record, how far ``ts`` may run ahead of
    # the clock, and how far behind (empty: no limit, as a replay of old ratings needs).
    event_rating_min: float = 1.0
    event_rating_max: float = 5.0
    event_max_bytes: int = Field(default=4096, ge=64)
    event_max_future_skew_s: float = Field(default=300.0, ge=0)
    event_max_age_days: float | None = Field(default=None, gt=0)

    # Spark and its tuning knobs (each can be switched off to measure it).
    spark_master: str = "local[2]"
    spark_driver_memory: str = "2g"
    spark_shuffle_partitions: int = Field(default_factory=lambda: os.cpu_count() or 2, ge=1)
    spark_repartition_by_date: bool = False
    spark_cache_reused: bool = True
    spark_max_offsets_per_trigger: int | None = Field(default=None, ge=1)
    # The JVM's garbage collector: "parallel" (throughput; 1.2x ingestion) or "g1" (Java's default).
    spark_gc: Literal["parallel", "g1"] = "parallel"
    # Where the dedupe keeps the event ids of its window: "rocksdb" (off the JVM heap; any window)
    # or "hdfs" (Spark's in-memory store, 1.2x ingestion, ~200 bytes of heap per id in the window).
    spark_state_store: Literal["rocksdb", "hdfs"] = "rocksdb"
    # Directory of jars for the Kafka connector (resolved by scripts/spark-kafka-jars.sh);
    # empty means spark.jars.packages resolves them from Maven Central.
    spark_jars_dir: str = ""

    # API
    api_url: str = "http://127.0.0.1:8000"
    api_key: SecretStr | None = None
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    cors_origins: list[str] = []

    # Live monitor: snapshot cadence, validation processes and alert rules.
    monitor_snapshot_interval_s: float = Field(default=1.0, gt=0)
    monitor_validate_workers: int = Field(default=1, ge=0)
    monitor_alert_ctr_drop_pct: float = Field(default=30.0, gt=0, lt=100)
    monitor_alert_ctr_min_impressions: int = Field(default=200, ge=1)
    monitor_alert_lag_max: int = Field(default=10_000, ge=0)
    monitor_alert_idle_s: float = Field(default=60.0, gt=0)

    # Serving: how often each API process checks which model version is active.
    serving_refresh_s: float = Field(default=2.0, gt=0)

    # Jobs
    job_soft_time_limit_s: int = Field(default=3600, ge=1)
    job_max_retries: int = Field(default=3, ge=0)
    # Unacknowledged tasks of a worker that died are redelivered after this many seconds.
    broker_visibility_timeout_s: int = Field(default=3600, ge=1)
    broker_connect_timeout_s: float = Field(default=2.0, gt=0)

    @property
    def var(self) -> Path:
        return self.data_dir

    @property
    def lake_dir(self) -> Path:
        return self.data_dir / "lake"

    @property
    def landing_dir(self) -> Path:
        return self.data_dir / "landing"

    @property
    def checkpoint_dir(self) -> Path:
        return self.data_dir / "checkpoints"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'recflow.db').resolve()}"

    @property
    def celery_broker_url(self) -> str:
        return self.broker_url or f"sqla+sqlite:///{(self.data_dir / 'broker.db').resolve()}"

    @property
    def celery_result_backend(self) -> str:
        return self.result_backend or f"db+sqlite:///{(self.data_dir / 'results.db').resolve()}"

    @property
    def embedded_broker(self) -> bool:
        return self.celery_broker_url.startswith("sqla+")

    def event_rules(self) -> ValidationRules:
        """The event contract's limits from the ``event_*`` settings."""
        from backend.streaming.events import ValidationRules

        return ValidationRules(
            max_bytes=self.event_max_bytes,
            scale=(self.event_rating_min, self.event_rating_max),
            max_future_skew=timedelta(seconds=self.event_max_future_skew_s),
            max_age=None
            if self.event_max_age_days is None
            else timedelta(days=self.event_max_age_days),
        )

    @model_validator(mode="after")
    def _event_scale_is_a_range(self) -> Settings:
        if not self.event_rating_min < self.event_rating_max:
            raise ValueError(
                "RECFLOW_EVENT_RATING_MIN must be below RECFLOW_EVENT_RATING_MAX, got "
                f"{self.event_rating_min} and {self.event_rating_max}"
            )
        return self

    @model_validator(mode="after")
    def _production_needs_servers(self) -> Settings:
        if self.env == "production":
            missing = [
                name
                for name, value in (
                    ("RECFLOW_DATABASE_URL", self.database_url),
                    ("RECFLOW_BROKER_URL", self.broker_url),
                )
                if not value
            ]
            if missing:
                raise ValueError(
                    f"RECFLOW_ENV=production needs {', '.join(missing)}; "
                    "the embedded SQLite defaults are for one machine only"
                )
            if self.database_url.startswith("sqlite"):
                raise ValueError("RECFLOW_ENV=production needs a server database, not SQLite")
        return self

    def ensure_dirs(self) -> None:
        for path in (self.data_dir, self.lake_dir, self.landing_dir, self.models_dir):
            path.mkdir(parents=True, exist_ok=True)


@lru_cache
def get_settings() -> Settings:
    return Settings()
