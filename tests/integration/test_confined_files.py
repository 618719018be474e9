"""Files named by jobs stay inside the allowed roots, through a real API and a real worker.

One embedded stack (uvicorn plus a Celery worker process, concurrency 1). The roots are the
data dir and what tests/integration/stacks.py adds (the shared MovieLens data and the pytest temp
dir); the secret lives in a directory outside all of them.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.cli.stack import Stack
from backend.config import Settings
from backend.recsys.synthetic import generate_ratings
from tests.integration.stacks import started

pytestmark = pytest.mark.integration

SECRET = "SECRET-b41e07-token"


@pytest.fixture(scope="module")
def stack_and_settings(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Stack, Settings]]:
    with started("embedded", tmp_path_factory.mktemp("confined"), worker_concurrency=1) as pair:
        yield pair


@pytest.fixture
def outside() -> Iterator[Path]:
    """A directory that no root covers (not under the pytest temp dir), holding the secret."""
    folder = Path(tempfile.mkdtemp(prefix="recflow-outside-")).resolve()
    (folder / "secret.csv").write_text(f"user,item,rating,timestamp\n{SECRET},i,3,1\n")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _post(st: Stack, kind: str, params: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{st.api_url}/api/v1/jobs",
        json={"kind": kind, "params": params},
        headers=st.headers,
        timeout=10,
    )


def _wait(st: Stack, job_id: int, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(f"{st.api_url}/api/v1/jobs/{job_id}", headers=st.headers, timeout=10)
        job: dict[str, Any] = r.json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            assert SECRET not in r.text
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} did not end: {job}")
        time.sleep(0.1)


def _ratings_csv(path: Path) -> Path:
    frame = generate_ratings(80, 40, 1500, rank=3, seed=2).ratings.frame
    frame.to_csv(path, index=False)
    return path


def test_train_on_a_file_inside_the_roots_runs_and_outside_is_refused(
    stack_and_settings: tuple[Stack, Settings], tmp_path: Path, outside: Path
) -> None:
    st, settings = stack_and_settings
    inside = _ratings_csv(tmp_path / "ratings.csv")
    r = _post(st, "train", {"data": {"format": "csv", "path": str(inside)}, "activate": "never"})
    assert r.status_code == 202, r.text
    done = _wait(st, r.json()["id"])
    assert done["state"] == "succeeded", done
    assert done["result"]["metrics"]["n_ratings"] == 1500

    for raw in (str(outside / "secret.csv"), f"{tmp_path}/../../../{outside.name}/secret.csv"):
        r = _post(st, "train", {"data": {"format": "csv", "path": raw}})
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"] == ["params", "data", "path"]
        assert "allowed roots" in r.json()["error"]
        assert str(settings.data_dir.resolve()) in r.json()["error"]
        assert SECRET not in r.text
    link = tmp_path / "link.csv"
    link.symlink_to(outside / "secret.csv")
    r = _post(st, "train", {"data": {"format": "csv", "path": str(link)}})
    assert r.status_code == 422 and SECRET not in r.text


def test_the_worker_refuses_a_file_that_became_a_link_outside(
    stack_and_settings: tuple[Stack, Settings], tmp_path: Path, outside: Path
) -> None:
    st, _ = stack_and_settings
    # The one worker process is busy with this echo, so the train job waits in the queue.
    busy = _post(st, "echo", {"sleep_s": 3})
    assert busy.status_code == 202, busy.text
    victim = _ratings_csv(tmp_path / "victim.csv")
    r = _post(st, "train", {"data": {"format": "csv", "path": str(victim)}, "activate": "never"})
    assert r.status_code == 202, r.text
    victim.unlink()
    victim.symlink_to(outside / "secret.csv")
    done = _wait(st, r.json()["id"])
    assert _wait(st, busy.json()["id"])["state"] == "succeeded"
    assert done["state"] == "failed", done
    assert "data.path" in done["error"] and SECRET not in done["error"], done["error"]
