"""Alternating least squares on Spark MLlib, explicit or implicit, into a serving ``FactorModel``.

Spark's ALS needs integer ids, so ``prepare`` indexes users and items (``StringIndexer``,
alphabetical, so the same data gives the same ids), repartitions the frame and persists it once:
cross-validation folds and the final fit then all read that one cached frame instead of going
back to the lake. Factors come back to the driver as NumPy arrays (``FactorModel``: raw ids as
strings, no biases, ``global_mean`` 0, so a score is the dot product ``q_i · p_u``).

Explicit ALS minimises ``Σ (r_ui − q_i·p_u)² + λ (n_u |p_u|² + n_i |q_i|²)``; implicit ALS
(``implicit=True``) fits the preference ``p_ui = [r_ui > 0]`` with confidence
``c_ui = 1 + alpha·|r_ui|`` over every cell (Hu, Koren and Volinsky 2008). Spark scales λ by
each user's and item's count ("ALS-WR"), so its ``reg_param`` is not the ``implicit`` package's.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from backend.recsys.errors import DataError
from backend.recsys.model import FactorModel
from backend.recsys.ranking import score_model

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from backend.config import Settings


@dataclass(frozen=True)
class ALSParams:
    """Spark ALS hyperparameters (``rank``, ``maxIter``, ``regParam``, ``alpha``, ...)."""

    rank: int = 10
    max_iter: int = 10
    reg_param: float = 0.1
    alpha: float = 1.0
    nonnegative: bool = False
    seed: int = 0
    implicit: bool = False

    def __post_init__(self) -> None:
        if self.rank < 1 or self.max_iter < 1:
            raise DataError(f"rank={self.rank} and max_iter={self.max_iter} must be at least 1")
        if self.reg_param < 0 or self.alpha < 0:
            raise DataError(f"reg_param={self.reg_param} and alpha={self.alpha} must be >= 0")

    def record(self) -> dict[str, Any]:
        """The parameters as a model artifact stores them."""
        return {
            "rank": self.rank,
            "max_iter": self.max_iter,
            "reg_param": self.reg_param,
            "alpha": self.alpha,
            "nonnegative": self.nonnegative,
            "seed": self.seed,
            "feedback": "implicit" if self.implicit else "explicit",
        }


@dataclass(frozen=True)
class ALSTuning:
    """How the data is laid out for ALS (``RECFLOW_ALS_*``); each one can be switched off.

    ``storage_level`` ``"NONE"`` never persists (every use recomputes from the source);
    ``partitions`` 0 keeps the source's partitioning; blocks 0 follow the partitions (Spark's 10
    when those are 0 too); ``checkpoint_interval`` 0 never checkpoints.
    """

    storage_level: str = "MEMORY_AND_DISK"
    partitions: int = 2
    user_blocks: int = 0
    item_blocks: int = 0
    checkpoint_interval: int = 10
    checkpoint_dir: Path | None = None


def tuning_from_settings(settings: Settings) -> ALSTuning:
    """The ``RECFLOW_ALS_*`` settings, checkpoints in the data dir's ``spark-checkpoints``."""
    return ALSTuning(
        storage_level=settings.als_storage_level,
        partitions=settings.als_partitions,
        user_blocks=settings.als_user_blocks,
        item_blocks=settings.als_item_blocks,
        checkpoint_interval=settings.als_checkpoint_interval,
        checkpoint_dir=settings.spark_checkpoint_dir,
    )


def als_session(settings: Settings) -> SparkSession:
    """The Spark session of ``settings`` (master, memory...) for training: Arrow transfers on."""
    from backend.pipeline.job import spark_options
    from backend.pipeline.spark import build_spark

    opts = spark_options(settings)
    extra = {**opts.extra, "spark.sql.execution.arrow.pyspark.enabled": "true"}
    return build_spark(
        replace(
            opts,
            native_parser=False,
            kafka=False,
            executor_memory=settings.spark_executor_memory,
            extra=extra,
        )
    )


@dataclass(frozen=True, eq=False)
class Prepared:
    """The indexed frame (``u``, ``i``, ``value``, ``timestamp``) and the raw ids of each index."""

    frame: DataFrame
    user_ids: np.ndarray
    item_ids: np.ndarray
    rows: int
    seconds: float

    def fingerprint(self) -> str:
        """sha256 of the rows' content (order-free: an XOR of per-row hashes) and the raw ids."""
        from pyspark.sql import functions as F

        row = self.frame.agg(
            F.bit_xor(F.xxhash64("u", "i", "value", "timestamp")).alias("h")
        ).first()
        digest = hashlib.sha256(f"{self.rows}\n{row[0] if row else 0}\n".encode())
        for ids in (self.user_ids, self.item_ids):
            digest.update("\x1f".join(ids.tolist()).encode("utf-8") + b"\x1e")
        return digest.hexdigest()

    def release(self) -> None:
        """Drop the persisted copy."""
        self.frame.unpersist()


