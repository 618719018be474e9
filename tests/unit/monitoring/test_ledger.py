"""The monitor's ledger: bad records, skew, redelivery, and the offsets it commits."""

from __future__ import annotations

import logging

import pytest

from backend.monitoring.ledger import Ledger, Partition, Record
from tests.unit.monitoring.test_consumer import NOW, TP, raw


def test_bad_records_are_counted_by_reason_and_skipped() -> None:
    ledger = Ledger(NOW)
    values: list[bytes | None] = [
        raw(),
        b"{not json",
        None,  # a tombstone
        raw(experiment=None, variant=None, type="impression"),  # no experiment: counted
        raw(variant=None),  # experiment without variant: the contract rejects it
        raw(ts=NOW + 10 * 60_000),  # from the future beyond the allowed skew
        raw(ts=NOW + 60_000),  # ahead, but within the skew: counted now
        raw(ts=NOW - 2 * 3600_000),  # older than the longest window: late
    ]
    commit = ledger.process({TP: [Record(i, v) for i, v in enumerate(values)]}, NOW)
    assert commit == {TP: 8}
    t = ledger.totals
    assert (t.consumed, t.valid, t.invalid) == (8, 4, 4)
    assert t.invalid_by_reason == {"not_json": 2, "missing_field": 1, "ts_too_far_future": 1}
    assert (t.counted, t.future, t.late, t.without_experiment) == (3, 1, 1, 1)
    s = ledger.windows.summary(60)
    assert s.events_by_type == {"click": 2, "impression": 1}
    assert [(v.variant, v.impressions, v.clicks) for v in s.variants] == [("A", 0, 2)]


def test_records_already_counted_are_skipped_when_redelivered() -> None:
    ledger = Ledger(NOW)
    ledger.process({TP: [Record(0, raw()), Record(1, raw())]}, NOW)
    commit = ledger.process({TP: [Record(1, raw()), Record(2, raw())]}, NOW)
    assert commit == {TP: 3}
    assert (ledger.totals.consumed, ledger.totals.redelivered_skipped) == (3, 1)
    assert ledger.windows.summary(60).events == 3


def test_offsets_are_committed_only_once_counted_and_kept_after_a_failed_commit() -> None:
    ledger = Ledger(NOW)
    other = Partition("t", 1)
    ledger.process({TP: [Record(0, raw())], other: [Record(4, raw())]}, NOW)
    # aiokafka's TopicPartition and Partition are the same tuple: either keys the same offsets.
    assert ledger.offsets_to_commit({Partition("t", 0)}) == {TP: 1}
    ledger.commit_failed()
    assert ledger.uncommitted == {TP: 1, other: 5} and ledger.totals.commit_failures == 1
    ledger.commit_done({TP: 1})
    assert ledger.committed == {TP: 1} and ledger.uncommitted == {other: 5}
    # A partition this member no longer holds is left to its new owner.
    assert ledger.offsets_to_commit({TP}) == {}
    assert ledger.uncommitted == {} and ledger.totals.commits == 1


def test_freshness_counts_the_events_since_the_last_snapshot() -> None:
    ledger = Ledger(NOW)
    ledger.process({TP: [Record(0, raw(ts=NOW - 1000)), Record(1, raw(ts=NOW - 2000))]}, NOW)
    pending = ledger.take_pending()
    assert sorted(pending) == [NOW - 2000, NOW - 1000] and ledger.take_pending() == []
    ledger.record_freshness(pending, NOW + 500)
    assert sum(ledger.freshness.values()) == 2


def test_a_rejected_record_is_logged_at_its_partition_and_offset(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ledger = Ledger(NOW)
    other = Partition("t", 1)
    ledger.process({TP: [Record(0, raw())], other: [Record(4, raw())]}, NOW)
    batch = {
        TP: [Record(0, raw()), Record(1, raw()), Record(2, b"{")],  # offset 0 is re-delivered
        other: [Record(5, raw()), Record(6, b"[]"), Record(7, raw())],
    }
    with caplog.at_level(logging.WARNING, logger="backend.monitoring.ledger"):
        assert ledger.process(batch, NOW) == {TP: 3, other: 8}
    assert "t[0]@2 (not_json" in caplog.text and "t[1]@6 (not_json" in caplog.text
    assert (ledger.totals.redelivered_skipped, ledger.totals.valid) == (1, 5)
