"""Ingestion and ALS on a real Spark standalone cluster give what local mode gives.

The cluster is ``scripts/spark.sh up`` (a master and two one-core workers on this machine); its
URL comes from RECFLOW_SPARK_MASTER (``scripts/services.sh env``). Each run is its own process,
configured by its environment as a user would, since a process holds one Spark session. The
lake is a directory that the driver and the executors share (the same machine).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backend.lake import readers as lake
from tests.conftest import service_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
T0_MS = 1_700_000_000_000

# Trains on the lake of RECFLOW_DATA_DIR with the session RECFLOW_SPARK_MASTER names and prints
# the validation metrics, the model's shape and its top-10 for a few users as one JSON line.
TRAIN = """
import json
import numpy as np
from backend.config import Settings
from backend.pipeline.als import ALSParams, als_session, tuning_from_settings, validate_and_fit
from backend.pipeline.interactions import interactions, ratings

settings = Settings()
spark = als_session(settings)
tuning = tuning_from_settings(settings)
out = {"master": spark.sparkContext.master}
implicit = ALSParams(rank=8, max_iter=8, reg_param=0.05, alpha=5.0, seed=7, implicit=True)
cv, model = validate_and_fit(interactions(spark, settings.lake_dir), implicit, tuning, k=4)
top = {u: model.item_ids[np.argsort(-model.scores(n))[:10]].tolist()
       for n, u in enumerate(model.user_ids[:5])}
out["implicit"] = {"means": cv.means, "users": model.n_users, "items": model.n_items, "top": top}
explicit = ALSParams(rank=8, max_iter=8, reg_param=0.1, seed=7)
cv, model = validate_and_fit(ratings(spark, settings.lake_dir), explicit, tuning, k=4)
out["explicit"] = {"means": cv.means, "users": model.n_users, "items": model.n_items}
spark.stop()
print(json.dumps(out))
"""


def write_landing(landing: Path, n_users: int = 120, n_items: int = 60) -> int:
    """Events of two tastes (even users like even items), as JSON lines in ``landing``."""
    rng = np.random.default_rng(3)
    landing.mkdir(parents=True)
    lines = []
    for u in range(n_users):
        for i in rng.choice(n_items, size=15, replace=False):
            liked = u % 2 == i % 2
            kind = rng.choice(["view", "click", "rating"], p=[0.5, 0.3, 0.2])
            event: dict[str, Any] = {
                "schema_version": 1,
                "event_id": f"e{len(lines)}",
                "user": f"u{u}",
                "item": f"i{i}",
                "type": str(kind),
                "ts": T0_MS + len(lines) * 1000,
            }
            if kind == "rating":
                event["rating"] = 5.0 if liked else 2.0
            elif not liked and rng.random() < 0.7:
                continue
            lines.append(json.dumps(event))
    (landing / "events-0.jsonl").write_text("\n".join(lines) + "\n")
    return len(lines)


def run(args: list[str], root: Path, master: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "RECFLOW_DATA_DIR": str(root),
        "RECFLOW_SPARK_MASTER": master,
        "RECFLOW_ALS_PARTITIONS": "2",
        # Executors start Python workers for the ingestion's Python code: this interpreter.
        "PYSPARK_PYTHON": sys.executable,
    }
    done = subprocess.run(
        args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-4000:]
    text = done.stdout.strip()
    # `recflow ... --json` prints one indented document; the training script one line.
    result: dict[str, Any] = json.loads(text if text.startswith("{") else text.splitlines()[-1])
    return result


def ingest_and_train(root: Path, master: str, n_events: int) -> dict[str, Any]:
    write_landing(root / "landing")
    ingested = run([sys.executable, "-m", "backend.cli", "ingest", "--source", "dir", "--json"],
                   root, master)  # fmt: skip
    assert ingested["valid"] == n_events
    trained = run([sys.executable, "-c", TRAIN], root, master)
    assert trained["master"] == master
    return trained


def test_the_cluster_ingests_and_trains_as_local_mode_does(tmp_path: Path) -> None:
    cluster = service_env("RECFLOW_SPARK_MASTER")
    if not cluster.startswith("spark://"):
        pytest.skip(f"RECFLOW_SPARK_MASTER={cluster} is not a standalone cluster")
    n_events = write_landing(tmp_path / "count")
    local = ingest_and_train(tmp_path / "local", "local[2]", n_events)
    remote = ingest_and_train(tmp_path / "cluster", cluster, n_events)

    def rows(root: Path) -> list[tuple[Any, ...]]:
        frame = lake.read_events(root / "lake", columns=["event_id", "user", "item", "type", "ts"])
        return sorted(frame.itertuples(index=False, name=None))

    assert rows(tmp_path / "local") == rows(tmp_path / "cluster")
    for feedback in ("implicit", "explicit"):
        mine, theirs = local[feedback], remote[feedback]
        assert (mine["users"], mine["items"]) == (theirs["users"], theirs["items"])
        # Same data, seed, partitions and blocks give the same factors up to the order in which
        # shuffled ratings reach a block: float sums in another order, differences near 1e-6.
        for name, value in mine["means"].items():
            assert theirs["means"][name] == pytest.approx(value, abs=1e-3), (feedback, name)
    assert local["implicit"]["top"] == remote["implicit"]["top"]