def prepare(frame: DataFrame, value_col: str, tuning: ALSTuning) -> Prepared:
    """Index ``frame`` (user, item, ``value_col``[, timestamp]) and persist it per ``tuning``."""
    from pyspark import StorageLevel
    from pyspark.ml.feature import StringIndexer
    from pyspark.sql import functions as F

    started = time.perf_counter()
    if tuning.storage_level != "NONE":
        # The indexer reads the source once; cache the raw frame so that read is shared with
        # the persisted, indexed frame below instead of being repeated.
        frame = frame.persist(getattr(StorageLevel, tuning.storage_level))
    indexer = StringIndexer(
        inputCols=["user", "item"], outputCols=["u", "i"], stringOrderType="alphabetAsc"
    ).fit(frame)
    labels = indexer.labelsArray
    ts = F.col("timestamp") if "timestamp" in frame.columns else F.lit(0).cast("long")
    indexed = indexer.transform(frame).select(
        F.col("u").cast("int").alias("u"),
        F.col("i").cast("int").alias("i"),
        F.col(value_col).cast("float").alias("value"),
        ts.alias("timestamp"),
    )
    if tuning.partitions > 0:
        indexed = indexed.repartition(tuning.partitions)
    if tuning.storage_level != "NONE":
        indexed = indexed.persist(getattr(StorageLevel, tuning.storage_level))
    rows = indexed.count()
    if tuning.storage_level != "NONE":
        frame.unpersist()
    if rows == 0:
        raise DataError("no interactions to train ALS on")
    return Prepared(
        frame=indexed,
        user_ids=np.asarray(labels[0], dtype=str),
        item_ids=np.asarray(labels[1], dtype=str),
        rows=rows,
        seconds=time.perf_counter() - started,
    )


def _estimator(params: ALSParams, tuning: ALSTuning) -> Any:
    from pyspark.ml.recommendation import ALS

    blocks = tuning.partitions or 10
    return ALS(
        userCol="u",
        itemCol="i",
        ratingCol="value",
        rank=params.rank,
        maxIter=params.max_iter,
        regParam=params.reg_param,
        alpha=params.alpha,
        implicitPrefs=params.implicit,
        nonnegative=params.nonnegative,
        seed=params.seed,
        numUserBlocks=tuning.user_blocks or blocks,
        numItemBlocks=tuning.item_blocks or blocks,
        # Spark needs a positive interval; without a checkpoint dir it never checkpoints.
        checkpointInterval=tuning.checkpoint_interval or 10,
        coldStartStrategy="drop",
    )


def _checkpointing(spark: SparkSession, tuning: ALSTuning) -> None:
    if tuning.checkpoint_interval > 0 and tuning.checkpoint_dir is not None:
        tuning.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        spark.sparkContext.setCheckpointDir(str(tuning.checkpoint_dir.resolve()))


def _factors(frame: DataFrame, n: int, rank: int) -> np.ndarray:
    pdf = frame.toPandas()
    out = np.zeros((n, rank), dtype=np.float64)
    if len(pdf):
        out[pdf["id"].to_numpy(dtype=np.int64)] = np.stack(list(pdf["features"]))
    return out


def train_and_convert(
    train: DataFrame, prepared: Prepared, params: ALSParams, tuning: ALSTuning
) -> FactorModel:
    """Fit on ``train`` (rows of ``prepared``) into a ``FactorModel`` over all of its ids."""
    spark = train.sparkSession
    _checkpointing(spark, tuning)
    fitted = _estimator(params, tuning).fit(train)
    n_users, n_items = len(prepared.user_ids), len(prepared.item_ids)
    pairs = train.select("u", "i").toPandas()
    users = pairs["u"].to_numpy(dtype=np.int64)
    items = pairs["i"].to_numpy(dtype=np.int64)
    order = np.lexsort((items, users))
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=n_users), out=indptr[1:])
    return FactorModel(
        user_ids=prepared.user_ids,
        item_ids=prepared.item_ids,
        global_mean=0.0,
        user_bias=np.zeros(n_users),
        item_bias=np.zeros(n_items),
        user_factors=_factors(fitted.userFactors, n_users, params.rank),
        item_factors=_factors(fitted.itemFactors, n_items, params.rank),
        seen_indptr=indptr,
        seen_indices=items[order],
        item_popularity=np.bincount(items, minlength=n_items).astype(np.int64),
        algorithm="als",
        params=params.record(),
    )


def fit_prepared(prepared: Prepared, params: ALSParams, tuning: ALSTuning) -> FactorModel:
    """Train on all of ``prepared`` (the frame ``prepare`` persisted)."""
    return train_and_convert(prepared.frame, prepared, params, tuning)


def fit_als(
    frame: DataFrame,
    params: ALSParams,
    tuning: ALSTuning | None = None,
    *,
    value_col: str | None = None,
) -> FactorModel:
    """Train Spark ALS on ``frame`` (user, item, rating or confidence[, timestamp]).

    ``value_col`` defaults to ``confidence`` for implicit and ``rating`` for explicit params.
    """
    tuning = tuning or ALSTuning()
    column = value_col or ("confidence" if params.implicit else "rating")
    prepared = prepare(frame, column, tuning)
    try:
        return fit_prepared(prepared, params, tuning)
    finally:
        prepared.release()


