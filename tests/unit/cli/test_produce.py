"""``recflow produce``: simulated traffic from the command line, into the landing directory."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from backend.cli.app import app
from backend.config import get_settings
from backend.streaming.assignment import assign_variant
from backend.streaming.events import Event
from backend.streaming.simulator import TrafficSpec, parse_ctr, simulate_traffic
from backend.streaming.validation import validate_event


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("RECFLOW_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def produce(*args: str) -> Result:
    return CliRunner().invoke(app, ["produce", *args])


def landed(data_dir: Path) -> list[Event]:
    lines = [
        line for f in (data_dir / "landing").glob("*.jsonl") for line in f.read_bytes().split()
    ]
    events = [validate_event(line) for line in lines]
    assert all(isinstance(e, Event) for e in events)
    return [e for e in events if isinstance(e, Event)]


def test_the_cli_and_the_simulator_put_each_user_in_the_same_variant(data_dir: Path) -> None:
    ctr = "A=0.1,B=0.2,C=0.3"
    result = produce(
        "--simulate", "--ctr", ctr, "--experiment", "home", "--users", "300",
        "--count", "3000", "--seed", "5", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    from_cli = {e.user: e.variant for e in landed(data_dir)}
    spec = TrafficSpec(seed=5, users=300, experiment="home", ctr=parse_ctr(ctr))
    from_api = {
        e.user: e.variant
        for o in itertools.islice(simulate_traffic(spec), 3000)
        if isinstance(e := validate_event(o.value), Event)
    }
    assert len(from_cli) > 250 and from_cli.keys() == from_api.keys()
    assert from_cli == from_api
    assert from_cli == {u: assign_variant("home", u, ["A", "B", "C"]) for u in from_cli}


def test_the_summary_counts_impressions_and_clicks_per_variant(data_dir: Path) -> None:
    result = produce("--simulate", "--ctr", "A=0.05,B=0.5", "--count", "2000", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    counted = Counter((e.variant, e.type) for e in landed(data_dir))
    assert out["sent"] == out["expected"]["valid"] == 2000
    assert out["configured_ctr"] == {"A": 0.05, "B": 0.5}
    for variant in ("A", "B"):
        got = out["variants"][variant]
        assert got["impression"] == counted[(variant, "impression")]
        assert got["click"] == counted[(variant, "click")]
        assert got["ctr"] == got["click"] / got["impression"]
    assert out["sink"].startswith("dir://")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ctr", "A=1.5"], "bad --ctr entry 'A=1.5'"),
        (["--ctr", "A=0.1,A=0.2"], "'A' is given twice"),
        (["--ctr", "A0.1"], "write VARIANT=CTR pairs"),
        (["--ctr", ""], "at least one VARIANT=CTR pair"),
        (["--topic", "other"], "--topic needs Kafka"),
    ],
)
def test_bad_settings_fail_with_a_message_and_send_nothing(
    data_dir: Path, args: list[str], message: str
) -> None:
    result = produce("--simulate", "--count", "10", *args)
    assert result.exit_code == 1
    assert message in " ".join(result.output.split())
    assert not list((data_dir / "landing").glob("*.jsonl"))


def test_simulated_traffic_needs_an_end(data_dir: Path) -> None:
    result = produce("--simulate")
    assert result.exit_code == 1 and "--count or --duration" in result.output


def test_a_variant_that_never_gets_a_click_is_reported_with_zero_clicks(data_dir: Path) -> None:
    result = produce(
        "--simulate", "--ctr", "A=0,B=0.5", "--users", "50", "--count", "200", "--seed", "1",
        "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    variants = json.loads(result.output)["variants"]
    assert variants["A"]["click"] == 0 and variants["A"]["impression"] > 0
    assert variants["A"]["ctr"] == 0.0 and variants["B"]["click"] > 0
