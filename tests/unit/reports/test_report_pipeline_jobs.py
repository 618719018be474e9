"""The report over real pipeline jobs: ingest (Spark), train and validate, run by the worker's
runner in this process, then checked against the stored stage rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.config import Settings
from backend.db.migrate import upgrade
from backend.recsys.synthetic import generate_ratings
from backend.streaming.producer import DirSink, produce_sync
from backend.streaming.simulator import replay_ratings
from tests.unit.reports.cases import report_of
from tests.unit.reports.support import assert_report_matches, expected_stats, run_job

pytestmark = pytest.mark.spark


def test_report_over_ingest_train_and_validate(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", spark_master="local[2]")
    settings.ensure_dirs()
    upgrade(settings.sqlalchemy_url)
    data = generate_ratings(200, 120, 6000, rank=5, seed=2)
    produce_sync(replay_ratings(data.ratings.frame), DirSink(settings.landing_dir))
    ingest = run_job(settings, "ingest", {})
    train_ids = [
        run_job(
            settings,
            "train",
            {
                "data": {"format": "lake"},
                "version": f"v{i}",
                "model": {"params": {"n_epochs": 3 + i}},
            },
        )
        for i in range(3)
    ]
    validate = run_job(settings, "validate", {"data": {"format": "lake"}, "k": 2, "ranking": None})
    report = report_of(settings)
    expected = expected_stats(settings)
    assert report["runs"] == 5
    assert_report_matches(report, expected)
    kinds = {k["kind"]: k for k in report["kinds"]}
    assert set(kinds) == {"ingest", "train", "validate"}
    train_stages = [s["stage"] for s in kinds["train"]["stages"]]
    assert train_stages == ["load", "fit", "save", "register"]
    assert kinds["train"]["runs"] == 3 and expected[("train", "fit")].job_ids == tuple(train_ids)
    batches = {s["stage"]: s for s in kinds["ingest"]["stages"]}
    assert set(batches) == {"spark_session", "query", "micro_batch"}
    assert batches["micro_batch"]["rows_in"] == 6000 and batches["micro_batch"]["rows_out"] == 6000
    assert expected[("ingest", "query")].job_ids == (ingest,)
    # The micro-batches ran within the query: its stage holds only the rest of its time, so
    # the shares of the kind's time add up to one.
    assert sum(s["share"] for s in batches.values()) == pytest.approx(1.0)
    assert expected[("validate", "cross_validate")].job_ids == (validate,)
    # Spark's own figures of each micro-batch are summarised from the stage extras.
    spark = batches["micro_batch"]["extra"]
    for key in (
        "input_rows",
        "input_bytes",
        "shuffle_read_bytes",
        "shuffle_write_bytes",
        "executor_run_time_ms",
        "spark_tasks",
    ):
        assert key in spark, f"the report lacks Spark's {key}"
    assert spark["input_rows"]["sum"] >= 6000 and spark["executor_run_time_ms"]["sum"] > 0
    assert spark["spark_tasks"]["sum"] > 0
