"""Event generators: the seeded A/B traffic simulator and a replay of a ratings data set.

Both yield ``OutgoingEvent``s for ``backend.streaming.producer.produce``, so they go to Kafka or a
landing directory alike. Randomness comes only from the seed given. Users are assigned to
variants with ``backend.streaming.assignment.assign_variant``, the one assignment rule.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd

from backend.streaming.assignment import assign_variant
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


def parse_ctr(text: str) -> dict[str, float]:
    """``"A=0.05,B=0.06"`` -> ``{"A": 0.05, "B": 0.06}``: the click-through rate per variant.

    Raises ``ValueError`` naming the entry at fault: not ``VARIANT=CTR``, a CTR outside [0, 1],
    a variant given twice, or no pair at all.
    """
    out: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, value = (x.strip() for x in part.partition("="))
        try:
            ctr = float(value)
        except ValueError:
            ctr = -1.0
        if not sep or not name or not 0 <= ctr <= 1:
            raise ValueError(
                f"bad --ctr entry {part!r}: write VARIANT=CTR pairs with CTR in [0, 1], "
                "e.g. A=0.05,B=0.06"
            )
        if name in out:
            raise ValueError(f"variant {name!r} is given twice in --ctr")
        out[name] = ctr
    if not out:
        raise ValueError("--ctr needs at least one VARIANT=CTR pair, e.g. A=0.05,B=0.06")
    return out


#: How items are picked: uniformly, or Zipf-like (a few items get most of the traffic, as in real
#: catalogues; the live monitor's top items are then meaningful).
Popularity = Literal["uniform", "zipf"]


@dataclass(frozen=True)
class TrafficSpec:
    """A simulated population: ``users`` users see impressions of ``items`` items; each
    impression leads to a click with the click-through rate of the user's variant (``ctr``).

    Users are split between the variants of ``ctr`` by ``assign_variant``, evenly or by
    ``weights`` (a traffic share per variant, in any unit). ``experiment=None`` simulates traffic
    outside any experiment (``ctr`` must then have one entry, used for everybody). Items are
    picked by ``popularity``. Event times start at ``start_ms`` (None: now) and advance by
    ``step_ms`` per impression; ``realtime=True`` stamps each event with the wall clock instead,
    in ``ts`` and ``sent_at``. ``malformed_fraction`` of the records are replaced by malformed
    ones (cycling through ``malformed_kinds``), and ``duplicate_fraction`` of the valid ones are
    sent twice. ``run_id`` makes event ids unique per run (None: random); fix it to reproduce ids.
    """

    seed: int = 0
    users: int = 1000
    items: int = 500
    experiment: str | None = "exp1"
    ctr: Mapping[str, float] = field(default_factory=lambda: {"A": 0.05, "B": 0.06})
    weights: Mapping[str, float] | None = None
    popularity: Popularity = "uniform"
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
        if self.weights is not None:
            if set(self.weights) != set(self.ctr):
                raise ValueError(
                    f"weights must name the variants of ctr ({', '.join(self.ctr)}), "
                    f"got {', '.join(self.weights)}"
                )
            # The assignment's own checks (non-negative, not all zero), once, up front.
            assign_variant("check", "u", list(self.weights), list(self.weights.values()))
        if self.popularity not in ("uniform", "zipf"):
            raise ValueError(f"popularity must be uniform or zipf, got {self.popularity!r}")
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

    def variant_of(self, user: str) -> str:
        """The variant ``user`` is in (the only one when there is no experiment)."""
        variants = list(self.ctr)
        if self.experiment is None:
            return variants[0]
        weights = None if self.weights is None else [self.weights[v] for v in variants]
        return assign_variant(self.experiment, user, variants, weights)


def simulate_traffic(spec: TrafficSpec) -> Iterator[OutgoingEvent]:
    """An endless stream of impressions and clicks (and injected bad records) per ``spec``.

    Limit it with ``produce(count=...)`` or ``itertools.islice``. Each valid event carries its
    variant and type on the ``OutgoingEvent``, so ``produce`` can count what was sent.
    """
    rng = np.random.default_rng(spec.seed)
    run = spec.run_id or uuid.uuid4().hex[:8]
    users = [f"u{i}" for i in range(spec.users)]
    assignment = {u: spec.variant_of(u) for u in users}
    last_item = spec.items - 1
    zipf = spec.popularity == "zipf"
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
        # Zipf-like: a Pareto (Lomax) draw of shape 1.2, floored; item 0 is the most popular.
        index = min(int(rng.pareto(1.2)), last_item) if zipf else int(rng.integers(spec.items))
        item = f"i{index}"
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
            sent_at=stamp if spec.realtime else None,
        )
        events = [shown]
        if rng.random() < spec.ctr[variant]:
            events.append(replace(shown, event_id=next_id(), type="click", ts=stamp + 1))
        for event in events:
            out = OutgoingEvent(
                user, encode_event(event), variant=event.variant, event_type=event.type
            )
            yield out
            if spec.duplicate_fraction and rng.random() < spec.duplicate_fraction:
                yield replace(out, duplicate=True)


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
