"""Validate batches of raw records with the shared contract, inline or across processes.

``validate_batch`` applies ``backend.streaming.validation.validate_event`` to every record and keeps
only what the windows need from a valid event (a ``Counted`` tuple, cheap to send between
processes). ``ParallelValidator`` hands a share of each batch to worker processes while the
calling process validates the rest, which puts both cores of a small machine to work: the
contract's validator is pure Python and dominates the monitor's cost per event.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import NamedTuple

from backend.streaming.events import Rejected, ValidationRules
from backend.streaming.validation import validate_event

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
) -> tuple[list[Counted], list[Invalid]]:
    """Validate each record at the clock ``now_ms``; ``None`` (a tombstone) is not JSON.

    Returns the valid events in input order and the rejected records with their reasons.
    """
    valid: list[Counted] = []
    invalid: list[Invalid] = []
    for i, raw in enumerate(raws):
        result = validate_event(raw if raw is not None else b"", now=now_ms, rules=rules)
        if isinstance(result, Rejected):
            invalid.append((i, result.reason, result.message))
        else:
            valid.append(
                Counted(
                    result.ts,
                    result.type,
                    result.user,
                    result.item,
                    result.experiment,
                    result.variant,
                    result.model_version,
                )
            )
    return valid, invalid


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

    async def validate(
        self, raws: Sequence[bytes | None], now_ms: int
    ) -> tuple[list[Counted], list[Invalid]]:
        """Like ``validate_batch``, in parallel for batches of at least ``min_batch`` records."""
        if len(raws) < self.min_batch:
            return validate_batch(raws, now_ms, self.rules)
        loop = asyncio.get_running_loop()
        share = len(raws) // (self.workers + 1)
        futures = [
            loop.run_in_executor(
                self._pool,
                validate_batch,
                list(raws[i * share : (i + 1) * share]),
                now_ms,
                self.rules,
            )
            for i in range(self.workers)
        ]
        local_from = self.workers * share
        mine = validate_batch(raws[local_from:], now_ms, self.rules)
        valid: list[Counted] = []
        invalid: list[Invalid] = []
        for i, (v, bad) in enumerate(await asyncio.gather(*futures)):
            valid.extend(v)
            invalid.extend((i * share + j, r, m) for j, r, m in bad)
        valid.extend(mine[0])
        invalid.extend((local_from + j, r, m) for j, r, m in mine[1])
        return valid, invalid

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
