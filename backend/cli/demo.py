"""``recflow demo``: the main job end to end on whatever the settings point at.

With nothing configured that is the embedded stack: SQLite, the SQLite Celery broker, local
Spark and the landing directory. It starts the API and a worker, drives everything through the
REST API as a user would, and prints what each job did.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import typer

from backend.cli.client import ApiClient
from backend.cli.jobs import print_job, watch
from backend.cli.output import console, fail
from backend.cli.stack import running_stack
from backend.config import get_settings
from backend.streaming.loop import LatentSpec

Step = Callable[[ApiClient], None]


def _run_job(c: ApiClient, title: str, kind: str, params: dict[str, Any]) -> dict[str, Any]:
    console.rule(f"[bold]{title}")
    console.print(f"POST /api/v1/jobs kind={kind} params={params}")
    job = c.submit(kind, params)
    job = watch(c, job["id"], quiet=False)
    print_job(job)
    if job["state"] != "succeeded":
        fail(f"{kind} job {job['id']} ended {job['state']}: {job.get('error')}")
    return job


def step_platform(c: ApiClient) -> None:
    _run_job(
        c,
        "1. platform: an echo job through the queue",
        "echo",
        {"message": "hello from the demo", "sleep_s": 0.6, "stages": 3},
    )


EXPERIMENT = "home"
#: The latent-factor model of the demo's ratings: the model is trained on them and the closed
#: loop's simulated users click by the same truth, so a better ranking earns more clicks.
DEMO_LATENT = LatentSpec()


def step_events(c: ApiClient) -> None:
    """Write events into the landing directory, as producers would into Kafka."""
    from backend.streaming.producer import DirSink, produce_sync
    from backend.streaming.simulator import TrafficSpec, replay_ratings, simulate_traffic

    settings = get_settings()
    console.rule("[bold]2. events: rating replays and A/B traffic into the landing directory")
    data = DEMO_LATENT.generate()
    frame = data.ratings.frame
    rated = produce_sync(replay_ratings(frame), DirSink(settings.landing_dir, prefix="ratings"))
    # Event times end now (10 ms apart), so the monitor's windows hold them.
    from backend.streaming.events import now_ms

    spec = TrafficSpec(
        start_ms=now_ms() - 40_000 * 10,
        step_ms=10,
        seed=5,
        users=3000,
        items=400,
        experiment=EXPERIMENT,
        ctr={"A": 0.05, "B": 0.065},
        malformed_fraction=0.01,
        duplicate_fraction=0.01,
    )
    traffic = produce_sync(
        simulate_traffic(spec), DirSink(settings.landing_dir, prefix="traffic"), count=40_000
    )
    bad = sum(v for k, v in traffic.expected.items() if k != "valid")
    console.print(
        f"{rated.sent:,} rating events (synthetic latent-factor data, 600 users x 400 items) and "
        f"{traffic.sent:,} impression/click events of experiment {EXPERIMENT!r} (CTR A 5%, B 6.5%;"
        f" {bad} deliberately malformed, {traffic.duplicates} duplicated) "
        f"in {settings.landing_dir}/"
    )


def step_ingest(c: ApiClient) -> None:
    job = _run_job(c, "3. ingest: Spark Structured Streaming into the Parquet lake", "ingest", {})
    r = job["result"]
    console.print(
        f"rows in {r['rows_in']:,}: {r['valid']:,} valid to the lake, "
        f"{r['quarantined_total']} quarantined {r['quarantined']}, {r['duplicates']} duplicates "
        f"dropped; {r['events_per_s']:,.0f} events/s"
    )


def _monitor_pass(c: ApiClient) -> dict[str, Any]:
    """One pass of the landing-directory monitor over every landed event, then the 1-hour
    window's summary as the API answers it."""
    import asyncio

    from backend.cli.monitor import options_from_settings
    from backend.monitoring.alert_store import AlertStore
    from backend.monitoring.consumer import Monitor
    from backend.monitoring.landing import run_landing
    from backend.monitoring.snapshots import store_for

    settings = get_settings()
    opts = options_from_settings(settings, bootstrap_servers=f"landing:{settings.landing_dir}")
    mon = Monitor(opts, store_for(settings), AlertStore(settings.sqlalchemy_url))
    asyncio.run(run_landing(mon, settings.landing_dir, asyncio.Event(), once=True))
    summary: dict[str, Any] = c.request(
        "GET", "/api/v1/monitoring/summary", params={"window": "1h"}
    )
    return summary


