"""Threshold alerts evaluated in-process, for teams without Prometheus alerting.

A package of its own because alerting only reads the cache (its public figures, its breaker,
its pool) and sends notifications: nothing in the cache, the telemetry or the exporters needs
it, so they must not be able to import it either (``tests/test_import_graph.py``). The
documented entry points stay ``from yokedcache.monitoring import AlertManager, SMTPSettings``.
"""

from __future__ import annotations

from .manager import AlertManager
from .notifiers import EmailNotifier, NotificationError, Notifier, SMTPSettings, WebhookNotifier
from .rules import ALERT_METRICS, COMPARISONS, AlertRule

__all__ = [
    "ALERT_METRICS",
    "COMPARISONS",
    "AlertManager",
    "AlertRule",
    "EmailNotifier",
    "NotificationError",
    "Notifier",
    "SMTPSettings",
    "WebhookNotifier",
]
