"""The lake's events as Spark DataFrames of interactions (implicit) and ratings (explicit).

``interactions`` computes, in Spark, exactly what ``backend.recsys.interactions`` defines for
pandas: one ``confidence`` per (user, item) from weighted, optionally decayed events, impressions
as negatives when asked, and the pair's newest event time as ``timestamp`` (int64 epoch seconds).
``ratings`` is the Spark twin of ``backend.lake.readers.read_ratings``: the latest rating event
per (user, item). Both read the lake where it lies, so the driver and every executor must see
the same lake path (one machine, or a shared file system).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from backend.lake import layout
from backend.lake.readers import LakeEmptyError
from backend.recsys.interactions import COLUMNS, InteractionWeights

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

_SECONDS_PER_DAY = 86_400.0


def read_events(spark: SparkSession, lake_dir: Path) -> DataFrame:
    """The lake's valid events as a Spark DataFrame (``dt`` partition column included).

    Schemas are merged across files, so files written before a contract field existed read it
    as null; staging areas and markers (names starting with ``_``) are invisible to Spark.
    """
    root = Path(lake_dir).resolve() / layout.EVENTS
    if not any(root.glob("dt=*/*/*.parquet")):
        raise LakeEmptyError(
            f"the lake {lake_dir} has no events yet (no Parquet files under {root}); "
            "ingest events first (recflow ingest)"
        )
    return spark.read.option("mergeSchema", "true").parquet(str(root))


def _weight(weights: InteractionWeights) -> Column:
    from pyspark.sql import functions as F

    kind = F.col("type")
    return (
        F.when(kind == "view", F.lit(weights.view))
        .when(kind == "click", F.lit(weights.click))
        .when(kind == "purchase", F.lit(weights.purchase))
        .when(
            (kind == "rating") & (F.col("rating") >= weights.rating_threshold),
            F.lit(weights.rating),
        )
        .otherwise(F.lit(0.0))
    )


def interactions_from_events(
    events: DataFrame, weights: InteractionWeights, *, now_s: float | None = None
) -> DataFrame:
    """Events (``user``, ``item``, ``type``, ``rating``, ``ts``) → (user, item, confidence,
    timestamp) per ``backend.recsys.interactions``.

    ``confidence = Σ weight(type) · 0.5 ** (age_days / half_life_days)`` over the pair's events,
    age measured back from ``now_s`` (default: the newest event in ``events``); pairs at 0 are
    dropped, and with ``impression_negatives`` a shown pair with no positive event gets
    ``-weights.impression``. Columns: user, item (string), confidence (double), timestamp (long).
    """
    from pyspark.sql import functions as F

    frame = events.select(
        F.col("user").cast("string").alias("user"),
        F.col("item").cast("string").alias("item"),
        F.col("type"),
        F.col("rating").cast("double").alias("rating"),
        # Milliseconds, as the event contract and the pandas version count time.
        (F.expr("unix_millis(ts)") / 1000.0).alias("ts_s"),
    )
    weight = _weight(weights)
    if weights.half_life_days is not None:
        if now_s is None:
            newest = frame.agg(F.max("ts_s")).first()
            now_s = float(newest[0]) if newest is not None and newest[0] is not None else 0.0
        age_days = (F.lit(now_s) - F.col("ts_s")) / _SECONDS_PER_DAY
        weight = weight * F.pow(F.lit(0.5), age_days / F.lit(weights.half_life_days))
    pairs = frame.withColumn("w", weight).groupBy("user", "item")
    summed = pairs.agg(
        F.sum("w").alias("positive"),
        F.max(F.when(F.col("w") > 0, 1).otherwise(0)).alias("has_positive"),
        F.max(F.when(F.col("type") == "impression", 1).otherwise(0)).alias("shown"),
        F.max("ts_s").alias("ts_s"),
    )
    confidence = F.col("positive")
    if weights.impression_negatives:
        confidence = F.when(
            (F.col("has_positive") == 0) & (F.col("shown") == 1), F.lit(-weights.impression)
        ).otherwise(F.col("positive"))
    out = summed.select(
        "user",
        "item",
        confidence.cast("double").alias("confidence"),
        F.floor(F.col("ts_s")).cast("long").alias("timestamp"),
    )
    return out.where(F.col("confidence") != 0).select(*COLUMNS)


def interactions(
    spark: SparkSession,
    lake_dir: Path,
    weights: InteractionWeights | None = None,
    *,
    now_s: float | None = None,
) -> DataFrame:
    """The lake's events as implicit interactions (see ``interactions_from_events``)."""
    events = read_events(spark, lake_dir).select("user", "item", "type", "rating", "ts")
    return interactions_from_events(events, weights or InteractionWeights(), now_s=now_s)


def ratings(spark: SparkSession, lake_dir: Path) -> DataFrame:
    """Explicit ratings: the latest rating event per (user, item), ties broken by ``event_id``.

    Columns user, item (string), rating (double), timestamp (long epoch seconds), as
    ``backend.lake.readers.read_ratings`` returns them.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    events = read_events(spark, lake_dir).where(
        (F.col("type") == "rating") & F.col("rating").isNotNull()
    )
    latest = Window.partitionBy("user", "item").orderBy(F.desc("ts"), F.desc("event_id"))
    return (
        events.withColumn("n", F.row_number().over(latest))
        .where(F.col("n") == 1)
        .select(
            F.col("user").cast("string").alias("user"),
            F.col("item").cast("string").alias("item"),
            F.col("rating").cast("double").alias("rating"),
            F.floor(F.col("ts").cast("double")).cast("long").alias("timestamp"),
        )
    )
