"""The Celery application, configured from Settings. Celery carries work, not state."""

from __future__ import annotations

from functools import lru_cache

from celery import Celery
from kombu.transport import TRANSPORT_ALIASES

from backend.config import Settings, get_settings

# The embedded broker URL (sqla+sqlite://) resolves to our subclass of kombu's transport.
TRANSPORT_ALIASES["sqla"] = "backend.jobs.sqla_transport:Transport"
TRANSPORT_ALIASES["sqlalchemy"] = "backend.jobs.sqla_transport:Transport"

RUN_JOB_TASK = "recflow.run_job"
QUEUE = "recflow"


def make_celery(settings: Settings) -> Celery:
    app = Celery(
        "recflow", broker=settings.celery_broker_url, backend=settings.celery_result_backend
    )
    transport_options: dict[str, object] = {
        "visibility_timeout": settings.broker_visibility_timeout_s
    }
    if settings.embedded_broker:
        # kombu's SQLAlchemy transport polls; a short interval keeps submit-to-start low.
        transport_options["polling_interval"] = 0.1
    app.conf.update(
        task_default_queue=QUEUE,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # The job row records when a job starts; a STARTED state in the result store is redundant.
        task_track_started=False,
        result_extended=False,
        result_expires=24 * 3600,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=settings.broker_connect_timeout_s,
        # Submission must answer quickly when the broker is down, so the API can say 503.
        task_publish_retry=True,
        task_publish_retry_policy={
            "max_retries": 2,
            "interval_start": 0.1,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
        timezone="UTC",
    )
    return app


@lru_cache
def get_celery() -> Celery:
    return make_celery(get_settings())


def ping(celery: Celery, timeout_s: float) -> None:
    """Connect to the broker once, waiting at most ``timeout_s``; raises when it does not answer."""
    with celery.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=timeout_s)
