"""Settings: the one place configuration is read.

Every default is the embedded one, so Recflow runs with nothing configured: SQLite under ./var,
a Celery broker and result store on SQLite (kombu's SQLAlchemy transport), local Spark, and a
landing directory of JSON-lines files as the event source. Production points the same code at
PostgreSQL, Redis, Kafka and a Spark master through RECFLOW_* environment variables.
"""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

if TYPE_CHECKING:
    from backend.streaming.events import ValidationRules


class Settings(BaseSettings):
    # hide_input_in_errors: a settings error must never echo a key or a password it was given.
    model_config = SettingsConfigDict(
        env_prefix="RECFLOW_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    env: Literal["embedded", "production"] = "embedded"
    data_dir: Path = Path("var")

    # --- Files that requests and job params may name (backend/paths.py) -----------------------
    # Every such path must resolve, symlinks followed, inside the data dir, its uploads dir, or
    # one of these roots (RECFLOW_DATA_ROOTS: os.pathsep- or comma-separated; empty by default).
    # A file read for a job may be at most max_input_bytes (a MovieLens folder: each file read).
    data_roots: Annotated[list[Path], NoDecode] = []
    max_input_bytes: int = Field(default=2 * 2**30, ge=1)
    # Ceilings on job params, checked at submit time (422) and again by the worker.
    max_synthetic_ratings: int = Field(default=20_000_000, ge=1)
    max_synthetic_rank: int = Field(default=256, ge=1)
    max_search_trials: int = Field(default=200, ge=1)
    max_cv_folds: int = Field(default=20, ge=2)
    max_echo_sleep_s: float = Field(default=60.0, ge=0)
    max_n_jobs: int = Field(default_factory=lambda: (os.cpu_count() or 16) * 4, ge=1)

    @field_validator("data_roots", mode="before")
    @classmethod
    def _split_data_roots(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = value.replace(os.pathsep, ",").split(",")
            return [part.strip() for part in parts if part.strip()]
        return value

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

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
    # Memory of each executor on a cluster master (a worker must offer at least this much).
    spark_executor_memory: str = "1g"
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

    # --- ALS on Spark MLlib (backend/pipeline/als.py) ------------------------------------------
    # Cross-validation and the final fit reuse one indexed, partitioned DataFrame persisted at
    # this storage level ("NONE": never persisted, so every fold reads the lake again).
    als_storage_level: Literal[
        "MEMORY_ONLY", "MEMORY_AND_DISK", "MEMORY_AND_DISK_DESER", "DISK_ONLY", "NONE"
    ] = "MEMORY_AND_DISK"
    # Partitions of that DataFrame; 0 keeps what the read produced.
    als_partitions: int = Field(default_factory=lambda: os.cpu_count() or 2, ge=0)
    # ALS's numUserBlocks/numItemBlocks (0: as many as the partitions above, or Spark's 10).
    als_user_blocks: int = Field(default=0, ge=0)
    als_item_blocks: int = Field(default=0, ge=0)
    # ALS checkpoints its factor lineage every this many iterations into the data dir's
    # spark-checkpoints (0: never; long runs then carry an ever longer lineage).
    als_checkpoint_interval: int = Field(default=10, ge=0)

    # API
    api_url: str = "http://127.0.0.1:8000"
    api_key: SecretStr | None = None
    max_body_bytes: int = Field(default=1_000_000, ge=1024)

    # --- Shutdown of the API (backend/api/shutdown.py) -----------------------------------------
    # On SIGTERM or SIGINT, open server-sent event streams end at once with `event: end`; a
    # stream still running (or any other request) after this many seconds is cancelled by
    # uvicorn (`recflow api` passes it as timeout_graceful_shutdown), so a stop takes at most
    # about this long.
    shutdown_timeout_s: int = Field(default=5, ge=1, le=300)

    # --- Keys with scopes, /metrics, Flower's authentication (backend/api/auth.py) -------------
    # RECFLOW_API_KEY is one key with every scope (kept as it was). RECFLOW_API_KEYS is a
    # comma-separated list of ``scope:key`` or ``scope:sha256:<hex>`` entries (the hex sha256 of
    # the key, so the environment need not hold the key itself); scope is read, write or admin,
    # and admin implies write implies read. Without any key every route is open (the embedded
    # default); production refuses to start without one.
    api_keys: SecretStr | None = None
    # /metrics without a key. True by default so that a Prometheus server (which sends no
    # X-API-Key) can scrape the embedded stack and a compose network as it is; the figures are
    # counts and rates, no rows. A deployment reachable from outside should set it to false
    # (and scrape with a read key as a bearer token) or keep /metrics behind its firewall.
    metrics_public: bool = True
    # Flower: HTTP basic auth ("user:password[,user2:password2]"), and/or Flower's OAuth options
    # (passed through as FLOWER_* variables). `recflow flower` refuses production without one.
    flower_basic_auth: SecretStr | None = None
    flower_auth: str = ""  # regexp of the e-mails OAuth lets in (Flower's --auth)
    flower_auth_provider: str = ""  # e.g. flower.views.auth.GithubLoginHandler
    flower_oauth2_key: str = ""
    flower_oauth2_secret: SecretStr | None = None
    flower_oauth2_redirect_uri: str = ""

    def api_key_scopes(self) -> dict[bytes, str]:
        """The sha256 digest of every configured key -> its scope (read, write or admin).

        A bad entry is a ValueError naming its position in RECFLOW_API_KEYS, never its text.
        """
        scopes: dict[bytes, str] = {}
        where: dict[bytes, str] = {}
        if self.api_key is not None:
            if not self.api_key.get_secret_value():
                raise ValueError("RECFLOW_API_KEY is set but empty; unset it or give it a value")
            digest = hashlib.sha256(self.api_key.get_secret_value().encode()).digest()
            scopes[digest], where[digest] = "admin", "RECFLOW_API_KEY"
        text = "" if self.api_keys is None else self.api_keys.get_secret_value()
        for n, raw in enumerate(text.split(","), start=1):
            entry = raw.strip()
            if not entry and text.strip():
                raise ValueError(f"RECFLOW_API_KEYS entry {n} is empty (a stray comma?)")
            if not entry:
                continue
            scope, sep, key = entry.partition(":")
            if not sep or scope not in ("read", "write", "admin"):
                raise ValueError(
                    f"RECFLOW_API_KEYS entry {n} must start with read:, write: or admin: "
                    "(scope:key or scope:sha256:<hex>)"
                )
            if key.startswith("sha256:"):
                hexdigest = key.removeprefix("sha256:").lower()
                if len(hexdigest) != 64 or any(c not in "0123456789abcdef" for c in hexdigest):
                    raise ValueError(
                        f"RECFLOW_API_KEYS entry {n} ({scope}:sha256:...) needs the 64 hex "
                        "digits of the key's sha256"
                    )
                digest = bytes.fromhex(hexdigest)
            elif len(key) < 16 or any(c.isspace() for c in key):
                raise ValueError(
                    f"RECFLOW_API_KEYS entry {n} ({scope}:...) needs a key of at least 16 "
                    "characters without spaces or commas"
                )
            else:
                digest = hashlib.sha256(key.encode()).digest()
            if digest in scopes:
                raise ValueError(
                    f"RECFLOW_API_KEYS entry {n} repeats the key of {where[digest]}; "
                    "give each key one scope"
                )
            scopes[digest], where[digest] = scope, f"RECFLOW_API_KEYS entry {n}"
        return scopes

    def flower_basic_auth_entries(self) -> list[str]:
        """The ``user:password`` pairs of RECFLOW_FLOWER_BASIC_AUTH (position named on error)."""
        if self.flower_basic_auth is None:
            return []
        entries = [e.strip() for e in self.flower_basic_auth.get_secret_value().split(",")]
        for n, entry in enumerate(entries, start=1):
            user, sep, password = entry.partition(":")
            if not sep or not user or not password:
                raise ValueError(
                    f"RECFLOW_FLOWER_BASIC_AUTH entry {n} must be user:password (both non-empty)"
                )
        return entries

    @property
    def flower_authenticated(self) -> bool:
        return self.flower_basic_auth is not None or bool(self.flower_auth)

    @model_validator(mode="after")
    def _keys_are_valid_and_production_has_one(self) -> Settings:
        scopes = self.api_key_scopes()
        self.flower_basic_auth_entries()
        if self.env == "production" and not scopes:
            raise ValueError(
                "RECFLOW_ENV=production needs RECFLOW_API_KEYS (or RECFLOW_API_KEY): "
                "every route but /health/* then needs a key"
            )
        return self

    # Live monitor: snapshot cadence, validation processes and alert rules.
    monitor_snapshot_interval_s: float = Field(default=0.5, gt=0)
    monitor_validate_workers: int = Field(default=0, ge=0)
    monitor_alert_ctr_drop_pct: float = Field(default=30.0, gt=0, lt=100)
    monitor_alert_ctr_min_impressions: int = Field(default=200, ge=1)
    monitor_alert_lag_max: int = Field(default=10_000, ge=0)
    monitor_alert_idle_s: float = Field(default=60.0, gt=0)

    # Serving: how often each API process checks which model version is active, which
    # experiment runs and whether the items catalogue changed.
    serving_refresh_s: float = Field(default=2.0, gt=0)
    # Precomputed top-N lists (the simulate job, mode=precompute with to_redis, writes them under
    # topn_key_prefix): with serving_precomputed on (and redis_url set), the recommendation route
    # answers from a user's list when it was computed for the model that answers, at most
    # serving_precomputed_max_age_s ago, is long enough and the request has no exclude or
    # category filter; otherwise it computes. Off by default: on this machine a Redis round
    # trip costs more than computing the answer in memory (bench/serve.py, rps_precomputed).
    # A Redis read slower than serving_precomputed_timeout_s, or failing, falls back to
    # computing, and Redis is then left alone for serving_precomputed_retry_s.
    serving_precomputed: bool = False
    serving_precomputed_max_age_s: float = Field(default=86_400.0, gt=0)
    serving_precomputed_timeout_s: float = Field(default=0.05, gt=0, le=5)
    serving_precomputed_retry_s: float = Field(default=5.0, gt=0)
    topn_key_prefix: str = Field(default="recflow:topn", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")

    # --- Impressions serving logs (backend/serving/impressions.py) -----------------------------
    # One impression event per item shown, to Kafka (when bootstrap servers are set) or the
    # landing directory, in batches of up to impressions_batch events or every
    # impressions_flush_s seconds, from a buffer of at most impressions_buffer events per API
    # process. When it is full, an answer waits at most impressions_put_timeout_ms for room and
    # is then dropped and counted (recflow_impressions_dropped_total); 0 never waits, since the
    # wait would hold up the event loop of the whole process.
    impressions_enabled: bool = True
    impressions_buffer: int = Field(default=100_000, ge=1)
    impressions_batch: int = Field(default=5000, ge=1)
    impressions_flush_s: float = Field(default=1.0, gt=0)
    impressions_put_timeout_ms: float = Field(default=0.0, ge=0, le=1000)

    # Feedback (POST /api/v1/feedback): at most feedback_max_batch events a request; a batch
    # is answered 503 when the broker (or the landing directory) has not taken it durably within
    # feedback_send_timeout_s.
    feedback_max_batch: int = Field(default=1000, ge=1, le=100_000)
    feedback_send_timeout_s: float = Field(default=10.0, gt=0)

    # Jobs
    job_max_retries: int = Field(default=3, ge=0)
    # Unacknowledged tasks of a worker that died are redelivered after this many seconds.
    broker_visibility_timeout_s: int = Field(default=3600, ge=1)
    broker_connect_timeout_s: float = Field(default=2.0, gt=0)

    # Job supervision: the job row is the source of truth, so every process that runs
    # a supervisor (each worker's main process and each API process) re-sends jobs whose message
    # was never sent or was lost, and recovers jobs whose worker stopped heartbeating.
    # A running job's worker writes its heartbeat every this many seconds.
    job_heartbeat_s: float = Field(default=10.0, gt=0)
    # A running job whose heartbeat is older than this is re-queued (or failed when its retry
    # budget is spent). With the supervisor interval this bounds detection: timeout + interval.
    job_heartbeat_timeout_s: float = Field(default=40.0, gt=0)
    # A queued job never sent to the broker (its submitter died after the commit) is sent after
    # this grace period.
    job_dispatch_grace_s: float = Field(default=10.0, gt=0)
    # A queued job sent this long ago but not started is sent again (a broker that lost its
    # messages, e.g. Redis restarted without persistence); the bound doubles with every re-send,
    # and a duplicate message is dropped by the worker.
    job_redispatch_after_s: float = Field(default=300.0, gt=0)
    # How often a supervisor looks for such jobs.
    job_supervisor_interval_s: float = Field(default=5.0, gt=0)
    # Test and operator aid: make a running job wait (up to an hour) at a named point, e.g.
    # "train.after_save", so that a fault can be injected exactly there. Empty: never wait.
    job_pause_at: str = ""

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
    def spark_checkpoint_dir(self) -> Path:
        return self.data_dir / "spark-checkpoints"

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
    def _job_heartbeat_timeout_exceeds_interval(self) -> Settings:
        if not self.job_heartbeat_timeout_s > self.job_heartbeat_s:
            raise ValueError(
                "RECFLOW_JOB_HEARTBEAT_TIMEOUT_S must be larger than RECFLOW_JOB_HEARTBEAT_S, got "
                f"{self.job_heartbeat_timeout_s} and {self.job_heartbeat_s}"
            )
        if not self.job_redispatch_after_s > self.job_dispatch_grace_s:
            raise ValueError(
                "RECFLOW_JOB_REDISPATCH_AFTER_S must be larger than RECFLOW_JOB_DISPATCH_GRACE_S, "
                f"got {self.job_redispatch_after_s} and {self.job_dispatch_grace_s}"
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
