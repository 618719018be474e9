"""Feedback from clients: the rules a batch goes through, and the durable send behind them.

A batch (``POST /api/v1/feedback``) holds up to ``feedback_max_batch`` events of the interaction
contract v1. Each one is judged on its own:

1. A missing ``event_id`` is derived from the event's content (``derived_event_id``), so a client
   that retries a batch after a timeout or a 503 gets the same ids, and the ingestion, which drops
   repeated ids, stores each event once. A missing ``source`` becomes ``feedback``.
2. The contract's validator (``backend.streaming.validation.validate_event``) decides, with its
   reason codes.
3. Only ``click``, ``view``, ``purchase`` and ``rating`` are feedback: impressions are logged by
   serving, from what it really showed, so a client-sent one is refused (``type_not_allowed``).

Answer policy, one rule: **202 when at least one event is accepted**, with the accepted count,
their event ids and every rejected index with its reason; **422 when none is** (same body, in
the error's ``detail``); **413** for a batch over the limit, **503** when the sink could not take
the accepted events (then none of them counts as accepted: the client retries the batch). A 202
is sent only once the accepted events are durable: acknowledged by every in-sync replica (Kafka,
``acks=all``) or written and fsynced in a landing file (embedded mode). A send that fails
part-way may have stored some events; the retry's repeated ids make them count once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from backend.config import Settings
from backend.errors import AppError, InvalidInputError, UnavailableError
from backend.feedback.schemas import FeedbackOut, RejectedEventOut
from backend.streaming.events import Event, Rejected, ValidationRules, encode_event, now_ms
from backend.streaming.producer import DirSink, EventSink, KafkaSink, OutgoingEvent
from backend.streaming.validation import validate_event

log = logging.getLogger(__name__)

#: The event types a client may send; impressions come from serving.
FEEDBACK_TYPES: Final = ("click", "view", "purchase", "rating")
#: The ``source`` given to feedback events that name none.
DEFAULT_SOURCE: Final = "feedback"


class BatchTooLargeError(AppError):
    status_code = 413
    code = "too_large"


@dataclass(frozen=True)
class CheckedBatch:
    """A batch after the rules: the accepted events (batch order) and the refused ones."""

    accepted: tuple[Event, ...]
    rejected: tuple[RejectedEventOut, ...]


def derived_event_id(event: dict[str, Any]) -> str:
    """``fb-`` and 32 hex digits of the SHA-256 of the event's JSON with sorted keys (without
    ``event_id``): the same content always gets the same id."""
    content = {k: v for k, v in event.items() if k != "event_id"}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "fb-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _raw(item: Any) -> bytes:
    """The record the validator judges: the item as compact JSON, with the defaults filled in.

    A value JSON cannot hold (NaN, infinity) gives an empty record, which is ``not_json``.
    """
    if isinstance(item, dict):
        item = dict(item)
        if item.get("source") is None:
            item["source"] = DEFAULT_SOURCE
        if item.get("event_id") is None:
            item["event_id"] = derived_event_id(item)
    try:
        return json.dumps(item, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except ValueError:
        return b""


def check_batch(
    items: Sequence[Any], *, rules: ValidationRules, max_batch: int, now: int | None = None
) -> CheckedBatch:
    """Apply the feedback rules (module docstring) to a batch at the clock ``now`` (epoch ms).

    Raises ``BatchTooLargeError`` over ``max_batch`` events and ``InvalidInputError`` for an
    empty batch.
    """
    if len(items) > max_batch:
        raise BatchTooLargeError(
            f"a feedback batch holds at most {max_batch} events, got {len(items)}; "
            "split it into several requests",
            detail={"max_batch": max_batch, "events": len(items)},
        )
    if not items:
        raise InvalidInputError("events must hold at least one event")
    clock = now_ms() if now is None else now
    accepted: list[Event] = []
    rejected: list[RejectedEventOut] = []
    for index, item in enumerate(items):
        result = validate_event(_raw(item), now=clock, rules=rules)
        if isinstance(result, Rejected):
            rejected.append(RejectedEventOut(index=index, **_reason(result)))
        elif result.type not in FEEDBACK_TYPES:
            rejected.append(
                RejectedEventOut(
                    index=index,
                    reason="type_not_allowed",
                    field="type",
                    message=(
                        f"{result.type} events are logged by serving, not sent as feedback; "
                        f"feedback types are {', '.join(FEEDBACK_TYPES)}"
                    ),
                )
            )
        else:
            accepted.append(result)
    return CheckedBatch(tuple(accepted), tuple(rejected))


def _reason(rejected: Rejected) -> dict[str, Any]:
    return {"reason": rejected.reason, "field": rejected.field, "message": rejected.message}


class FeedbackPublisher:
    """The sink feedback goes to, started once per API process and shared by its requests.

    ``serialize`` sends one batch at a time (a landing directory's files are written from one
    buffer); a Kafka producer takes concurrent sends. A sink that cannot start (the broker is
    down) is started again by the next request, which meanwhile is answered 503.
    """

    def __init__(self, sink: EventSink, *, timeout_s: float, serialize: bool) -> None:
        self.sink = sink
        self.timeout_s = timeout_s
        self.serialize = serialize
        self._started = False
        self._start_lock = asyncio.Lock()
        self._send_lock = asyncio.Lock()

    async def start(self) -> None:
        """Start the sink now; on failure only log it (the API serves the other routes)."""
        try:
            await self._ensure_started()
        except UnavailableError as exc:
            log.warning("feedback sink not started yet: %s", exc.message)

    async def _ensure_started(self) -> None:
        if self._started:
            return
        async with self._start_lock:
            if self._started:
                return
            try:
                await asyncio.wait_for(self.sink.start(), timeout=self.timeout_s)
            except Exception as exc:  # aiokafka and the file system raise unrelated types
                raise UnavailableError(
                    f"the event stream ({self.sink.describe()}) is unavailable, no event was "
                    f"accepted; retry the batch later ({type(exc).__name__}: {exc})"
                ) from exc
            self._started = True

    async def publish(self, events: Sequence[Event]) -> None:
        """Send ``events`` and return once the sink holds them durably; ``UnavailableError``
        (503) when it does not within ``timeout_s``."""
        await self._ensure_started()
        batch = [OutgoingEvent(key=e.user, value=encode_event(e)) for e in events]
        try:
            if self.serialize:
                async with self._send_lock:
                    await asyncio.wait_for(self.sink.send(batch), timeout=self.timeout_s)
            else:
                await asyncio.wait_for(self.sink.send(batch), timeout=self.timeout_s)
        except Exception as exc:  # a timeout, a broker error, a failed write: all a 503
            log.warning("feedback batch of %d events not sent: %r", len(batch), exc)
            raise UnavailableError(
                f"the event stream ({self.sink.describe()}) did not take the batch, no event "
                f"was accepted; retry it later ({type(exc).__name__}: {exc})"
            ) from exc

    async def stop(self) -> None:
        """Stop the sink (flushes nothing: every accepted batch is already durable)."""
        if self._started:
            self._started = False
            await self.sink.stop()


def publisher_from_settings(settings: Settings) -> FeedbackPublisher:
    """Kafka when bootstrap servers are set (``acks=all``), else fsynced landing files."""
    if settings.kafka_bootstrap_servers:
        sink: EventSink = KafkaSink(
            settings.kafka_bootstrap_servers,
            settings.kafka_topic,
            linger_ms=5,
            timeout_s=settings.feedback_send_timeout_s,
        )
        return FeedbackPublisher(sink, timeout_s=settings.feedback_send_timeout_s, serialize=False)
    # One file per batch, written, fsynced and renamed before the answer.
    sink = DirSink(settings.landing_dir, prefix="feedback", flush_each_send=True)
    return FeedbackPublisher(sink, timeout_s=settings.feedback_send_timeout_s, serialize=True)


async def submit(
    items: Sequence[Any], publisher: FeedbackPublisher, settings: Settings
) -> FeedbackOut:
    """Check a batch, send its accepted events durably, and say what happened to each event
    (the answer policy is in the module docstring)."""
    checked = check_batch(
        items, rules=settings.event_rules(), max_batch=settings.feedback_max_batch
    )
    answer = FeedbackOut(
        accepted=len(checked.accepted),
        event_ids=[e.event_id for e in checked.accepted],
        rejected=list(checked.rejected),
    )
    if not checked.accepted:
        raise InvalidInputError(
            f"none of the {len(items)} events was accepted; each rejection gives its reason",
            detail=answer.model_dump(),
        )
    await publisher.publish(checked.accepted)
    return answer
