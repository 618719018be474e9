"""Every check the worker makes on params is made at submit time: a 422 that names the field.

POST /api/v1/jobs through the app in-process (embedded settings): each path param of every job
kind confined to the allowed roots, a secret written outside them never in any response, NaN
and infinity refused, unknown hyperparameters, bad priors, unknown control variants and every
ceiling refused before a job row exists. The worker runs the same validation again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from backend.api.app import create_app
from backend.config import Settings
from backend.db.migrate import upgrade
from backend.jobs import runner

SECRET = "SECRET-7f3a9c-token"
RATINGS = "user,item,rating,timestamp\nu1,i1,4,1\nu2,i1,3,2\nu1,i2,5,3\nu3,i2,2,4\n"


@dataclass(frozen=True)
class World:
    settings: Settings
    client: TestClient
    data: Path  # the data dir (an allowed root)
    extra: Path  # a RECFLOW_DATA_ROOTS entry
    outside: Path  # no root covers it; it holds the secret

    def post(self, kind: str, params: dict[str, Any]) -> Any:
        return self.client.post("/api/v1/jobs", json={"kind": kind, "params": params})

    def post_raw(self, text: str) -> Any:
        return self.client.post(
            "/api/v1/jobs", content=text, headers={"Content-Type": "application/json"}
        )


def _movielens(folder: Path, fmt: str, text: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "ml-100k":
        (folder / "u.data").write_text(text or "1\t1\t4\t1\n2\t1\t3\t2\n1\t2\t5\t3\n3\t2\t2\t4\n")
        (folder / "u.item").write_text(text or "1|A|x|y|z" + "|0" * 19 + "\n")
    elif fmt == "ml-1m":
        (folder / "ratings.dat").write_text(text or "1::1::4::1\n2::1::3::2\n1::2::5::3\n")
        (folder / "movies.dat").write_text(text or "1::A (1995)::Comedy\n")
    else:
        (folder / "ratings.csv").write_text(text or "userId,movieId,rating,timestamp\n1,1,4,1\n")
        (folder / "movies.csv").write_text(text or "movieId,title,genres\n1,A,Comedy\n")
    return folder


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    data, extra, outside = tmp_path / "var", tmp_path / "extra", tmp_path / "outside"
    settings = Settings(data_dir=data, data_roots=[extra])
    settings.ensure_dirs()
    upgrade(settings.sqlalchemy_url)
    extra.mkdir()
    outside.mkdir()
    # Outside the roots: files full of the secret, in every shape a param can name.
    (outside / "secret.csv").write_text(f"user,variant,{SECRET}\n{SECRET},A,1\n")
    (outside / "secret.parquet").write_text(SECRET)
    for fmt in ("ml-100k", "ml-1m", "ml-latest"):
        _movielens(outside / fmt, fmt, text=f"{SECRET}\n")
    (outside / "lake").mkdir()
    (outside / "lake" / "x.parquet").write_text(SECRET)
    # Inside the roots: valid inputs, and links that lead outside.
    (data / "r.csv").write_text(RATINGS)
    (extra / "r.csv").write_text(RATINGS)
    pd.read_csv(data / "r.csv", dtype=str).to_parquet(data / "r.parquet")
    for fmt in ("ml-100k", "ml-1m", "ml-latest"):
        _movielens(data / fmt, fmt)
    (data / "mylake").mkdir()
    pd.read_csv(data / "r.csv", dtype=str).to_parquet(data / "mylake" / "part.parquet")
    (data / "ab.csv").write_text("user,variant,impressions,clicks\nu1,A,2,1\nu2,B,3,0\n")
    (data / "landing2").mkdir()
    with TestClient(create_app(settings)) as client:
        yield World(settings, client, data.resolve(), extra.resolve(), outside.resolve())


# (kind, params with the path P, the field's location, what the path is: file / dir)
PathCase = tuple[str, Callable[[str], dict[str, Any]], list[str | int], str, str]


def _ratings(fmt: str) -> Callable[[str], dict[str, Any]]:
    return lambda p: {"data": {"format": fmt, "path": p}}


PATH_CASES: list[PathCase] = [
    ("train", _ratings("csv"), ["data", "path"], "secret.csv", "r.csv"),
    ("train", _ratings("parquet"), ["data", "path"], "secret.parquet", "r.parquet"),
    ("train", _ratings("ml-100k"), ["data", "path"], "ml-100k", "ml-100k"),
    ("train", _ratings("ml-1m"), ["data", "path"], "ml-1m", "ml-1m"),
    ("train", _ratings("ml-latest"), ["data", "path"], "ml-latest", "ml-latest"),
    ("train", _ratings("lake"), ["data", "path"], "lake", "mylake"),
    (
        "train",
        lambda p: {"data": {"format": "synthetic"}, "items": {"format": "ml-100k", "path": p}},
        ["items", "path"],
        "ml-100k",
        "ml-100k",
    ),
    (
        "train",
        lambda p: {"data": {"format": "synthetic"}, "items": {"format": "ml-1m", "path": p}},
        ["items", "path"],
        "ml-1m",
        "ml-1m",
    ),
    ("validate", _ratings("csv"), ["data", "path"], "secret.csv", "r.csv"),
    ("validate", _ratings("ml-100k"), ["data", "path"], "ml-100k", "ml-100k"),
    (
        "search",
        lambda p: {"data": {"format": "csv", "path": p}, "grid": {"n_factors": [2, 3]}},
        ["data", "path"],
        "secret.csv",
        "r.csv",
    ),
    (
        "abtest",
        lambda p: {"experiment": "e", "source": "csv", "csv_path": p},
        ["csv_path"],
        "secret.csv",
        "ab.csv",
    ),
    ("ingest", lambda p: {"source": "dir", "path": p}, ["path"], "lake", "landing2"),
]
CASE_IDS = [f"{c[0]}-{'.'.join(map(str, c[2]))}-{c[3]}" for c in PATH_CASES]


def _bad_paths(w: World, target: str) -> dict[str, str]:
    """The ways to point outside: absolute, `..`, a symlink inside a root, /proc."""
    link = w.data / f"link-{target}"
    if not link.is_symlink():
        link.symlink_to(w.outside / target)
    return {
        "absolute": str(w.outside / target),
        "dotdot": f"{w.data}/../outside/{target}",
        "relative-dotdot": f"var/../outside/{target}",
        "symlink": str(link),
        "proc": "/proc/self/environ",
    }


def _assert_refused(w: World, r: Any, loc: list[str | int]) -> None:
    assert r.status_code == 422, r.text
    body = r.json()
    assert [e["loc"] for e in body["detail"]] == [["params", *loc]], body
    assert all(set(e) == {"loc", "msg", "type"} for e in body["detail"])
    assert body["detail"][0]["type"].startswith("path_")
    assert f"params.{'.'.join(map(str, loc))}" in body["error"]
    assert "allowed roots" in body["error"] and str(w.data) in body["error"]
    assert str(w.extra) in body["error"] and "RECFLOW_DATA_ROOTS" in body["error"]
    assert SECRET not in r.text


@pytest.mark.parametrize("case", PATH_CASES, ids=CASE_IDS)
def test_each_path_param_outside_the_roots_is_422_naming_field_and_roots(
    world: World, case: PathCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    kind, build, loc, target, _ = case
    monkeypatch.chdir(world.data.parent)
    for how, raw in _bad_paths(world, target).items():
        r = world.post(kind, build(raw))
        _assert_refused(world, r, loc)
        assert r.json()["detail"][0]["type"] == "path_outside_roots", (how, r.text)
    listing = world.client.get("/api/v1/jobs")
    assert listing.json()["items"] == [] and SECRET not in listing.text


@pytest.mark.parametrize("case", PATH_CASES, ids=CASE_IDS)
def test_each_path_param_inside_the_roots_is_accepted(world: World, case: PathCase) -> None:
    kind, build, _, _, good = case
    r = world.post(kind, build(str(world.data / good)))
    assert r.status_code == 202, r.text
    # The job records the path as it was asked, not resolved.
    assert str(world.data / good) in json.dumps(r.json()["params"])


def test_a_file_in_a_data_roots_entry_is_accepted(world: World) -> None:
    r = world.post("train", {"data": {"format": "csv", "path": str(world.extra / "r.csv")}})
    assert r.status_code == 202, r.text


def test_a_missing_file_inside_the_roots_is_422(world: World) -> None:
    r = world.post("train", {"data": {"format": "csv", "path": str(world.data / "nope.csv")}})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["params", "data", "path"]
    assert "no such file or directory inside the allowed roots" in r.json()["error"]
    folder = world.data / "empty-release"
    folder.mkdir()
    r = world.post("train", {"data": {"format": "ml-100k", "path": str(folder)}})
    assert r.status_code == 422 and "expected the file u.data" in r.json()["error"]


def test_a_movielens_file_linked_outside_is_422(world: World) -> None:
    release = world.data / "ml-sneaky"
    release.mkdir()
    (release / "u.data").symlink_to(world.outside / "secret.csv")
    r = world.post("train", {"data": {"format": "ml-100k", "path": str(release)}})
    _assert_refused(world, r, ["data", "path"])


def test_the_size_cap_names_the_setting(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", max_input_bytes=20)
    settings.ensure_dirs()
    upgrade(settings.sqlalchemy_url)
    (settings.data_dir / "r.csv").write_text(RATINGS)
    with TestClient(create_app(settings)) as c:
        path = str(settings.data_dir / "r.csv")
        r = c.post(
            "/api/v1/jobs",
            json={"kind": "train", "params": {"data": {"format": "csv", "path": path}}},
        )
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "path_too_large"
    assert "RECFLOW_MAX_INPUT_BYTES" in r.json()["error"]


def test_the_worker_checks_again_and_its_error_holds_no_secret(world: World) -> None:
    victim = world.data / "victim.csv"
    victim.write_text(RATINGS)
    r = world.post("train", {"data": {"format": "csv", "path": str(victim)}})
    assert r.status_code == 202
    # Between submit and run, the file becomes a link to the secret outside the roots.
    victim.unlink()
    victim.symlink_to(world.outside / "secret.csv")
    assert runner.execute(world.settings, r.json()["id"]) == "failed"
    job = world.client.get(f"/api/v1/jobs/{r.json()['id']}")
    assert job.json()["state"] == "failed" and "data.path" in job.json()["error"]
    assert SECRET not in job.text


def test_a_failing_file_inside_the_roots_is_not_quoted(world: World) -> None:
    (world.data / "odd.csv").write_text(f"user,item,{SECRET}\nu1,i1,3\n")
    r = world.post("train", {"data": {"format": "csv", "path": str(world.data / "odd.csv")}})
    assert r.status_code == 202
    assert runner.execute(world.settings, r.json()["id"]) == "failed"
    job = world.client.get(f"/api/v1/jobs/{r.json()['id']}")
    assert "no column(s) 'rating'" in job.json()["error"]
    assert SECRET not in job.text and str(world.data) not in job.json()["error"]


def test_upload_is_stored_in_the_uploads_dir_under_a_server_chosen_name(world: World) -> None:
    body = b"user,variant,impressions,clicks\nu1,A,2,1\nu2,B,3,0\n"
    r = world.client.post(
        "/api/v1/experiments/home/upload", content=body, headers={"Content-Type": "text/csv"}
    )
    assert r.status_code == 202, r.text
    params = r.json()["params"]
    # The job names the upload by its file name alone: no server path in the job's params.
    assert "csv_path" not in params or params["csv_path"] is None
    assert "/" not in params["upload"] and str(world.settings.data_dir) not in r.text
    stored = world.settings.uploads_dir / params["upload"]
    assert stored.read_bytes() == body and stored.name.startswith("home-")
    # An unknown control variant is known at once from the file: 422, and no orphan upload.
    r = world.client.post(
        "/api/v1/experiments/home/upload",
        params={"control": "Z"},
        content=body,
        headers={"Content-Type": "text/csv"},
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["params", "control"]
    assert len(list(world.settings.uploads_dir.iterdir())) == 1
    # The experiment name cannot climb out of the uploads dir.
    r = world.client.post(
        "/api/v1/experiments/a%2F..%2F..%2Fx/upload", content=body, headers={"Content-Type": "t"}
    )
    assert r.status_code in (404, 422)
    assert len(list(world.settings.uploads_dir.iterdir())) == 1


# NaN and infinity, sent as the raw JSON text that Python's json accepts.
NON_FINITE = [
    ("echo", '{"sleep_s": NaN}', ["sleep_s"]),
    ("echo", '{"message": "x", "sleep_s": Infinity}', ["sleep_s"]),
    ("abtest", '{"experiment": "e", "prior": [Infinity, 1]}', ["prior", 0]),
    ("abtest", '{"experiment": "e", "alpha": NaN}', ["alpha"]),
    (
        "abtest",
        '{"experiment": "e", "expected_split": {"A": NaN, "B": 1}}',
        ["expected_split", "A"],
    ),
    ("train", '{"model": {"params": {"lr_all": NaN}}}', ["model", "params", "lr_all"]),
    ("train", '{"data": {"format": "synthetic", "scale": [1, Infinity]}}', ["data", "scale", 1]),
    ("search", '{"grid": {"lr_all": [0.01, NaN]}}', ["grid", "lr_all", 1]),
    (
        "search",
        '{"fixed": {"reg_all": -Infinity}, "grid": {"n_factors": [2]}}',
        ["fixed", "reg_all"],
    ),
    ("validate", '{"ranking": {"threshold": NaN}}', ["ranking", "threshold"]),
    ("simulate", '{"mode": "what_if", "user": "u", "ratings": {"i": NaN}}', ["ratings", "i"]),
    ("simulate", '{"reg": Infinity}', ["reg"]),
    ("ingest", '{"trigger_s": NaN}', ["trigger_s"]),
    ("report", '{"factor": NaN}', ["factor"]),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "params", "loc"), NON_FINITE)
def test_nan_and_infinity_are_422(world: World, kind: str, params: str, loc: list[Any]) -> None:
    r = world.post_raw(f'{{"kind": "{kind}", "params": {params}}}')
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail == [
        {
            "loc": ["params", *loc],
            "msg": "must be a finite number; NaN and infinity are not allowed",
            "type": "finite_number",
        }
    ]
    assert world.client.get("/api/v1/jobs").json()["items"] == []


def test_the_params_models_refuse_nan_without_the_api(world: World) -> None:
    # The worker validates the stored params with the models alone: they refuse NaN too.
    from backend.experiments.job import AbTestParams
    from backend.training.sources import AlgoParams

    with pytest.raises(ValueError, match="finite number"):
        AbTestParams.model_validate({"experiment": "e", "prior": [float("nan"), 1.0]})
    with pytest.raises(ValueError, match="finite number"):
        AlgoParams.model_validate({"params": {"lr_all": float("inf")}})


def _refused(r: Any, loc: list[Any], *words: str) -> dict[str, Any]:
    assert r.status_code == 422, r.text
    body: dict[str, Any] = r.json()
    assert ["params", *loc] in [e["loc"] for e in body["detail"]], body
    for word in words:
        assert word in body["error"], body["error"]
    return body


def test_unknown_and_bad_hyperparameters_are_422(world: World) -> None:
    synth = {"format": "synthetic"}
    r = world.post("train", {"data": synth, "model": {"params": {"n_factor": 10}}})
    _refused(r, ["model", "params"], "unknown parameter(s) n_factor for svd", "n_factors")
    r = world.post("validate", {"model": {"algorithm": "baseline", "params": {"lr_all": 0.1}}})
    _refused(r, ["model", "params"], "unknown parameter(s) lr_all for baseline")
    r = world.post("train", {"model": {"params": {"n_epochs": 0}}})
    _refused(r, ["model", "params"], "n_epochs=0 must be a positive integer")
    r = world.post("train", {"model": {"algorithm": "global_mean", "params": {"x": 1}}})
    _refused(r, ["model", "params"], "unknown parameter(s) x for global_mean")
    r = world.post("search", {"grid": {"n_factorz": [1, 2]}})
    _refused(r, ["grid"], "unknown parameter(s) n_factorz")
    r = world.post("search", {"grid": {"n_factors": [2]}, "fixed": {"bogus": 1}})
    _refused(r, ["fixed"], "unknown parameter(s) bogus")
    r = world.post(
        "search",
        {"strategy": "random", "space": {"lr_al": {"dist": "uniform", "low": 0.1, "high": 0.2}}},
    )
    _refused(r, ["space"], "unknown parameter(s) lr_al")
    r = world.post(
        "search",
        {"strategy": "random", "space": {"n_factors": {"dist": "int", "low": 0, "high": 5}}},
    )
    _refused(r, ["space"], "n_factors=0 must be a positive integer")
    r = world.post(
        "search",
        {"strategy": "random", "space": {"lr_all": {"dist": "loguniform", "low": 0, "high": 1}}},
    )
    _refused(r, ["space", "lr_all"], "loguniform range needs low > 0")
    # A baseline's options depend on its method: a clash across grid values is found at once.
    r = world.post(
        "search",
        {"algorithm": "baseline", "grid": {"method": ["als", "sgd"], "reg_u": [1.0]}},
    )
    _refused(r, ["grid"], "do not apply to method 'sgd'")
    ok = world.post("search", {"grid": {"n_factors": [2, 3]}, "fixed": {"n_epochs": 2}})
    assert ok.status_code == 202, ok.text


def test_abtest_priors_power_and_control_are_checked_at_submit(world: World) -> None:
    base = {"experiment": "e"}
    _refused(world.post("abtest", {**base, "prior": [-1, 1]}), ["prior", 0], "greater than 0")
    _refused(world.post("abtest", {**base, "prior": [1, 0]}), ["prior", 1], "greater than 0")
    r = world.post("abtest", {**base, "alpha": 0.2, "power": 0.1})
    _refused(r, ["power"], "power (0.1) must be above alpha (0.2)")
    r = world.post("abtest", {**base, "expected_split": {"A": -1, "B": 1}})
    _refused(r, ["expected_split", "A"], "greater than 0")
    _refused(world.post("abtest", {**base, "seed": -1}), ["seed"])
    csv = str(world.data / "ab.csv")
    r = world.post("abtest", {**base, "source": "csv", "csv_path": csv, "control": "Q"})
    body = _refused(r, ["control"], "control variant 'Q' is not in the CSV's variant column")
    assert "2 variant(s)" in body["error"] and "'A'" not in body["error"]
    r = world.post("abtest", {**base, "source": "csv", "csv_path": csv, "control": "B"})
    assert r.status_code == 202, r.text
    # The lake's variants are known only to the worker: accepted here.
    assert world.post("abtest", {**base, "control": "Q"}).status_code == 202


DEFAULT_CEILINGS = [
    ("train", {"data": {"format": "synthetic", "n_users": 20_000, "n_items": 20_000,
                        "n_ratings": 100_000_000}}, ["data", "n_ratings"],
     "RECFLOW_MAX_SYNTHETIC_RATINGS"),
    ("train", {"data": {"format": "synthetic", "rank": 500}}, ["data", "rank"],
     "RECFLOW_MAX_SYNTHETIC_RANK"),
    ("search", {"strategy": "random", "n_trials": 10_000,
                "space": {"lr_all": {"dist": "uniform", "low": 0.01, "high": 0.02}}},
     ["n_trials"], "RECFLOW_MAX_SEARCH_TRIALS"),
    ("search", {"grid": {"n_factors": list(range(1, 16)), "n_epochs": list(range(1, 16))}},
     ["grid"], "RECFLOW_MAX_SEARCH_TRIALS"),
    ("validate", {"k": 21}, ["k"], "RECFLOW_MAX_CV_FOLDS"),
    ("search", {"grid": {"n_factors": [2]}, "k": 21}, ["k"], "RECFLOW_MAX_CV_FOLDS"),
    ("train", {"validate_k": 21}, ["validate_k"], "RECFLOW_MAX_CV_FOLDS"),
    ("echo", {"sleep_s": 3600}, ["sleep_s"], "RECFLOW_MAX_ECHO_SLEEP_S"),
    ("train", {"n_jobs": 10_000}, ["n_jobs"], "RECFLOW_MAX_N_JOBS"),
    ("validate", {"n_jobs": 10_000}, ["n_jobs"], "RECFLOW_MAX_N_JOBS"),
    ("search", {"grid": {"n_factors": [2]}, "n_jobs": 10_000}, ["n_jobs"], "RECFLOW_MAX_N_JOBS"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "params", "loc", "setting"), DEFAULT_CEILINGS)
def test_each_ceiling_is_422_naming_field_and_setting(
    world: World, kind: str, params: dict[str, Any], loc: list[Any], setting: str
) -> None:
    body = _refused(world.post(kind, params), loc, setting)
    assert any(e["type"] == "ceiling_exceeded" for e in body["detail"])


def test_ceilings_follow_the_settings(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", max_echo_sleep_s=1, max_cv_folds=3)
    settings.ensure_dirs()
    upgrade(settings.sqlalchemy_url)
    with TestClient(create_app(settings)) as c:
        r = c.post("/api/v1/jobs", json={"kind": "echo", "params": {"sleep_s": 1.5}})
        _refused(r, ["sleep_s"], "at most 1 (RECFLOW_MAX_ECHO_SLEEP_S)")
        assert c.post("/api/v1/jobs", json={"kind": "echo", "params": {"sleep_s": 1}}).is_success
        r = c.post("/api/v1/jobs", json={"kind": "validate", "params": {"k": 4}})
        _refused(r, ["k"], "RECFLOW_MAX_CV_FOLDS")


def test_other_worker_checks_are_made_at_submit(world: World) -> None:
    r = world.post("train", {"validate_k": 1})
    _refused(r, ["validate_k"], "at least 2 folds")
    r = world.post("train", {"data": {"format": "synthetic", "n_users": 10, "n_items": 10}})
    _refused(r, ["data"], "at most half the 10x10 cells")
    r = world.post("train", {"data": {"format": "csv", "path": "x", "scale": [5, 1]}})
    _refused(r, ["data", "scale"], "low < high")
    r = world.post("ingest", {"source": "kafka"})
    _refused(r, [], "RECFLOW_KAFKA_BOOTSTRAP_SERVERS")
    r = world.post("simulate", {"to_redis": True})
    _refused(r, [], "RECFLOW_REDIS_URL")
    r = world.post("simulate", {"version": "../../etc"})
    _refused(r, ["version"], "1-64 characters")


def test_an_optional_movielens_file_linked_outside_is_422(world: World) -> None:
    # load_items reads u.genre beside u.item when it is there, also when path names u.item.
    release = _movielens(world.data / "ml-genre", "ml-100k")
    (release / "u.genre").symlink_to(world.outside / "secret.csv")
    for path in (release, release / "u.item"):
        r = world.post(
            "train",
            {"data": {"format": "synthetic"}, "items": {"format": "ml-100k", "path": str(path)}},
        )
        _assert_refused(world, r, ["items", "path"])


@pytest.mark.parametrize(
    "upload", ["../secret.csv", "/etc/passwd", "a/b.csv", "x.txt", "missing.csv"]
)
def test_an_upload_param_is_a_stored_file_name_and_nothing_else(world: World, upload: str) -> None:
    r = world.client.post(
        "/api/v1/jobs",
        json={"kind": "abtest", "params": {"experiment": "e", "source": "csv", "upload": upload}},
    )
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][:2] == ["params", "upload"] or "upload" in r.json()["error"]
