"""A shutdown with a deadline for ``CacheMetrics``' OpenTelemetry providers.

Why: the SDK's own exit hook waits for the final export, and an OTLP exporter gives a Collector
that is absent or silent its full timeout (10 s by default) with retries and back-off, printing a
warning per retry. A process whose Collector is down then takes 7-14 s to exit and prints a page
of gRPC errors. Here the providers are shut down on helper threads joined against one deadline;
whatever is still exporting then is aborted (the OTLP exporters' own ``shutdown``: a gRPC channel
close cancels the call in flight, and retries stop), and the SDK's records from those threads are
held back and summed up in one WARNING on ``yokedcache.monitoring.shutdown`` (each one is repeated
there at DEBUG).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("yokedcache.monitoring.shutdown")

#: After the deadline and the abort, how long the aborted exports get to notice (a cancelled gRPC
#: call returns at once; a socket blocked in a read does not, and is left to die with the process).
ABORT_GRACE = 0.2
_MAX_HELD = 50


class _HoldBack(logging.Filter):
    """Holds back records that the OTel SDK logs from the threads doing a bounded shutdown.

    A logger's filters see only the records created on that logger, so one instance is added to
    every ``opentelemetry.*`` logger; it passes everything from any other thread. Worker threads
    are matched while they live (an ident may be reused later); the calling thread is matched by
    ident until ``release`` (at exit the main thread already reports ``is_alive() == False``).
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._threads: dict[int, tuple[threading.Thread | None, list[logging.LogRecord]]] = {}

    def watch(self, threads: Iterable[threading.Thread], held: list[logging.LogRecord]) -> None:
        with self._lock:
            for ident, (thread, _) in list(self._threads.items()):
                if thread is not None and not thread.is_alive():
                    del self._threads[ident]
            for thread in threads:
                if thread.ident is not None:
                    self._threads[thread.ident] = (thread, held)

    def hold_caller(self, held: list[logging.LogRecord]) -> None:
        with self._lock:
            self._threads[threading.get_ident()] = (None, held)

    def release_caller(self) -> None:
        with self._lock:
            self._threads.pop(threading.get_ident(), None)

    def filter(self, record: logging.LogRecord) -> bool:
        entry = self._threads.get(record.thread or 0)
        if entry is None or (entry[0] is not None and not entry[0].is_alive()):
            return True
        if len(entry[1]) < _MAX_HELD:
            entry[1].append(record)
        return False


_hold_back = _HoldBack()


def _install_hold_back() -> None:
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if name.startswith("opentelemetry") and isinstance(logger, logging.Logger) and _hold_back not in logger.filters:
            logger.addFilter(_hold_back)
    root = logging.getLogger("opentelemetry")
    if _hold_back not in root.filters:
        root.addFilter(_hold_back)


def sdk_threads(components: Iterable[Any]) -> list[threading.Thread]:
    """The SDK worker threads of metric readers and span processors (their exports run there)."""
    found = []
    for component in components:
        for path in (("_daemon_thread",), ("_batch_processor", "_worker_thread"), ("_worker_thread",)):
            obj: Any = component
            for attr in path:
                obj = getattr(obj, attr, None)
            if isinstance(obj, threading.Thread):
                found.append(obj)
                break
    return found


@dataclass
class Outcome:
    """What a bounded shutdown left behind."""

    finished: bool
    held: list[logging.LogRecord] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return not self.finished or bool(self.errors) or any(r.levelno >= logging.WARNING for r in self.held)

    def cause(self, timeout: float) -> str:
        """The failure in words: the first recognisable cause among the SDK's held messages."""
        text = " ".join(r.getMessage() for r in self.held)
        for pattern, words in _CAUSES:
            if re.search(pattern, text, re.IGNORECASE):
                return words or f"no answer within {timeout:g} s"
        if not self.finished:
            return f"no answer within {timeout:g} s"
        first = next((r.getMessage() for r in self.held if r.levelno >= logging.WARNING), None)
        if first is None and self.errors:
            first = repr(self.errors[0])
        return (first or "unknown error")[:200]


_CAUSES = [
    (r"connection refused|ECONNREFUSED|Errno 111", "connection refused"),
    # our own abort of a call still waiting: "no answer within"
    (r"CANCELLED|Channel closed|due to timeout, max retries or shutdown", ""),
    (r"Name or service not known|nodename nor servname|getaddrinfo|DNS resolution failed", "host not found"),
    (r"certificate|SSL|TLS", "TLS handshake failed"),
    (r"DEADLINE_EXCEEDED|timed out|timeout", "no answer (timed out)"),
    (r"\b(401|403)\b|UNAUTHENTICATED|PERMISSION_DENIED", "refused by the receiver (authentication)"),
]


def bounded_shutdown(
    steps: list[Callable[[], Any]],
    workers: list[threading.Thread],
    abort: list[Callable[[], Any]],
    timeout: float,
) -> Outcome:
    """Run ``steps`` (provider shutdowns) in parallel helper threads for at most ``timeout``
    seconds; then call ``abort`` and give the exports ``ABORT_GRACE`` to stop.

    The SDK's log records from the helpers and from ``workers`` are held back, not printed.
    """
    deadline = time.monotonic() + timeout
    held: list[logging.LogRecord] = []
    errors: list[BaseException] = []

    def run(step: Callable[[], Any]) -> None:
        try:
            step()
        except Exception as exc:  # reported in the one warning
            errors.append(exc)

    helpers = [threading.Thread(target=run, args=(s,), name="yokedcache-telemetry-shutdown", daemon=True)
               for s in steps]  # fmt: skip
    _install_hold_back()
    _hold_back.hold_caller(held)
    _hold_back.watch(workers, held)
    for helper in helpers:
        helper.start()
    _hold_back.watch(helpers, held)
    try:
        for thread in (*helpers, *workers):
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [t for t in (*helpers, *workers) if t.is_alive()]
        if stuck:
            for call in abort:
                run(call)
            grace = time.monotonic() + ABORT_GRACE
            for thread in stuck:
                thread.join(max(0.0, grace - time.monotonic()))
    finally:
        _hold_back.release_caller()
    finished = not any(t.is_alive() for t in (*helpers, *workers))
    return Outcome(finished, list(held), errors)
