"""``recflow produce``, ``recflow ingest`` and ``recflow lake``: events into the lake."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from backend.cli.inline import run_inline
from backend.cli.output import console, emit_json, fail, table
from backend.config import get_settings
from backend.jsonable import to_jsonable
from backend.streaming.simulator import Popularity

lake_app = typer.Typer(help="The Parquet lake.", no_args_is_help=True)


def _sink(topic: str | None) -> Any:
    from backend.streaming.producer import DirSink, KafkaSink, ProducerError, ensure_topic

    s = get_settings()
    if s.kafka_bootstrap_servers:
        name = topic or s.kafka_topic
        try:
            ensure_topic(s.kafka_bootstrap_servers, name)
        except (ProducerError, OSError) as exc:
            fail(f"Kafka at {s.kafka_bootstrap_servers} is not reachable: {exc}")
        return KafkaSink(s.kafka_bootstrap_servers, name)
    if topic is not None:
        fail("--topic needs Kafka: set RECFLOW_KAFKA_BOOTSTRAP_SERVERS (e.g. kafka:9092)")
    return DirSink(s.landing_dir)


def produce(
    replay: str | None = typer.Option(
        None,
        help="replay ratings as rating events: FORMAT:PATH, e.g. ml-100k:../shared/data/ml-100k",
    ),
    simulate: bool = typer.Option(False, help="simulate A/B traffic (impressions and clicks)"),
    ctr: str = typer.Option("A=0.05,B=0.06", help="simulated CTR per variant"),
    experiment: str = typer.Option("exp1", help="experiment of the simulated traffic"),
    users: int = typer.Option(1000, min=1),
    items: int = typer.Option(500, min=1),
    popularity: Popularity = typer.Option(
        "uniform", help="how simulated items are picked: uniform, or zipf (a few get most)"
    ),
    rate: float | None = typer.Option(None, min=0.001, help="events per second (default: max)"),
    count: int | None = typer.Option(None, min=1, help="stop after this many events"),
    duration: float | None = typer.Option(None, min=0.001, help="stop after this many seconds"),
    malformed: float = typer.Option(0.0, min=0, max=1, help="fraction of malformed events"),
    seed: int = typer.Option(0, help="random seed: the same seed sends the same traffic"),
    topic: str | None = typer.Option(None, help="Kafka topic (default: RECFLOW_KAFKA_TOPIC)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Publish events: to Kafka when configured, else to the landing directory.

    With --simulate, users are assigned to variants by the shared hash and each impression is
    clicked at its variant's CTR; with --rate, events carry the wall clock as their time.
    """
    from backend.streaming.producer import ProducerError, produce_sync
    from backend.streaming.simulator import (
        TrafficSpec,
        parse_ctr,
        replay_ratings,
        simulate_traffic,
    )

    if (replay is None) == (not simulate):
        fail("give --replay FORMAT:PATH or --simulate")
    if simulate and count is None and duration is None:
        fail("--simulate needs --count or --duration (the traffic never ends by itself)")
    spec: TrafficSpec | None = None
    if replay is not None:
        from backend.recsys.datasets import RatingsSource, load_ratings
        from backend.recsys.errors import DataError

        fmt, _, path = replay.partition(":")
        try:
            ratings = load_ratings(RatingsSource(format=fmt, path=Path(path)))  # type: ignore[arg-type]
        except (DataError, OSError) as exc:
            fail(f"cannot read {replay}: {exc}")
        events = replay_ratings(ratings.frame)
        total: int | None = count or ratings.n_ratings
    else:
        try:
            rates = parse_ctr(ctr)
        except ValueError as exc:
            fail(str(exc))
        try:
            spec = TrafficSpec(
                seed=seed,
                users=users,
                items=items,
                experiment=experiment,
                ctr=rates,
                popularity=popularity,
                realtime=rate is not None,
                malformed_fraction=malformed,
                rules=get_settings().event_rules(),
            )
        except ValueError as exc:
            fail(f"bad simulation settings: {exc}")
        events = simulate_traffic(spec)
        total = count
    sink = _sink(topic)
    with Progress(
        TextColumn(f"producing to {sink.describe()}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:,.0f} events/s"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=as_json,
    ) as bar:
        task = bar.add_task("produce", total=total, rate=0.0)

        def progress(sent: int, _total: int | None) -> None:
            elapsed = bar.tasks[task].elapsed or 1e-9
            bar.update(task, completed=sent, rate=sent / elapsed)

        try:
            result = produce_sync(
                events, sink, rate=rate, count=count, duration_s=duration, progress=progress
            )
        except ProducerError as exc:
            fail(str(exc))
    out: dict[str, Any] = {
        "sent": result.sent,
        "duration_s": round(result.duration_s, 3),
        "events_per_s": round(result.sent / max(result.duration_s, 1e-9), 1),
        "expected": result.expected,
        "duplicates": result.duplicates,
        "sink": sink.describe(),
    }
    if spec is not None:
        out["configured_ctr"] = dict(spec.ctr)
        out["variants"] = {
            v: {
                "impression": c.get("impression", 0),
                "click": c.get("click", 0),
                "ctr": c.get("click", 0) / c["impression"] if c.get("impression") else None,
            }
            for v, c in result.variants.items()
        }
    if as_json:
        emit_json(out)
        return
    console.print(
        f"sent {out['sent']:,} events to {out['sink']} in {out['duration_s']} s "
        f"({out['events_per_s']:,.0f}/s)"
    )
    for variant, c in out.get("variants", {}).items():
        observed = "-" if c["ctr"] is None else f"{c['ctr']:.4f}"
        console.print(
            f"  {variant}: {c['impression']:,} impressions, {c['click']:,} clicks, CTR "
            f"{observed} (configured {out['configured_ctr'][variant]})"
        )


def print_loop(out: dict[str, Any]) -> None:
    """The loop's summary (``LoopSummary.as_dict()``) as a table per variant."""
    table(
        f"closed loop{' on experiment ' + out['experiment'] if out['experiment'] else ''}: "
        f"{out['requests']:,} requests in {out['duration_s']} s",
        ["variant", "users", "impressions", "clicks", "CTR", "true CTR", "served by"],
        [
            (
                name,
                f"{v['users']:,}",
                f"{v['impressions']:,}",
                f"{v['clicks']:,}",
                "-" if v["ctr"] is None else f"{v['ctr']:.2%}",
                "-" if v["true_ctr"] is None else f"{v['true_ctr']:.2%}",
                ", ".join(f"{k} ({n:,})" for k, n in v["model_versions"].items()),
            )
            for name, v in out["variants"].items()
        ],
    )
    console.print(
        f"{out['clicks_sent']:,} clicks posted in {out['feedback_batches']} feedback batches "
        f"({out['rejected']} rejected); {out['warmup_requests']} requests before serving ran the "
        f"experiment, {out['outside']} impressions outside it, "
        f"{out['unknown_items']} items unknown to the latent model"
    )


def simulate_loop(
    experiment: str | None = typer.Option(
        None, help="the running experiment to wait for and click in (default: none)"
    ),
    users: int | None = typer.Option(
        None, min=1, help="simulated users u0..u{N-1} (default: all of the latent model's)"
    ),
    requests_per_user: int = typer.Option(1, min=1, help="requests each user makes"),
    n: int = typer.Option(10, "--n", "-n", min=1, max=1000, help="items per list"),
    base_ctr: float = typer.Option(
        0.02, min=1e-6, max=0.999999, help="true click probability at zero affinity"
    ),
    slope: float = typer.Option(0.8, min=0, help="log-odds of a click per rating point"),
    concurrency: int = typer.Option(4, min=1, max=64, help="requests in flight"),
    batch_size: int = typer.Option(500, min=1, help="clicks per feedback request"),
    seed: int = typer.Option(0, help="click seed: the same answers get the same clicks"),
    latent_users: int = typer.Option(600, min=2, help="latent model: users"),
    latent_items: int = typer.Option(400, min=2, help="latent model: items"),
    latent_ratings: int = typer.Option(30_000, min=1, help="latent model: ratings"),
    latent_rank: int = typer.Option(8, min=1, help="latent model: rank"),
    latent_seed: int = typer.Option(11, help="latent model: seed"),
    api: str | None = typer.Option(None, "--api", help="API base URL (default: RECFLOW_API_URL)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Closed-loop traffic: simulated users request recommendations over HTTP and click.

    Users and items come from a seeded latent-factor model (the defaults are the demo's data,
    `recflow datasets synth` with the same arguments writes its ratings); each shown item is
    clicked with its true probability, and the clicks are posted to /api/v1/feedback with the
    answer's experiment, variant, recommendation id and model version. Serving logs the
    impressions.
    """
    from backend.cli.jobs import client
    from backend.recsys.errors import DataError
    from backend.streaming.loop import LatentSpec, LoopError, LoopSpec, run_loop

    try:
        data = LatentSpec(
            latent_users, latent_items, latent_ratings, latent_rank, latent_seed
        ).generate()
        spec = LoopSpec(
            experiment=experiment,
            users=users,
            requests_per_user=requests_per_user,
            n=n,
            seed=seed,
            base_ctr=base_ctr,
            slope=slope,
            concurrency=concurrency,
            batch_size=batch_size,
        )
    except (DataError, ValueError) as exc:
        fail(f"bad loop settings: {exc}")
    try:
        out = run_loop(client(api).http, data, spec).as_dict()
    except (LoopError, DataError, ValueError) as exc:
        fail(str(exc))
    emit_json(out) if as_json else print_loop(out)


def ingest(
    follow: bool = typer.Option(False, help="keep running (Ctrl-C or cancel to stop)"),
    source: str = typer.Option("auto", help="auto, kafka or dir"),
    max_duration: float | None = typer.Option(None, help="with --follow: stop after seconds"),
    trigger_s: float = typer.Option(
        5.0, min=0.001, help="with --follow: seconds between micro-batches"
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Ingest events into the lake with Spark (availableNow by default)."""
    params: dict[str, Any] = {"source": source, "follow": follow}
    if follow:
        params["trigger_s"] = trigger_s
    if max_duration:
        params["max_duration_s"] = max_duration
    job = run_inline("ingest", params, quiet=as_json)
    if job["state"] != "succeeded":
        fail(f"ingest {job['state']}: {job.get('error')}")
    if as_json:
        emit_json(job["result"])
        return
    r = job["result"]
    console.print(
        f"rows in {r['rows_in']:,}: {r['valid']:,} to the lake, {r['quarantined_total']:,} "
        f"quarantined {r['quarantined']}, {r['duplicates']:,} duplicates dropped, "
        f"{r['batches']} batches, {r['events_per_s']:,.0f} events/s"
    )


@lake_app.command()
def compact(
    target_file_mb: float = typer.Option(128.0, help="target file size"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Rewrite each date partition's small files into a few large ones."""
    from backend.pipeline.compact import compact as run

    lake = get_settings().lake_dir
    if not lake.is_dir():
        fail(f"no lake at {lake}; run `recflow ingest` first")
    out = to_jsonable(run(lake, target_file_mb))
    emit_json(out) if as_json else console.print(json.dumps(out))


@lake_app.command()
def stats(as_json: bool = typer.Option(False, "--json")) -> None:
    """Rows per event type and the quarantine's reasons."""
    from backend.lake.readers import LakeEmptyError, read_events, read_quarantine

    lake = get_settings().lake_dir
    try:
        events = read_events(lake)
    except LakeEmptyError as exc:
        fail(str(exc))
    out: dict[str, Any] = {
        "events": len(events),
        "by_type": events["type"].value_counts().to_dict(),
    }
    try:
        q = read_quarantine(lake)
        out["quarantined"] = len(q)
        out["quarantine_reasons"] = q["reason"].value_counts().to_dict()
    except LakeEmptyError:
        out["quarantined"] = 0
    emit_json(out) if as_json else console.print_json(json.dumps(out, default=str))
