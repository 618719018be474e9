"""Event generators: a seeded A/B traffic simulator and a replay of a ratings data set.

Both yield ``OutgoingEvent``s for ``backend.streaming.producer.produce``, so they go to Kafka or a
landing directory alike. Randomness comes only from the seed given.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from backend.streaming.events import (
    DEFAULT_RULES,
    REASONS,
    Event,
    ValidationRules,
    encode_event,
    now_ms,
)
from backend.streaming.producer import OutgoingEvent

#: The malformed records the simulator can inject, each named by the reason it must be given.
MALFORMED_KINDS: tuple[str, ...] = (
    "not_json",
    "missing_field",
    "wrong_type",
    "unknown_type",
    "bad_id",
    "rating_out_of_scale",
    "ts_too_far_future",
    "oversized",
)


def assign_variant(experiment: str, user: str, variants: Sequence[str]) -> str:
    """The variant of ``experiment`` a user sees: sha256("experiment:user") mod the number of
    variants (sorted), so the split is stable across runs and processes and about even."""
    if not variants:
        raise ValueError("an experiment needs at least one variant")
    ordered = sorted(variants)
    digest = hashlib.sha256(f"{experiment}:{user}".encode()).digest()
    return ordered[int.from_bytes(digest[:8], "big") % len(ordered)]


@dataclass(frozen=True)
class TrafficSpec:
    """A simulated population: ``users`` users see impressions of ``items`` items; each
    impression leads to a click with the click-through rate of the user's variant (``ctr``).

    ``experiment=None`` simulates traffic outside any experiment (``ctr`` must then have one
    entry, used for everybody). Event times start at ``start_ms`` (None: now) and advance by
    ``step_ms`` per impression; ``realtime=True`` stamps each event with the wall clock instead.
    ``malformed_fraction`` of the records are replaced by malformed ones (cycling through
    ``malformed_kinds``), and ``duplicate_fraction`` of the valid ones are sent twice.
    ``run_id`` makes event ids unique per run (None: random); fix it to reproduce ids.
    """

    seed: int = 0
    users: int = 1000
    items: int = 500
    experiment: str | None = "exp1"
    ctr: Mapping[str, float] = field(default_factory=lambda: {"A": 0.05, "B": 0.06})
    start_ms: int | None = None
    step_ms: int = 10
    realtime: bool = False
    malformed_fraction: float = 0.0
    malformed_kinds: tuple[str, ...] = MALFORMED_KINDS
    duplicate_fraction: float = 0.0
    source: str = "simulator"
    run_id: str | None = None
    rules: ValidationRules = DEFAULT_RULES

    def __post_init__(self) -> None:
        if self.users < 1 or self.items < 1:
            raise ValueError("users and items must be at least 1")
        if not self.ctr:
            raise ValueError("ctr needs at least one variant, e.g. {'A': 0.05}")
        if self.experiment is None and len(self.ctr) != 1:
            raise ValueError("without an experiment, ctr must have exactly one entry")
        for name, rate in self.ctr.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"ctr of variant {name!r} must be within [0, 1], got {rate}")
        for name, frac in (
            ("malformed_fraction", self.malformed_fraction),
            ("duplicate_fraction", self.duplicate_fraction),
        ):
            if not 0.0 <= frac < 1.0:
                raise ValueError(f"{name} must be within [0, 1), got {frac}")
        unknown = set(self.malformed_kinds) - set(MALFORMED_KINDS)
        if unknown or not self.malformed_kinds:
            raise ValueError(
                f"malformed_kinds must be a non-empty subset of {', '.join(MALFORMED_KINDS)}"
            )


def simulate_traffic(spec: TrafficSpec) -> Iterator[OutgoingEvent]:
    """An endless stream of impressions and clicks (and injected bad records) per ``spec``.

    Limit it with ``produce(count=...)`` or ``itertools.islice``.
    """
    rng = np.random.default_rng(spec.seed)
    run = spec.run_id or uuid.uuid4().hex[:8]
    users = [f"u{i}" for i in range(spec.users)]
    variants = list(spec.ctr)
    assignment = {
        u: (assign_variant(spec.experiment, u, variants) if spec.experiment else variants[0])
        for u in users
    }
    clock = spec.start_ms if spec.start_ms is not None else now_ms()
    seq = 0
    malformed_seq = 0

    def next_id() -> str:
        nonlocal seq
        seq += 1
        return f"{spec.source}-{run}-{seq}"

    while True:
        stamp = now_ms() if spec.realtime else clock
        clock += spec.step_ms
        user = users[int(rng.integers(spec.users))]
        item = f"i{int(rng.integers(spec.items))}"
        variant = assignment[user]
        if spec.malformed_fraction and rng.random() < spec.malformed_fraction:
            kind = spec.malformed_kinds[malformed_seq % len(spec.malformed_kinds)]
            malformed_seq += 1
            yield malformed_event(kind, user=user, item=item, event_id=next_id(), rules=spec.rules)
            continue
        shown = Event(
            event_id=next_id(),
            user=user,
            item=item,
            type="impression",
            ts=stamp,
            experiment=spec.experiment,
            variant=variant if spec.experiment else None,
            source=spec.source,
        )
        events = [shown]
        if rng.random() < spec.ctr[variant]:
            events.append(
                Event(
                    event_id=next_id(),
                    user=user,
                    item=item,
                    type="click",
                    ts=stamp + 1,
                    experiment=spec.experiment,
                    variant=shown.variant,
                    source=spec.source,
                )
            )
        for event in events:
            out = OutgoingEvent(user, encode_event(event))
            yield out
            if spec.duplicate_fraction and rng.random() < spec.duplicate_fraction:
                yield OutgoingEvent(out.key, out.value, duplicate=True)


def malformed_event(
    kind: str,
    *,
    user: str = "u0",
    item: str = "i0",
    event_id: str = "bad-0",
    rules: ValidationRules = DEFAULT_RULES,
) -> OutgoingEvent:
    """A record that the validator rejects with reason ``kind`` (one of ``MALFORMED_KINDS``)."""
    if kind not in REASONS:
        raise ValueError(f"{kind!r} is not a rejection reason; use one of {', '.join(REASONS)}")
    base: dict[str, Any] = {
        "schema_version": 1,
        "event_id": event_id,
        "user": user,
        "item": item,
        "type": "click",
        "ts": now_ms(),
    }
    if kind == "not_json":
        return OutgoingEvent(user, encode_event(base)[:-7], "not_json")
    if kind == "missing_field":
        del base["item"]
    elif kind == "wrong_type":
        base["ts"] = str(base["ts"])
    elif kind == "unknown_type":
        base["type"] = "hover"
    elif kind == "bad_id":
        base["user"] = "no spaces allowed"
    elif kind == "rating_out_of_scale":
        base["type"] = "rating"
        base["rating"] = rules.scale[1] + 4
    elif kind == "ts_too_far_future":
        base["ts"] = now_ms() + int(
            (rules.max_future_skew + timedelta(days=7)) / timedelta(milliseconds=1)
        )
    elif kind == "oversized":
        base["padding"] = "x" * rules.max_bytes
    else:
        raise ValueError(f"the simulator cannot make a {kind!r} record")
    return OutgoingEvent(user, encode_event(base), kind)


def replay_ratings(
    ratings: pd.DataFrame, *, source: str = "replay", id_prefix: str = "r"
) -> Iterator[OutgoingEvent]:
    """Rating events from a frame with columns ``user``, ``item``, ``rating`` and ``timestamp``
    (epoch seconds), in the frame's row order.

    The event id is ``<id_prefix>-<user>-<item>-<timestamp>``, so replaying the same data set
    twice is deduplicated by the ingestion rather than doubled.
    """
    missing = {"user", "item", "rating", "timestamp"} - set(ratings.columns)
    if missing:
        raise ValueError(
            f"the ratings frame lacks {', '.join(sorted(missing))}; "
            "it needs user, item, rating, timestamp (epoch seconds)"
        )
    users = ratings["user"].astype(str).to_numpy()
    items = ratings["item"].astype(str).to_numpy()
    values = ratings["rating"].astype("float64").to_numpy()
    stamps = ratings["timestamp"].astype("int64").to_numpy()
    for user, item, rating, ts in zip(users, items, values, stamps, strict=True):
        event = Event(
            event_id=f"{id_prefix}-{user}-{item}-{int(ts)}",
            user=user,
            item=item,
            type="rating",
            ts=int(ts) * 1000,
            rating=float(rating),
            source=source,
        )
        yield OutgoingEvent(user, encode_event(event))