def step_monitor(c: ApiClient) -> None:
    console.rule("[bold]4. live monitor: windows over the event source, read through the API")
    import logging

    # The monitor logs each malformed record it skips; the demo's totals below count them.
    logging.getLogger("backend.monitoring").setLevel(logging.ERROR)
    summary = _monitor_pass(c)
    for v in summary["variants"]:
        console.print(
            f"GET /api/v1/monitoring/summary: {v['experiment']}/{v['variant']}: "
            f"{v['impressions']:,} impressions, {v['clicks']:,} clicks, CTR {v['ctr']:.2%}"
        )
    t = summary["totals"]
    console.print(f"monitor totals: {t['consumed']:,} read, {t['invalid']} malformed skipped")


def step_train(c: ApiClient) -> None:
    job = _run_job(
        c,
        "5. train: SVD on the lake's ratings, 3-fold CV, promotion gate",
        "train",
        {
            "data": {"format": "lake"},
            "validate_k": 3,
            "n_jobs": 2,
            "model": {"params": {"n_factors": 20, "n_epochs": 25, "random_state": 0}},
        },
    )
    r = job["result"]
    console.print(
        f"model {r['version']}: CV RMSE {r['metrics']['cv_rmse']:.4f}; "
        f"active: {r['activated']} ({r['activation_reason']})"
    )


def step_validate(c: ApiClient) -> None:
    job = _run_job(
        c,
        "6. validate: k-fold CV (ours and surprise's), baselines, ranking",
        "validate",
        {
            "data": {"format": "lake"},
            "k": 3,
            "n_jobs": 2,
            "model": {"params": {"n_factors": 20, "n_epochs": 25}},
        },
    )
    r = job["result"]
    for s in [r["model"], *r["baselines"]]:
        console.print(
            f"{s['algorithm']:>12}: RMSE {s['rmse']['mean']:.4f} ± {s['rmse']['std']:.4f}"
            f", MAE {s['mae']['mean']:.4f}, MPE {s['mpe']['mean']:+.2f}%"
        )
    console.print(
        f"surprise cross_validate on the same folds: max |difference| "
        f"{r['surprise']['max_abs_difference']:.1e}"
    )
    for x in r["ranking"]["results"]:
        console.print(
            f"{x['algorithm']:>12}: precision@10 {x['precision@10']:.3f}, "
            f"NDCG@10 {x['ndcg@10']:.3f}, hit rate {x['hit_rate']:.3f}"
        )


