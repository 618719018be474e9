"""The counts a window bucket holds, and how a batch of events becomes counts in one go.

``Counts`` is what one second of event time (a bucket) or one window (a running sum of buckets)
holds: events per type, impressions and clicks per experiment variant and per model version,
clicks per item and a sparse latency histogram. ``batch_counts`` counts a group of events with
C-level counting (``collections.Counter`` over zipped columns, ``numpy`` for the latency bins)
instead of a Python step per event: the monitor's windows take whole batches, and with the
validator's fast path this per-event loop had become most of the cost of an event.
Pure, no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import compress
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from backend.monitoring.latency import LATENCY_EDGES_S

_EDGES: Final = np.asarray(LATENCY_EDGES_S, dtype=np.float64)
_SLOTS: Final = {"impression": 0, "click": 1}


def latency_bins(latency_ms: npt.NDArray[np.int64]) -> npt.NDArray[np.intp]:
    """``latency_bin`` of each latency given in whole milliseconds, as one array operation."""
    bins = np.searchsorted(_EDGES, latency_ms / 1000.0, side="left")
    return np.minimum(bins, len(_EDGES) - 1)


def bin_counts(bins: npt.NDArray[np.intp]) -> dict[int, int]:
    """A sparse histogram ``{bin: count}`` of an array of bin indices."""
    dense = np.bincount(bins)
    nonzero = np.flatnonzero(dense)
    return dict(zip(nonzero.tolist(), dense[nonzero].tolist(), strict=True))


class Counts:
    """Counts of one bucket or of one window (a running sum of buckets)."""

    __slots__ = ("clicks", "latency", "models", "types", "variants")

    def __init__(self) -> None:
        self.types: dict[str, int] = {}
        self.variants: dict[tuple[str, str], list[int]] = {}  # [impressions, clicks]
        # (experiment, variant, model version) -> [impressions, clicks]; "" for no experiment.
        self.models: dict[tuple[str, str, str], list[int]] = {}
        self.clicks: dict[str, int] = {}  # item -> clicks
        self.latency: dict[int, int] = {}  # bin -> count

    def add(self, other: Counts) -> None:
        """Add ``other``'s counts to these."""
        _add(self.types, other.types)
        _add(self.clicks, other.clicks)
        _add(self.latency, other.latency)
        _add_pairs(self.variants, other.variants)
        _add_pairs(self.models, other.models)

    def subtract(self, other: Counts) -> None:
        """Take ``other``'s counts (a part of these) away; keys that reach zero are dropped."""
        _sub(self.types, other.types)
        _sub(self.clicks, other.clicks)
        _sub(self.latency, other.latency)
        _sub_pairs(self.variants, other.variants)
        _sub_pairs(self.models, other.models)


def batch_counts(
    types: Sequence[str],
    items: Sequence[str],
    experiments: Sequence[str | None],
    variants: Sequence[str | None],
    versions: Sequence[str | None],
    lat_bins: npt.NDArray[np.intp],
) -> Counts:
    """The counts of a group of events given as columns (one entry per event, same order).

    An impression or a click counts for its ``(experiment, variant)`` when it has an experiment,
    and for its ``(experiment, variant, model version)`` when it has a model version (``""`` for
    a missing experiment or variant), as ``backend.monitoring.windows`` defines.
    """
    out = Counts()
    out.types = dict(Counter(types))
    out.latency = bin_counts(lat_bins)
    out.clicks = dict(Counter(compress(items, map("click".__eq__, types))))
    # Few distinct (experiment, variant, version, type) keys, so the Python loop is short.
    for (exp, var, version, etype), n in Counter(
        zip(experiments, variants, versions, types, strict=True)
    ).items():
        slot = _SLOTS.get(etype)
        if slot is None:
            continue
        if exp is not None:
            _bump(out.variants, (exp, var or ""), slot, n)
        if version is not None:
            _bump(out.models, (exp or "", var or "", version), slot, n)
    return out


def _bump(pairs: dict[Any, list[int]], key: Any, slot: int, n: int) -> None:
    pair = pairs.get(key)
    if pair is None:
        pair = pairs[key] = [0, 0]
    pair[slot] += n


def _add(into: dict[Any, int], other: Mapping[Any, int]) -> None:
    get = into.get
    for k, v in other.items():
        into[k] = get(k, 0) + v


def _add_pairs(into: dict[Any, list[int]], other: Mapping[Any, list[int]]) -> None:
    for key, (imp, clk) in other.items():
        pair = into.get(key)
        if pair is None:
            into[key] = [imp, clk]
        else:
            pair[0] += imp
            pair[1] += clk


def _sub_pairs(into: dict[Any, list[int]], other: Mapping[Any, list[int]]) -> None:
    for key, (imp, clk) in other.items():
        pair = into[key]
        pair[0] -= imp
        pair[1] -= clk
        if pair[0] == 0 and pair[1] == 0:
            del into[key]


def _sub(into: dict[Any, int], other: Mapping[Any, int]) -> None:
    for k, v in other.items():
        left = into[k] - v
        if left:
            into[k] = left
        else:
            del into[k]
