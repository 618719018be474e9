"""Seeded synthetic A/B traffic: impressions and clicks with a configured CTR per variant.

Pure: no clock and no I/O. Each step picks a user uniformly, the user's variant by a stable hash
(so a user always sees the same variant, as a real assignment would), an item from a Zipf-like
popularity, and emits one impression; with probability ``ctr[variant]`` a click on the same item
follows. The producer stamps ``ts`` and sends.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


def parse_ctr(text: str) -> dict[str, float]:
    """``"A=0.05,B=0.06"`` -> ``{"A": 0.05, "B": 0.06}``; each CTR must be in [0, 1]."""
    out: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        try:
            ctr = float(value)
        except ValueError:
            ctr = -1.0
        if not sep or not name.strip() or not 0 <= ctr <= 1:
            raise ValueError(
                f"bad --ctr entry {part!r}: write VARIANT=CTR pairs with CTR in [0, 1], "
                "e.g. A=0.05,B=0.06"
            )
        if name.strip() in out:
            raise ValueError(f"variant {name.strip()!r} is given twice in --ctr")
        out[name.strip()] = ctr
    if not out:
        raise ValueError("--ctr needs at least one VARIANT=CTR pair, e.g. A=0.05,B=0.06")
    return out


@dataclass(frozen=True)
class TrafficSpec:
    """What to simulate. ``ctr`` maps each variant to its click probability per impression."""

    ctr: dict[str, float]
    experiment: str = "home"
    users: int = 5000
    items: int = 500
    seed: int = 0
    source: str = "sim"

    def __post_init__(self) -> None:
        if not self.ctr:
            raise ValueError("at least one variant is needed")
        if self.users < 1 or self.items < 1:
            raise ValueError("users and items must be at least 1")


@dataclass
class TrafficCounts:
    """Events generated, per variant and type (what the monitor must count)."""

    by_variant: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, variant: str, etype: str) -> None:
        per = self.by_variant.setdefault(variant, {"impression": 0, "click": 0})
        per[etype] += 1

    @property
    def total(self) -> int:
        return sum(sum(v.values()) for v in self.by_variant.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "variants": {
                v: {**c, "ctr": c["click"] / c["impression"] if c["impression"] else None}
                for v, c in sorted(self.by_variant.items())
            },
        }


def variant_of(user: str, variants: list[str]) -> str:
    """The variant a user is assigned to: a stable hash (CRC-32) of the user id modulo."""
    return variants[zlib.crc32(user.encode()) % len(variants)]


def generate(spec: TrafficSpec, counts: TrafficCounts | None = None) -> Iterator[dict[str, Any]]:
    """An endless stream of event dicts without ``ts`` (the producer stamps it)."""
    rng = random.Random(spec.seed)
    variants = sorted(spec.ctr)
    n = 0
    while True:
        user = f"u{rng.randrange(spec.users)}"
        variant = variant_of(user, variants)
        # Zipf-like popularity: a few items get most of the traffic, as in real catalogues.
        item = f"i{min(int(rng.paretovariate(1.2)) - 1, spec.items - 1)}"
        base = {
            "schema_version": 1,
            "user": user,
            "item": item,
            "experiment": spec.experiment,
            "variant": variant,
            "source": spec.source,
        }
        n += 1
        if counts is not None:
            counts.add(variant, "impression")
        yield {**base, "event_id": f"{spec.seed}-{n}", "type": "impression"}
        if rng.random() < spec.ctr[variant]:
            n += 1
            if counts is not None:
                counts.add(variant, "click")
            yield {**base, "event_id": f"{spec.seed}-{n}", "type": "click"}
