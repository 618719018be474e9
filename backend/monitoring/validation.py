"""Validate batches of raw records with the shared contract, inline or across processes.

``validate_batch`` judges every record as ``backend.streaming.validation.validate_event`` does,
through the contract's fast path (``backend.streaming.fastpath``: about 2.5 us a canonical record
instead of about 17-60 us). ``ParallelValidator`` hands a share of each batch to worker processes
while the calling process validates the rest; the workers send back only what the windows need
from a valid event (a ``Counted`` tuple, cheap to send between processes). With the fast path,
shipping records costs about what validating them does, so it pays only when validation is slow.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import NamedTuple

from backend.monitoring.windows import EventLike
from backend.streaming.events import Rejected, ValidationRules
from backend.streaming.fastpath import validate_many

#: A rejected record: its index in the batch, the contract's reason code, and the message.
Invalid = tuple[int, str, str]


class Counted(NamedTuple):
    """The fields of a valid event that the sliding windows use."""

    ts: int
    type: str
    user: str
    item: str
    experiment: str | None
    variant: str | None
    model_version: str | None


def validate_batch(
    raws: Sequence[bytes | None], now_ms: int, rules: ValidationRules
) -> tuple[list[EventLike], list[Invalid]]:
    """Validate each record at the clock ``now_ms``; ``None`` (a tombstone) is not JSON.

    Returns the valid events in input order and the rejected records with their reasons.
    """
    valid: list[EventLike] = []
    invalid: list[Invalid] = []
    keep = valid.append
    for i, result in enumerate(
        validate_many([b"" if raw is None else raw for raw in raws], now_ms, rules)
    ):
        if isinstance(result, Rejected):
            invalid.append((i, result.reason, result.message))
        else:
            keep(result)
    return valid, invalid


def _validate_compact(
    raws: Sequence[bytes | None], now_ms: int, rules: ValidationRules
) -> tuple[list[Counted], list[Invalid]]:
    """``validate_batch`` with the valid events cut down to ``Counted``, for a worker process."""
    valid, invalid = validate_batch(raws, now_ms, rules)
    return [
        Counted(e.ts, e.type, e.user, e.item, e.experiment, e.variant, e.model_version)
        for e in valid
    ], invalid


class ParallelValidator:
    """Validates a batch split in ``workers + 1`` equal parts: one here, one per process."""

    def __init__(self, workers: int, rules: ValidationRules, min_batch: int = 256) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self.rules = rules
        self.min_batch = min_batch
        self._pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn")
        )

    async def start(self) -> None:
        """Start the worker processes and let each import the validator, so that the first
        batch does not wait for them (a spawned process takes a second or two to start)."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(
                loop.run_in_executor(self._pool, _validate_compact, [], 0, self.rules)
                for _ in range(self.workers)
            )
        )

    async def validate(
        self, raws: Sequence[bytes | None], now_ms: int
    ) -> tuple[list[EventLike], list[Invalid]]:
        """Like ``validate_batch``, in parallel for batches of at least ``min_batch`` records."""
        if len(raws) < self.min_batch:
            return validate_batch(raws, now_ms, self.rules)
        loop = asyncio.get_running_loop()
        share = len(raws) // (self.workers + 1)
        futures = [
            loop.run_in_executor(
                self._pool,
                _validate_compact,
                list(raws[i * share : (i + 1) * share]),
                now_ms,
                self.rules,
            )
            for i in range(self.workers)
        ]
        local_from = self.workers * share
        mine = validate_batch(raws[local_from:], now_ms, self.rules)
        valid: list[EventLike] = []
        invalid: list[Invalid] = []
        for i, (v, bad) in enumerate(await asyncio.gather(*futures)):
            valid.extend(v)
            invalid.extend((i * share + j, r, m) for j, r, m in bad)
        valid.extend(mine[0])
        invalid.extend((local_from + j, r, m) for j, r, m in mine[1])
        return valid, invalid

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
