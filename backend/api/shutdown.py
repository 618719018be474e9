"""Tells long-lived responses (the SSE stream) that the server is stopping.

uvicorn's graceful shutdown waits for every open connection to finish *before* it runs the
lifespan's exit, so an event set there comes too late: an open stream would hold the stop for as
long as it runs (up to an hour). Instead the API chains its own handler in front of the server's
SIGTERM and SIGINT handlers when it starts: the signal sets an asyncio event at once, streams
see it and end with ``event: end``, and the server's own handler then runs as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any, TypeVar

T = TypeVar("T")

SIGNALS = (signal.SIGTERM, signal.SIGINT)
Handler = Callable[[int, FrameType | None], Any] | int | None


class Shutdown:
    """An asyncio event set when the process is asked to stop (or the app's lifespan ends)."""

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: dict[int, Handler] = {}

    def install(self) -> None:
        """Called in the lifespan's start-up, inside the server's event loop."""
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        # Signal handlers can only be set from the main thread; a test client runs the app in
        # another one (and has no signals to catch).
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in SIGNALS:
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.set_threadsafe()
        previous = self._previous.get(signum)
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:  # no server handler: behave as if we were not here
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)

    def set_threadsafe(self) -> None:
        if self._loop is not None and self._event is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                self._loop.call_soon_threadsafe(self._event.set)

    def uninstall(self) -> None:
        """Called in the lifespan's exit: wake any stream still open, give the handlers back."""
        if self._event is not None:
            self._event.set()
        for sig, previous in self._previous.items():
            if signal.getsignal(sig) == self._on_signal:
                signal.signal(sig, previous)
        self._previous.clear()

    @property
    def stopping(self) -> bool:
        return self._event is not None and self._event.is_set()

    async def sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True when woken because the server is stopping."""
        if self._event is None:
            await asyncio.sleep(seconds)
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout=seconds)
        return self._event.is_set()

    async def unless_stopping(self, work: Awaitable[T]) -> tuple[bool, T | None]:
        """Await ``work`` unless the server starts stopping first: (stopped, result).

        A read that hangs (a snapshot store that stopped answering) cannot hold a stop.
        """
        task = asyncio.ensure_future(work)
        if self._event is None:
            return False, await task
        waiter = asyncio.ensure_future(self._event.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if task.done():
            return False, task.result()
        task.cancel()
        return True, None
