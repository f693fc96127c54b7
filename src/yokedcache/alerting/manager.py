"""``AlertManager``: threshold alerts on a cache, evaluated in-process, with webhook and e-mail.

For teams without Prometheus alerting (which `collector-config/prometheus/alerts.yml` covers). Rules are
evaluated on a daemon thread, so ``start()`` works before an event loop exists and a slow
webhook or mail server can never stall the application. Notifications go out on daemon
threads too, each attempt with a total deadline, so nothing here can keep the process alive:
at exit, notifications already on their way get ``shutdown_timeout`` seconds (1 s) to finish,
and are then abandoned. Each rule moves
inactive -> pending (condition true, waiting ``for_seconds``) -> firing -> inactive, and sends
exactly one notification when it starts firing and one when it resolves.

Metrics a rule can watch (:data:`ALERT_METRICS`): everything in ``get_comprehensive_metrics()``
plus circuit-breaker state, Redis connectivity, pool utilisation, memory usage ratio and
eviction rate. A metric with no value yet (no reads for ``hit_rate``; no pool on the memory
backend) leaves the rule where it is rather than firing on a made-up zero.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import math
import queue
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .. import validation
from ..telemetry.semconv import BREAKER_STATE_VALUES
from .notifiers import EmailNotifier, NotificationError, SMTPSettings, WebhookNotifier
from .rules import ALERT_METRICS, COMPARISONS, FIRING, INACTIVE, PENDING, RESOLVED, AlertRule

if TYPE_CHECKING:
    from ..cache import YokedCache

__all__ = ["AlertManager", "firing_for"]

# The logger keeps the name it had before alerting/ was split out of monitoring/: logging
# configurations filter on it (tests/test_alerts.py and tests/test_shutdown.py do).
log = logging.getLogger("yokedcache.monitoring.alerts")

_COMPREHENSIVE = (
    "hit_rate", "avg_response_time", "total_operations", "error_rate", "p50_response_time",
    "p95_response_time", "p99_response_time", "operations_per_second",
)  # fmt: skip


class _Sender:
    """One notifier's delivery queue on its own daemon thread.

    One worker per notifier: notifiers proceed independently (a slow one delays no other),
    while each one delivers in order (never "resolved" before its "firing"). A daemon thread,
    unlike a ``ThreadPoolExecutor`` worker, is not joined at interpreter exit: a notifier stuck
    on a silent peer cannot hold the process (``AlertManager`` waits a bounded time instead).
    """

    _STOP = object()

    def __init__(self, deliver: Callable[[Any, dict[str, Any]], None], notifier: Any, name: str) -> None:
        self._deliver = deliver
        self._notifier = notifier
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, payload: dict[str, Any]) -> None:
        self._queue.put(payload)

    def close(self) -> None:
        """Let the worker end once its queue is delivered (without waiting for it)."""
        self._queue.put(self._STOP)

    def _run(self) -> None:
        while (payload := self._queue.get()) is not self._STOP:
            self._deliver(self._notifier, payload)


def _number(name: str, value: object, minimum: float | None = None) -> float:
    # Not validation.number's split shape: a NaN or an infinity is a TypeError here, and the
    # message shows the value rather than its type. Kept as it always was (tests/test_validation.py).
    if not (validation.is_number(value) and math.isfinite(value)):  # type: ignore[arg-type]
        raise TypeError(f"{name}: expected a finite number, got {value!r}")
    validation.number(name, value, rule=f"must be >= {minimum or 0:g}", minimum=minimum)
    return float(value)  # type: ignore[arg-type]


class AlertManager:
    """Evaluates alert rules on ``cache`` every ``interval`` seconds and notifies on transitions."""

    def __init__(
        self,
        cache: YokedCache,
        *,
        interval: float = 30.0,
        window: float = 60.0,
        smtp: SMTPSettings | None = None,
        webhook_timeout: float = 5.0,
        webhook_retries: int = 2,
        history_size: int = 1000,
        shutdown_timeout: float = 1.0,
    ) -> None:
        self.cache = cache
        self.interval = _number("interval", interval, 0.01)
        self.window = _number("window", window, 0.01)
        self.webhook_timeout = _number("webhook_timeout", webhook_timeout, 0.01)
        #: At interpreter exit, how long notifications already on their way may still take.
        self.shutdown_timeout = _number("shutdown_timeout", shutdown_timeout, 0)
        validation.number("webhook_retries", webhook_retries, rule="expected an int >= 0", integer=True, minimum=0)
        self.webhook_retries = webhook_retries
        if smtp is not None and not isinstance(smtp, SMTPSettings):
            raise TypeError(f"smtp: expected SMTPSettings, got {type(smtp).__name__}")
        self.smtp = smtp
        self.rules: dict[str, AlertRule] = {}
        #: Every transition, newest last: dicts shaped like the notification payload.
        self.history: deque[dict[str, Any]] = deque(maxlen=history_size)
        self.notification_failures = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._senders: dict[int, _Sender] = {}
        #: Notifications queued or being sent; ``_idle`` is notified when it drops to zero.
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)
        #: Set once the process is exiting and the grace period is over: late failures are
        #: counted but not logged (logging is shut down by then).
        self._abandoned = False
        self._last_evictions: tuple[float, int] | None = None
        _MANAGERS.add(self)

    # -- configuration ----------------------------------------------------------------------
    def add_alert(
        self,
        name: str,
        metric: str,
        threshold: float,
        comparison: str,
        webhook_url: str | None = None,
        email_recipients: list[str] | None = None,
        for_seconds: float = 0,
        severity: str = "warning",
        description: str | None = None,
    ) -> AlertRule:
        """Add a rule; ``comparison`` is ``less_than``, ``greater_than``, ``*_or_equal``, ``equal``,
        ``not_equal`` (or ``<``, ``>``, ``<=``, ``>=``, ``==``, ``!=``)."""
        if not isinstance(name, str) or not name:
            raise ValueError("name: expected a non-empty str")
        if name in self.rules:
            raise ValueError(f"name: an alert named {name!r} already exists")
        if metric not in ALERT_METRICS:
            raise ValueError(f"metric: {metric!r} is not watchable; choose one of {', '.join(ALERT_METRICS)}")
        if comparison not in COMPARISONS:
            raise ValueError(f"comparison: {comparison!r} is not one of {', '.join(COMPARISONS)}")
        notifiers: list[Any] = []
        if webhook_url is not None:
            notifiers.append(WebhookNotifier(webhook_url, self.webhook_timeout, self.webhook_retries))
        if email_recipients is not None:
            notifiers.append(self._email_notifier(name, email_recipients))
        rule = AlertRule(
            name=name,
            metric=metric,
            threshold=_number("threshold", threshold),
            comparison=comparison,
            for_seconds=_number("for_seconds", for_seconds, 0),
            severity=str(severity),
            description=description,
            notifiers=notifiers,
        )
        with self._lock:
            self.rules[name] = rule
        return rule

    def _email_notifier(self, name: str, recipients: str | list[str]) -> EmailNotifier:
        if isinstance(recipients, str):
            recipients = [recipients]
        if not recipients or not all(isinstance(r, str) and "@" in r for r in recipients):
            raise ValueError("email_recipients: expected a list of e-mail addresses")
        smtp = self.smtp or SMTPSettings.from_env()
        if smtp is None:
            log.warning("alert %s: no mail server configured yet; its e-mails fail until smtp= is passed "
                        "or YOKEDCACHE_SMTP_HOST is set", name)  # fmt: skip
        return EmailNotifier(list(recipients), smtp)

    def remove_alert(self, name: str) -> None:
        with self._lock:
            rule = self.rules.pop(name, None)
        for notifier in rule.notifiers if rule else ():
            sender = self._senders.pop(id(notifier), None)
            if sender is not None:
                sender.close()

    # -- running ------------------------------------------------------------------------------
    def start(self) -> None:
        """Evaluate every ``interval`` seconds on a daemon thread (no event loop needed)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="yokedcache-alerts", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop evaluating and wait, ``timeout`` seconds in all, for notifications already on
        their way; ``True`` if they all finished. Their workers end once done."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        if self._thread is not None:
            self._thread.join(max(deadline - time.monotonic(), 0))
            self._thread = None
        finished = self.wait_for_notifications(max(deadline - time.monotonic(), 0))
        senders, self._senders = list(self._senders.values()), {}
        for sender in senders:
            sender.close()
        return finished

    def wait_for_notifications(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until no notification is queued or being sent."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def _exiting(self, grace: float) -> None:
        """At interpreter exit: a bounded grace period, then the daemon workers are left behind."""
        finished = self.wait_for_notifications(grace)
        self._abandoned = True
        if not finished:
            log.warning("exiting with %d alert notification(s) undelivered after %g s", self._in_flight,
                        self.shutdown_timeout)  # fmt: skip

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.evaluate()
            except Exception:  # a bug in one evaluation must not end alerting
                log.exception("alert evaluation failed")
            self._stop.wait(self.interval)

    def active_alerts(self) -> list[dict[str, Any]]:
        """The rules currently firing, as notification-shaped dicts."""
        with self._lock:
            return [self._payload(r, FIRING, r.firing_since or time.time()) for r in self.rules.values()
                    if r.state == FIRING]  # fmt: skip

    def evaluate(self) -> list[dict[str, Any]]:
        """Evaluate every rule once now; return the transitions (firing/resolved) it caused.

        Blocking (it may ping Redis on the cache's loop): call it from a thread, not the loop.
        """
        with self._lock:
            rules = list(self.rules.values())
        values = self.read_metrics({r.metric for r in rules})
        now = time.monotonic()
        transitions = []
        for rule in rules:
            value = values.get(rule.metric)
            if value is None:
                continue
            rule.value = value
            if rule.holds(value):
                if rule.state == INACTIVE:
                    rule.state, rule.pending_since = PENDING, now
                if rule.state == PENDING and now - (rule.pending_since or now) >= rule.for_seconds:
                    rule.state, rule.firing_since = FIRING, time.time()
                    transitions.append(self._transition(rule, FIRING))
            elif rule.state == PENDING:
                rule.state, rule.pending_since = INACTIVE, None
            elif rule.state == FIRING:
                rule.state, rule.pending_since, rule.firing_since = INACTIVE, None, None
                transitions.append(self._transition(rule, RESOLVED))
        return transitions

    # -- reading the cache --------------------------------------------------------------------
    def read_metrics(self, wanted: set[str] | None = None) -> dict[str, float | None]:
        """Current values of the watchable metrics (``wanted`` limits which, e.g. to skip the ping)."""
        wanted = set(ALERT_METRICS) if wanted is None else wanted
        cache = self.cache
        out: dict[str, float | None] = {}
        if wanted & set(_COMPREHENSIVE):
            m = cache.get_comprehensive_metrics(self.window)
            for name in _COMPREHENSIVE:
                value = getattr(m, name)
                out[name] = None if value is None else float(value)  # hit_rate before any read
        breaker = cache.breaker
        out["circuit_breaker_state"] = float(BREAKER_STATE_VALUES[breaker.state]) if breaker else None
        out["circuit_breaker_open"] = float(breaker.state == "open") if breaker else None
        pool = cache.backend.pool_stats()
        out["pool_utilization"] = float(pool["utilization"]) if pool else None
        usage = cache.usage_snapshot()
        limit = cache.config.max_memory_bytes
        out["memory_usage_ratio"] = usage.bytes / limit if usage is not None and limit else None
        out["eviction_rate"] = self._eviction_rate()
        if "redis_connected" in wanted:
            out["redis_connected"] = self._redis_connected()
        return out

    def _eviction_rate(self) -> float | None:
        evictions = self.cache.backend.evictions
        if evictions is None:
            return None
        now, last = time.monotonic(), self._last_evictions
        self._last_evictions = (now, evictions)
        if last is None or now <= last[0]:
            return None
        return (evictions - last[1]) / (now - last[0])

    def _redis_connected(self) -> float | None:
        cache = self.cache
        if not cache.backend.remote:
            return None
        loop = cache.event_loop
        if loop is None or loop.is_closed() or not loop.is_running():
            return None  # not started yet: no evidence either way
        future = asyncio.run_coroutine_threadsafe(cache.health(), loop)
        try:
            return float(future.result(cache.config.health_check_timeout + 1.0))
        except concurrent.futures.TimeoutError:
            future.cancel()
            return 0.0

    # -- notifying ----------------------------------------------------------------------------
    def _payload(self, rule: AlertRule, state: str, at: float) -> dict[str, Any]:
        info = self.cache.backend.info
        return {
            "alert": rule.name,
            "state": state,
            "metric": rule.metric,
            "value": rule.value,
            "threshold": rule.threshold,
            "comparison": rule.comparison,
            "severity": rule.severity,
            "description": rule.description,
            "timestamp": datetime.fromtimestamp(at, timezone.utc).isoformat(),
            "cache": {"backend": info.kind, "host": info.host, "port": info.port},
        }

    def _transition(self, rule: AlertRule, state: str) -> dict[str, Any]:
        payload = self._payload(rule, state, time.time())
        self.history.append(payload)
        level = logging.WARNING if state == FIRING else logging.INFO
        log.log(level, "alert %s %s: %s=%g (%s %g)", rule.name, state, rule.metric, rule.value or 0.0,
                rule.comparison, rule.threshold)  # fmt: skip
        for notifier in rule.notifiers:
            sender = self._senders.get(id(notifier))
            if sender is None:
                sender = self._senders[id(notifier)] = _Sender(self._deliver, notifier, "yokedcache-notify")
            with self._lock:
                self._in_flight += 1
            sender.submit(payload)
        return payload

    def _deliver(self, notifier: Any, payload: dict[str, Any]) -> None:
        try:
            notifier.send(payload)
        except NotificationError as exc:
            self._failed("alert %s: notification failed: %s", payload["alert"], exc)
        except Exception as exc:  # one broken notifier never stops the others
            self._failed("alert %s: notifier %r raised %s", payload["alert"], notifier, type(exc).__name__)
        finally:
            with self._idle:
                self._in_flight -= 1
                if self._in_flight == 0:
                    self._idle.notify_all()

    def _failed(self, message: str, *args: object) -> None:
        """Count a failed notification and log it as one line (never a traceback)."""
        with self._lock:
            self.notification_failures += 1
        if not self._abandoned:
            log.warning(message, *args)


#: Managers alive in this process; at exit they share one bounded grace period.
_MANAGERS: weakref.WeakSet[AlertManager] = weakref.WeakSet()


def firing_for(cache: YokedCache) -> list[dict[str, Any]]:
    """Alerts firing now on ``cache`` from every running manager (for the status page)."""
    firing: list[dict[str, Any]] = []
    for manager in list(_MANAGERS):
        thread = manager._thread
        if manager.cache is cache and thread is not None and thread.is_alive():
            firing.extend(manager.active_alerts())
    return firing


def rules_for(cache: YokedCache) -> list[dict[str, Any]]:
    """Every rule of every running manager on ``cache``, firing or not (for the status page,
    which shows which rules exist, not only which fire)."""
    rules: list[dict[str, Any]] = []
    for manager in list(_MANAGERS):
        thread = manager._thread
        if manager.cache is cache and thread is not None and thread.is_alive():
            with manager._lock:
                rules.extend({
                    "alert": r.name, "metric": r.metric, "comparison": r.comparison, "threshold": r.threshold,
                    "for_seconds": r.for_seconds, "severity": r.severity, "state": r.state, "value": r.value,
                } for r in manager.rules.values())  # fmt: skip
    return rules


def _on_exit() -> None:
    started = time.monotonic()
    for manager in list(_MANAGERS):
        manager._exiting(max(started + manager.shutdown_timeout - time.monotonic(), 0.0))


atexit.register(_on_exit)
