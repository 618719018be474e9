"""Every job param is reachable from the command line: flags, --param and --params-file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from backend.cli import abtest, training
from backend.cli.errors import CommandError
from backend.cli.params import NULL, assign, job_params, merge, parse_value, read_params_file
from tests.unit.cli.conftest import Recflow


def test_values_are_json_when_they_parse_and_text_otherwise() -> None:
    assert parse_value("20") == 20
    assert parse_value("true") is True
    assert parse_value("null") is None
    assert parse_value("[0.5,5]") == [0.5, 5]
    assert parse_value('{"A": 1}') == {"A": 1}
    assert parse_value(";") == ";"
    assert parse_value("svd") == "svd"


def test_dotted_keys_set_nested_fields_and_objects_merge() -> None:
    params = assign({"data": {"format": "csv"}}, "data.scale", [0.5, 5])
    params = assign(params, "ranking.k", 20)
    assert params == {"data": {"format": "csv", "scale": [0.5, 5]}, "ranking": {"k": 20}}
    assert merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}}
    with pytest.raises(CommandError, match="not an object"):
        assign({"k": 5}, "k.x", 1)
    with pytest.raises(CommandError, match="bad param key"):
        assign({}, "data..path", 1)


def test_the_file_then_the_flags_then_each_param(tmp_path: Path) -> None:
    file = tmp_path / "params.json"
    file.write_text(json.dumps({"k": 10, "seed": 7, "data": {"format": "csv", "sep": ";"}}))
    params = job_params(
        "validate",
        [("k", 3), ("seed", None), ("data.sep", "\t"), ("ranking", NULL)],
        param=["k=4", "data.user_col=uid"],
        params_file=file,
    )
    assert params == {
        "k": 4,  # --param over the flag over the file
        "seed": 7,  # a flag not given leaves the file's value
        "data": {"format": "csv", "sep": "\t", "user_col": "uid"},
        "ranking": None,  # NULL sets JSON null
    }


def test_a_yaml_params_file(tmp_path: Path) -> None:
    file = tmp_path / "p.yaml"
    file.write_text("data:\n  format: csv\n  scale: [0.5, 5]\nk: 3\n")
    assert read_params_file(file) == {"data": {"format": "csv", "scale": [0.5, 5]}, "k": 3}
    file.write_text("- not\n- an object\n")
    with pytest.raises(CommandError, match="must hold an object"):
        read_params_file(file)


@pytest.mark.parametrize(
    ("key", "named"),
    [
        ("colour", "the fields are: data, model, k, seed"),
        ("data.colour", "the fields of data are: format, path, user_col"),
        ("ranking.depth", "the fields of ranking are: n_test, k, threshold"),
    ],
)
def test_an_unknown_key_is_one_line_naming_the_valid_fields(key: str, named: str) -> None:
    with pytest.raises(CommandError) as caught:
        job_params("validate", param=[f"{key}=1"])
    assert caught.value.exit_code == 2
    assert f"unknown validate param {key!r}" in caught.value.message
    assert named in caught.value.message and "\n" not in caught.value.message


def test_free_form_objects_take_any_key() -> None:
    # Hyperparameters and grids are maps: their keys are checked by the job, not as fields.
    params = job_params("validate", param=["model.params.n_factors=50"])
    assert params == {"model": {"params": {"n_factors": 50}}}


def test_a_bad_key_from_the_command_line(recflow: Recflow) -> None:
    res = recflow("validate", "--param", "data.colour=red")
    assert res.exit_code == 2
    assert res.stderr.startswith("error: unknown validate param 'data.colour';")
    assert "rating_col" in res.stderr and res.stderr.count("\n") == 1
    res = recflow("validate", "--param", "k")
    assert res.exit_code == 2 and res.stderr == "error: --param takes KEY=VALUE, got 'k'\n"


@pytest.fixture
def submitted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """The (kind, params) each command would run, instead of running it."""
    seen: list[tuple[str, dict[str, Any]]] = []

    def capture(kind: str, params: dict[str, Any], *, quiet: bool = False) -> dict[str, Any]:
        seen.append((kind, params))
        return {"id": 1, "state": "succeeded", "params": params, "result": {}}

    monkeypatch.setattr(training, "run_inline", capture)
    monkeypatch.setattr(abtest, "run_inline", capture)
    return seen


def test_k_is_the_short_form_of_the_folds(
    recflow: Recflow, submitted: list[tuple[str, dict[str, Any]]]
) -> None:
    assert recflow("validate", "-k", "3", "--json").exit_code == 0
    assert recflow("search", "-k", "4", "--grid", '{"n_factors": [5]}', "--json").exit_code == 0
    assert [(kind, p["k"]) for kind, p in submitted] == [("validate", 3), ("search", 4)]


def test_a_csv_s_columns_and_scale_reach_the_job(
    recflow: Recflow, submitted: list[tuple[str, dict[str, Any]]], tmp_path: Path
) -> None:
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("uid;mid;stars\n")
    flags = ["-f", "csv", "--path", str(ratings), "--user-col", "uid", "--item-col", "mid",
             "--rating-col", "stars", "--timestamp-col", "none", "--scale", "0.5,5",
             "--sep", ";"]  # fmt: skip
    for command in ("train", "validate", "search"):
        extra = ["--grid", '{"n_factors": [5]}'] if command == "search" else []
        res = recflow(command, *flags, *extra, "--json")
        assert res.exit_code == 0, res.output
    expected = {"format": "csv", "path": str(ratings.resolve()), "user_col": "uid",
                "item_col": "mid", "rating_col": "stars", "timestamp_col": None,
                "scale": [0.5, 5.0], "sep": ";"}  # fmt: skip
    assert [kind for kind, _ in submitted] == ["train", "validate", "search"]
    assert all(p["data"] == expected for _, p in submitted)
    res = recflow("validate", "--scale", "5")
    assert res.exit_code == 2 and "--scale takes two numbers" in res.stderr


def test_the_model_flags_of_train_validate_and_search(
    recflow: Recflow, submitted: list[tuple[str, dict[str, Any]]]
) -> None:
    common = ["--algorithm", "svdpp", "--set", "n_factors=20", "--seed", "3", "--n-jobs", "2"]
    space = '{"lr_all": {"dist": "uniform", "low": 0.001, "high": 0.01}}'
    for args in (
        ["train", *common, "--validate-k", "3", "--activate", "never"],
        ["validate", *common, "--no-surprise", "--no-ranking", "--no-baselines"],
        ["search", *common, "--space", space, "--n-trials", "2"],
    ):
        res = recflow(*args, "--json")
        assert res.exit_code == 0, res.output
    train, validate, search = (p for _, p in submitted)
    assert train == {"model": {"algorithm": "svdpp", "params": {"n_factors": 20}}, "seed": 3,
                     "n_jobs": 2, "validate_k": 3, "activate": "never"}  # fmt: skip
    assert validate == {"model": {"algorithm": "svdpp", "params": {"n_factors": 20}}, "seed": 3,
                        "n_jobs": 2, "with_surprise": False, "baselines": False,
                        "ranking": None}  # fmt: skip
    assert search["algorithm"] == "svdpp" and search["fixed"] == {"n_factors": 20}
    assert search["strategy"] == "random" and search["n_trials"] == 2


def test_search_needs_a_grid_or_a_space(recflow: Recflow, tmp_path: Path) -> None:
    res = recflow("search")
    assert res.exit_code == 2
    assert res.stderr == "error: give --grid JSON (grid search) or --space JSON (random search)\n"
    res = recflow("search", "--grid", "{not json")
    assert res.exit_code == 2 and res.stderr.startswith("error: --grid must be JSON")


def test_abtest_analyze_options_reach_the_params(
    recflow: Recflow, submitted: list[tuple[str, dict[str, Any]]], tmp_path: Path
) -> None:
    file = tmp_path / "p.json"
    file.write_text(json.dumps({"srm": 1}))
    res = recflow("abtest", "analyze", "-e", "home", "--params-file", str(file))
    assert res.exit_code == 2 and "unknown abtest param 'srm'" in res.stderr
    file.write_text(json.dumps({"mc_samples": 100, "alpha": 0.1}))
    res = recflow(
        "abtest", "analyze", "-e", "home", "--unit", "impression", "--control", "A",
        "--alpha", "0.01", "--power", "0.9", "--expected-split", "A=1,B=3", "--fisher",
        "--yates", "--prior", "2,3", "--seed", "5", "--no-chart", "--params-file", str(file),
        "--param", "mc_samples=1000", "--json",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert submitted == [
        (
            "abtest",
            {"experiment": "home", "unit": "impression", "control": "A", "alpha": 0.01,
             "power": 0.9, "expected_split": {"A": 1.0, "B": 3.0}, "fisher": True,
             "yates": True, "prior": [2.0, 3.0], "seed": 5, "chart": False,
             "mc_samples": 1000},
        )
    ]  # fmt: skip


def test_abtest_analyze_needs_an_experiment_or_a_csv(recflow: Recflow) -> None:
    res = recflow("abtest", "analyze")
    assert res.exit_code == 2
    assert res.stderr == "error: give --experiment NAME (from the lake) or --csv FILE\n"


def test_a_csv_whose_name_is_no_experiment_name_is_analysed(
    recflow: Recflow, tmp_path: Path
) -> None:
    export = tmp_path / "my export (v2).csv"
    rows = [f"u{u},{'A' if u % 2 else 'B'},{1 + u % 3},{u % 2}" for u in range(200)]
    export.write_text("user,variant,impressions,clicks\n" + "\n".join(rows) + "\n")
    res = recflow("abtest", "analyze", "--csv", str(export), "--no-chart", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["experiment"] == "my-export-v2"
    # --experiment names the stored analysis instead.
    res = recflow("abtest", "analyze", "--csv", str(export), "-e", "homepage", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["experiment"] == "homepage"
    assert abtest.experiment_name(Path("données.csv")) == "donn-es"
    assert abtest.experiment_name(Path("数据.csv")) == "csv-export"


def test_a_half_star_csv_with_its_own_columns_validates(recflow: Recflow, tmp_path: Path) -> None:
    ratings = tmp_path / "half.csv"
    stars = [0.5, 1.5, 2.5, 3.5, 4.5, 5.0]
    rows = [f"u{u};m{(u * 7 + j) % 40};{stars[(u + j) % 6]}" for u in range(30) for j in range(12)]
    ratings.write_text("uid;mid;stars\n" + "\n".join(rows) + "\n")
    res = recflow(
        "validate", "-f", "csv", "--path", str(ratings), "--sep", ";", "--user-col", "uid",
        "--item-col", "mid", "--rating-col", "stars", "--timestamp-col", "none",
        "--scale", "0.5,5", "-k", "2", "--no-surprise", "--no-ranking", "--json",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    job = json.loads(res.stdout)
    assert job["state"] == "succeeded" and job["params"]["data"]["scale"] == [0.5, 5.0]
    assert len(job["result"]["model"]["folds"]) == 2