@dataclass(frozen=True)
class ALSFold:
    """Metrics of one fold: rmse/mae (explicit) or ranking metrics at k (implicit)."""

    fold: int
    metrics: dict[str, float]
    fit_seconds: float


@dataclass(frozen=True)
class ALSValidation:
    """Every fold's metrics and their means."""

    folds: tuple[ALSFold, ...]
    means: dict[str, float]


def fold_column(k: int, seed: int) -> Any:
    """A fold number in ``[0, k)`` per (user, item): a seeded hash, the same on every read."""
    from pyspark.sql import functions as F

    return F.pmod(F.xxhash64(F.col("u"), F.col("i"), F.lit(seed)), F.lit(k))


def cross_validate_prepared(
    prepared: Prepared,
    params: ALSParams,
    tuning: ALSTuning,
    *,
    k: int = 5,
    seed: int = 0,
    holdout: bool = False,
    top_k: int = 10,
) -> ALSValidation:
    """k-fold cross-validation (or, with ``holdout``, only the first fold: a 1/k hold-out).

    Pairs go to folds by a seeded hash. Explicit folds report ``rmse`` and ``mae`` over the
    held-out pairs of known users and items; implicit folds report ranking metrics at
    ``top_k`` (``recsys.ranking.score_model``) against the held-out positive pairs of users that
    have training data, with training items excluded from the ranking.
    """
    from pyspark.sql import functions as F

    if k < 2:
        raise DataError(f"k={k} must be at least 2")
    with_fold = prepared.frame.withColumn("fold", fold_column(k, seed))
    folds = []
    for fold in range(1 if holdout else k):
        train = with_fold.where(F.col("fold") != fold).drop("fold")
        test = with_fold.where(F.col("fold") == fold).drop("fold")
        started = time.perf_counter()
        model = train_and_convert(train, prepared, params, tuning)
        fit_seconds = time.perf_counter() - started
        if params.implicit:
            metrics = implicit_metrics(model, test, top_k)
        else:
            metrics = _explicit(model, test)
        folds.append(ALSFold(fold=fold, metrics=metrics, fit_seconds=fit_seconds))
    names = folds[0].metrics.keys()
    means = {n: float(np.mean([f.metrics[n] for f in folds])) for n in names}
    return ALSValidation(folds=tuple(folds), means=means)


def _explicit(model: FactorModel, test: DataFrame) -> dict[str, float]:
    pdf = test.select("u", "i", "value").toPandas()
    users = pdf["u"].to_numpy(dtype=np.int64)
    items = pdf["i"].to_numpy(dtype=np.int64)
    known = (np.diff(model.seen_indptr)[users] > 0) & (model.item_popularity[items] > 0)
    pred = np.einsum("ij,ij->i", model.user_factors[users[known]], model.item_factors[items[known]])
    err = pred - pdf["value"].to_numpy(dtype=np.float64)[known]
    if not len(err):
        return {"rmse": float("nan"), "mae": float("nan")}
    return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err)))}


def implicit_metrics(
    model: FactorModel, test: DataFrame, top_k: int, *, threshold: float | None = None
) -> dict[str, float]:
    """Ranking metrics at ``top_k`` on ``test``'s relevant pairs of users with training data.

    Relevant: a positive value, or with ``threshold`` (ratings) a value at or above it.
    """
    condition = "value > 0" if threshold is None else f"value >= {float(threshold)!r}"
    pdf = test.where(condition).select("u", "i").toPandas()
    users = pdf["u"].to_numpy(dtype=np.int64)
    keep = np.diff(model.seen_indptr)[users] > 0
    relevant = pd.DataFrame(
        {
            "user": model.user_ids[users[keep]],
            "item": model.item_ids[pdf["i"].to_numpy(dtype=np.int64)[keep]],
        }
    )
    if relevant.empty:
        raise DataError("no held-out positive interaction of a user with training data")
    return score_model(model, relevant, top_k)


def validate_and_fit(
    frame: DataFrame,
    params: ALSParams,
    tuning: ALSTuning | None = None,
    *,
    k: int = 5,
    seed: int = 0,
    holdout: bool = False,
    value_col: str | None = None,
) -> tuple[ALSValidation, FactorModel]:
    """Cross-validate, then fit on all the data, both over one prepared (persisted) frame."""
    tuning = tuning or ALSTuning()
    column = value_col or ("confidence" if params.implicit else "rating")
    prepared = prepare(frame, column, tuning)
    try:
        validation = cross_validate_prepared(
            prepared, params, tuning, k=k, seed=seed, holdout=holdout
        )
        return validation, fit_prepared(prepared, params, tuning)
    finally:
        prepared.release()


def frame_to_spark(spark: SparkSession, frame: pd.DataFrame) -> DataFrame:
    """A pandas frame of ratings or interactions as a Spark DataFrame (ids as strings)."""
    out = frame.copy()
    out["user"] = out["user"].astype(str)
    out["item"] = out["item"].astype(str)
    return spark.createDataFrame(out)
