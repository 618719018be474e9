"""The shutdown event ends an open SSE stream at once (the signal side: tests/integration)."""

from __future__ import annotations

import asyncio
import signal

from fastapi.testclient import TestClient

from backend.api.shutdown import Shutdown


def test_a_stream_ends_with_an_end_event_when_the_server_stops(client: TestClient) -> None:
    shutdown: Shutdown = client.app.state.shutdown  # type: ignore[attr-defined]
    received = ""
    with client.stream("GET", "/api/v1/monitoring/stream", params={"max_s": 3600}) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            received += line + "\n"
            if line.startswith("event: waiting") and not shutdown.stopping:
                shutdown.set_threadsafe()  # what the SIGTERM handler does
    assert "event: end" in received and "server shutting down" in received


def test_a_hanging_read_does_not_hold_a_stop() -> None:
    async def scenario() -> tuple[bool, object]:
        shutdown = Shutdown()
        shutdown.install()
        try:
            never = asyncio.get_running_loop().create_future()  # a read that never answers
            asyncio.get_running_loop().call_later(0.05, shutdown.set_threadsafe)
            return await shutdown.unless_stopping(never)
        finally:
            shutdown.uninstall()  # gives pytest its signal handlers back

    stopped, value = asyncio.run(scenario())
    assert stopped is True and value is None


def test_sleep_wakes_when_stopping_and_not_otherwise() -> None:
    async def scenario() -> tuple[bool, bool]:
        shutdown = Shutdown()
        shutdown.install()
        try:
            quiet = await shutdown.sleep(0.01)
            asyncio.get_running_loop().call_later(0.01, shutdown.set_threadsafe)
            woken = await shutdown.sleep(60)
        finally:
            shutdown.uninstall()
        return quiet, woken

    assert asyncio.run(scenario()) == (False, True)


def test_install_chains_the_servers_handler_and_uninstall_restores_it() -> None:
    calls: list[int] = []

    def server_handler(signum: int, frame: object) -> None:
        calls.append(signum)

    async def scenario() -> bool:
        shutdown = Shutdown()
        shutdown.install()
        try:
            signal.raise_signal(signal.SIGTERM)
            await asyncio.sleep(0.01)
            return shutdown.stopping
        finally:
            shutdown.uninstall()

    before = signal.signal(signal.SIGTERM, server_handler)
    try:
        assert asyncio.run(scenario()) is True
        assert calls == [signal.SIGTERM]  # the server's own handler still ran
        assert signal.getsignal(signal.SIGTERM) is server_handler
    finally:
        signal.signal(signal.SIGTERM, before)
