"""The worker's Celery app: ``celery -A workers.celery_app worker``."""

from __future__ import annotations

import logging

from backend.config import get_settings
from backend.jobs.queue import make_celery

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

app = make_celery(get_settings())
app.conf.imports = ("workers.tasks",)
