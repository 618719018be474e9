"""The worker's Celery app: ``celery -A workers.celery_app worker``."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_ready, worker_shutdown

from backend import catalog
from backend.config import get_settings
from backend.jobs.queue import make_celery
from backend.jobs.supervisor import Supervisor

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

catalog.install()  # the job kinds this worker runs
app = make_celery(get_settings())
app.conf.imports = ("workers.tasks",)

# The job supervisor (reaper and reconciler) runs in every worker's main process, so that jobs
# are recovered wherever workers run, even with no API process up.
_supervisor = Supervisor(get_settings(), app, name="worker supervisor")


@worker_ready.connect
def _start_supervisor(**_: Any) -> None:
    _supervisor.start()


@worker_shutdown.connect
def _stop_supervisor(**_: Any) -> None:
    _supervisor.stop()
