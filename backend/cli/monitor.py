"""``recflow monitor``: the live monitor (traffic for it: ``recflow produce --simulate``)."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

import typer

from backend.cli.output import console, fail
from backend.config import Settings, get_settings
from backend.monitoring.alert_store import AlertStore
from backend.monitoring.alerts import AlertRules
from backend.monitoring.consumer import Monitor, MonitorOptions
from backend.monitoring.snapshots import store_for


def options_from_settings(settings: Settings, **overrides: Any) -> MonitorOptions:
    """Monitor options from Settings; ``monitor_*`` fields fall back to the defaults below
    until Settings declares them."""

    def pick(name: str, default: Any) -> Any:
        return getattr(settings, name, default)

    rules = AlertRules(
        ctr_drop_pct=pick("monitor_alert_ctr_drop_pct", 30.0),
        ctr_min_impressions=pick("monitor_alert_ctr_min_impressions", 200),
        lag_max=pick("monitor_alert_lag_max", 10_000),
        idle_after_s=pick("monitor_alert_idle_s", 60.0),
    )
    base: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "topic": settings.kafka_topic,
        "group_id": settings.kafka_monitor_group,
        "snapshot_interval_s": pick("monitor_snapshot_interval_s", 1.0),
        "validate_workers": pick("monitor_validate_workers", 1),
        "rules": rules,
        "validation": settings.event_rules(),
    }
    base.update({k: v for k, v in overrides.items() if v is not None})
    return MonitorOptions(**base)


def monitor(
    topic: str = typer.Option(None, help="topic to watch (default: RECFLOW_KAFKA_TOPIC)"),
    group: str = typer.Option(None, help="consumer group (default: RECFLOW_KAFKA_MONITOR_GROUP)"),
    from_beginning: bool = typer.Option(
        False, help="a group without committed offsets starts at the oldest event, not the newest"
    ),
    validate_workers: int = typer.Option(
        None, min=0, help="extra processes that validate records (default 1; 0 = inline only)"
    ),
    once: bool = typer.Option(
        False, help="embedded mode: count the landing directory once, publish, and exit"
    ),
) -> None:
    """Run the live monitor: consume the interactions topic, publish snapshots, raise alerts.

    Without Kafka configured it watches the landing directory (the embedded event source).
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = get_settings()
    landing = not settings.kafka_bootstrap_servers
    try:
        opts = options_from_settings(
            settings,
            topic=topic,
            group_id=group,
            auto_offset_reset="earliest" if from_beginning else None,
            validate_workers=validate_workers,
            **({"bootstrap_servers": f"landing:{settings.landing_dir}"} if landing else {}),
        )
    except ValueError as exc:
        fail(str(exc))
    if once and not landing:
        fail("--once is for the landing directory (embedded mode); Kafka is configured")
    store = store_for(settings)
    mon = Monitor(opts, store, AlertStore(settings.sqlalchemy_url))
    source = (
        f"the landing directory {settings.landing_dir}"
        if landing
        else f"[bold]{opts.topic}[/] on {opts.bootstrap_servers} as group {opts.group_id}"
    )
    console.print(f"monitoring {source}; snapshots to {type(store).__name__}; Ctrl-C stops")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if landing:
            from backend.monitoring.landing import run_landing

            await run_landing(mon, settings.landing_dir, stop, once=once)
        else:
            await mon.run(stop)

    asyncio.run(main())
    console.print(f"monitor stopped after {mon.totals.consumed} records")