def step_serve(c: ApiClient) -> None:
    console.rule("[bold]7. serving from memory: top-N, cold start, similar items, what-if")
    deadline = time.monotonic() + 30
    while True:
        try:
            r = c.http.get("/api/v1/users/u7/recommendations", params={"n": 5})
        except Exception as exc:  # keep trying until the deadline
            r = None
            last = str(exc)
        if r is not None and r.status_code == 200:
            break
        last = r.text if r is not None else last
        if time.monotonic() > deadline:
            fail(f"no recommendations within 30 s: {last}")
        time.sleep(0.5)
    t0 = time.perf_counter()
    out = c.request("GET", "/api/v1/users/u7/recommendations", params={"n": 5})
    ms = (time.perf_counter() - t0) * 1000
    items = ", ".join(f"{i['item']} ({i['score']:.2f})" for i in out["items"])
    console.print(f"u7 ({out['strategy']}, {out['model_version']}, {ms:.1f} ms over HTTP): {items}")
    cold = c.request("GET", "/api/v1/users/someone-new/recommendations", params={"n": 5})
    console.print(
        f"unknown user: strategy {cold['strategy']}: {', '.join(i['item'] for i in cold['items'])}"
    )
    sim = c.request("GET", f"/api/v1/items/{out['items'][0]['item']}/similar", params={"n": 3})
    similar = ", ".join(f"{i['item']} ({i['score']:.2f})" for i in sim["items"])
    console.print(f"similar to {sim['item']}: {similar}")
    wi = c.request(
        "POST", "/api/v1/users/u7/what-if", json={"ratings": {out["items"][0]["item"]: 1.0}, "n": 5}
    )
    console.print(
        f"what if u7 rated {out['items'][0]['item']} 1/5: "
        f"{', '.join(i['item'] for i in wi['items'])}"
    )


def step_abtest(c: ApiClient) -> None:
    console.rule(f"[bold]8. A/B analysis of {EXPERIMENT!r} from the lake")
    job = c.request("POST", f"/api/v1/experiments/{EXPERIMENT}/analyze", json={})
    job = watch(c, job["id"], quiet=False)
    if job["state"] != "succeeded":
        fail(f"abtest job {job['id']} {job['state']}: {job.get('error')}")
    from backend.cli.abtest import print_analysis

    print_analysis(job["result"])
    console.print(
        f"chart: GET /api/v1/experiments/{EXPERIMENT}/analyses/"
        f"{job['result']['analysis_id']}/chart.png"
    )


def _landed_impressions(experiment: str) -> int:
    """Impression events of ``experiment`` serving has written to the landing directory."""
    import orjson

    count = 0
    for path in get_settings().landing_dir.glob("impressions-*.jsonl"):
        for line in path.read_bytes().splitlines():
            event = orjson.loads(line)
            if event.get("type") == "impression" and event.get("experiment") == experiment:
                count += 1
    return count


def step_loop(c: ApiClient) -> None:
    """The closed loop: the trained model against popularity, judged by simulated users."""
    from backend.cli.abtest import print_analysis
    from backend.cli.streaming import print_loop
    from backend.streaming.loop import LoopSpec, run_loop

    # A fresh name per run: the data directory (and its lake) outlives a demo run.
    name = f"loop-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    console.rule(f"[bold]9. closed loop: experiment {name!r}, trained model vs popular")
    for e in c.request("GET", "/api/v1/experiments")["items"]:
        if e["status"] == "running":  # one runs at a time: e.g. a loop an earlier run left
            c.request("POST", f"/api/v1/experiments/{e['experiment']}/stop")
    models = c.request("GET", "/api/v1/models", params={"limit": 500})["items"]
    active = next(m["version"] for m in models if m["active"])
    c.request(
        "POST",
        "/api/v1/experiments",
        json={
            "name": name,
            "variants": [
                {"name": "model", "weight": 50, "model_version": active},
                {"name": "popular", "weight": 50, "strategy": "popular"},
            ],
        },
    )
    c.request("POST", f"/api/v1/experiments/{name}/start")
    console.print(f"variants: model ({active}) and popular, 50/50; waiting for serving to run it")
    # Every one of the latent model's 600 users asks twice for 10 items: ~6,000 impressions per
    # variant, far more than the size plan below asks for at the true CTRs.
    spec = LoopSpec(experiment=name, requests_per_user=2, seed=3)
    try:
        summary = run_loop(c.http, DEMO_LATENT.generate(), spec)
    finally:
        c.request("POST", f"/api/v1/experiments/{name}/stop")
    out = summary.as_dict()
    print_loop(out)
    pop, model = out["variants"]["popular"], out["variants"]["model"]
    plan = c.request(
        "GET",
        "/api/v1/experiments/sample-size",
        params={
            "baseline_ctr": pop["true_ctr"],
            "mde_abs": max(model["true_ctr"] - pop["true_ctr"], 1e-4),
            "alpha": 0.01,
            "power": 0.95,
        },
    )
    console.print(
        f"size plan at the true CTRs ({pop['true_ctr']:.2%} vs {model['true_ctr']:.2%}), alpha "
        f"0.01, power 0.95: {plan['units_control']:,} impressions per variant; shown "
        f"{min(pop['impressions'], model['impressions']):,}"
    )
    # Serving writes impressions from a buffer, about once a second: ingest once all landed.
    deadline = time.monotonic() + 30
    while (landed := _landed_impressions(name)) < summary.impressions:
        if time.monotonic() > deadline:
            fail(f"serving logged {landed} of the {summary.impressions} impressions within 30 s")
        time.sleep(0.3)
    _run_job(c, "9b. ingest the loop's impressions and clicks", "ingest", {})
    console.rule("[bold]9c. A/B analysis of the loop from the lake: CTR per user, delta method")
    params = {"experiment": name, "source": "lake", "control": "popular", "alpha": 0.01}
    console.print(f"POST /api/v1/jobs kind=abtest params={params}")
    job = watch(c, c.submit("abtest", params)["id"], quiet=False)
    if job["state"] != "succeeded":
        fail(f"abtest job {job['id']} {job['state']}: {job.get('error')}")
    print_analysis(job["result"])
    _print_monitor(c, name)


