"""A notifier is anything with ``send(payload)``, as ``alerting/notifiers.py`` writes it down.

The two built in satisfy the protocol; a class of the application's own, appended to a rule,
gets that rule's notifications in order; and its failures are reported as the protocol says:
``NotificationError`` with its message, anything else by type only.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from yokedcache import YokedCache
from yokedcache.alerting import EmailNotifier, NotificationError, Notifier, WebhookNotifier
from yokedcache.monitoring import AlertManager, SMTPSettings


class Recorder:
    def __init__(self) -> None:
        self.received: list[tuple[str, str]] = []

    def send(self, payload: dict[str, Any]) -> None:
        self.received.append((payload["alert"], payload["state"]))


def test_the_built_in_notifiers_satisfy_the_protocol():
    assert isinstance(WebhookNotifier("https://hooks.example.com/T0001/SECRET"), Notifier)
    assert isinstance(EmailNotifier(["oncall@example.com"], SMTPSettings("smtp.example.com")), Notifier)
    assert isinstance(Recorder(), Notifier)
    assert not isinstance(object(), Notifier)


async def test_an_application_notifier_gets_firing_then_resolved():
    cache = YokedCache()
    alert_manager = AlertManager(cache)
    recorder = Recorder()
    alert_manager.add_alert("cold", "hit_rate", 0.5, "<").notifiers.append(recorder)
    await cache.get("missing")
    await asyncio.to_thread(alert_manager.evaluate)
    await cache.set("hot", 1)
    for _ in range(3):
        await cache.get("hot")
    await asyncio.to_thread(alert_manager.evaluate)
    assert await asyncio.to_thread(alert_manager.stop) is True
    assert recorder.received == [("cold", "firing"), ("cold", "resolved")]
    await cache.close()


async def test_a_notifier_failure_is_counted_and_logged_as_the_protocol_says(caplog):
    class Refused:
        def send(self, payload: dict[str, Any]) -> None:
            raise NotificationError("pager: HTTP 403 after 1 attempt(s)")

    class Broken:
        def __repr__(self) -> str:
            return "Broken()"

        def send(self, payload: dict[str, Any]) -> None:
            raise RuntimeError("token=SECRET in a message")

    cache = YokedCache()
    alert_manager = AlertManager(cache)
    alert_manager.add_alert("ops", "total_operations", 0, ">=").notifiers.extend([Refused(), Broken()])
    with caplog.at_level(logging.WARNING, logger="yokedcache.monitoring.alerts"):
        await asyncio.to_thread(alert_manager.evaluate)
        await asyncio.to_thread(alert_manager.stop)
    assert alert_manager.notification_failures == 2
    assert "alert ops: notification failed: pager: HTTP 403 after 1 attempt(s)" in caplog.text
    assert "alert ops: notifier Broken() raised RuntimeError" in caplog.text
    assert "SECRET" not in caplog.text
    await cache.close()
