"""kombu's SQLAlchemy transport, fixed for several processes sharing one SQLite broker.

Two changes to the stock channel:
- it hands every transport option to ``create_engine``, so the embedded broker could not be given
  a shorter ``polling_interval`` (its default of one second would dominate submit-to-start
  latency); this channel keeps the polling options for the transport only;
- when the API and a worker create the queue row at the same moment, the loser of the race gets
  an IntegrityError; this channel reads the winner's row instead of failing the publish;
- the stock channel shares one SQLAlchemy session between the worker's consumer thread and the
  thread that requeues the message of a killed pool process, which corrupts the session; this
  channel gives each thread its own session, so a job whose process dies is requeued.
"""

from __future__ import annotations

import threading
from typing import Any

from kombu.transport import sqlalchemy as kombu_sqla
from sqlalchemy import create_engine
from sqlalchemy.exc import IntegrityError

TRANSPORT_ONLY = ("polling_interval", "visibility_timeout")


class Channel(kombu_sqla.Channel):
    @property
    def session(self) -> Any:
        local = self.__dict__.get("_thread_sessions")
        if local is None:
            local = self.__dict__.setdefault("_thread_sessions", threading.local())
        session = getattr(local, "session", None)
        if session is None:
            _, session_factory = self._open()
            session = local.session = session_factory()
        return session

    def _engine_from_config(self) -> Any:
        conninfo = self.connection.client
        options = {
            k: v
            for k, v in conninfo.transport_options.items()
            if k
            not in (
                *TRANSPORT_ONLY,
                "queue_tablename",
                "message_tablename",
                "callback",
                "errback",
                "max_retries",
                "interval_start",
                "interval_step",
                "interval_max",
                "retry_errors",
            )
        }
        options.setdefault("connect_args", {"timeout": 30})
        return create_engine(conninfo.hostname, **options)

    def _get_or_create(self, queue: str) -> Any:
        try:
            return super()._get_or_create(queue)
        except IntegrityError:
            self.session.rollback()
            return self.session.query(self.queue_cls).filter(self.queue_cls.name == queue).one()


class Transport(kombu_sqla.Transport):
    Channel = Channel