def _print_monitor(c: ApiClient, name: str) -> None:
    """The live monitor's view of the loop: CTR per variant and per model version."""
    summary = _monitor_pass(c)
    for v in summary["variants"]:
        if v["experiment"] == name:
            console.print(
                f"monitor: {name}/{v['variant']}: {v['impressions']:,} impressions, "
                f"{v['clicks']:,} clicks, CTR {v['ctr']:.2%}"
            )
    for m in summary.get("models", []):
        if m["experiment"] == name:
            console.print(
                f"monitor: model version {m['model_version']} ({m['variant']}): "
                f"{m['impressions']:,} impressions, {m['clicks']:,} clicks, CTR {m['ctr']:.2%}"
            )


def step_report(c: ApiClient) -> None:
    _run_job(c, "10. pipeline report: time per stage across the runs above", "report", {})
    settings = get_settings()
    html = c.http.get("/api/v1/reports/pipeline.html")
    out = settings.data_dir / "reports" / "pipeline.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(html.content)
    report = c.request("GET", "/api/v1/reports/pipeline")
    from backend.cli.report import print_report

    print_report(report)
    console.print(f"HTML report with charts: {out}")


STEPS: list[Step] = [
    step_platform,
    step_events,
    step_ingest,
    step_monitor,
    step_train,
    step_validate,
    step_serve,
    step_abtest,
    step_loop,
    step_report,
]


def demo(
    worker_concurrency: int = typer.Option(2, min=1, help="Celery worker processes"),
) -> None:
    """Start the API and a worker, run the main jobs end to end, print results and timings."""
    from backend.db.migrate import upgrade

    settings = get_settings()
    settings.ensure_dirs()
    console.print(
        f"Recflow demo on the {settings.env} settings: database {settings.sqlalchemy_url}, "
        f"broker {settings.celery_broker_url.split('@')[-1]}, data under {settings.data_dir}/"
    )
    upgrade(settings.sqlalchemy_url)
    t0 = time.perf_counter()
    with running_stack(settings.data_dir / "logs", worker_concurrency=worker_concurrency) as st:
        console.print(f"API at {st.api_url} (docs at {st.api_url}/docs); logs in {st.log_dir}/")
        c = ApiClient(
            st.api_url, api_key=settings.api_key.get_secret_value() if settings.api_key else None
        )
        for step in STEPS:
            step(c)
    console.rule()
    console.print(f"[bold green]demo finished[/] in {time.perf_counter() - t0:.1f} s")
