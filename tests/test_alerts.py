"""AlertManager against a real local HTTP receiver and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from yokedcache import CacheConfig, YokedCache
from yokedcache.monitoring import AlertManager, SMTPSettings

from .redis_server import RedisServer, free_port


class WebhookReceiver:
    """Records JSON POSTs; answers ``fail_first`` of them with 500."""

    def __init__(self, fail_first: int = 0, always_fail: bool = False) -> None:
        self.bodies: list[dict] = []
        self.requests = 0
        self.fail_first = fail_first
        self.always_fail = always_fail
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer.requests += 1
                body = self.rfile.read(int(self.headers["Content-Length"]))
                failing = outer.always_fail or outer.requests <= outer.fail_first
                if not failing:
                    outer.bodies.append(json.loads(body))
                self.send_response(500 if failing else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks/T0001/SECRET-TOKEN"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class MailSink:
    def __init__(self) -> None:
        self.messages: list = []
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                outer.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=free_port())
        self.controller.start()
        self.settings = SMTPSettings(host="127.0.0.1", port=self.controller.port, security="none")

    def close(self) -> None:
        self.controller.stop()


@pytest.fixture
def webhook():
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def mail():
    sink = MailSink()
    yield sink
    sink.close()


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


async def test_guide_snippet_fires_once_then_resolves_once(webhook, mail):
    cache = YokedCache()
    alert_manager = AlertManager(cache, smtp=mail.settings)

    # Configure alert thresholds
    alert_manager.add_alert(
        name="low_hit_rate",
        metric="hit_rate",
        threshold=0.70,
        comparison="less_than",
        webhook_url=webhook.url,
    )
    alert_manager.add_alert(
        name="high_latency",
        metric="avg_response_time",
        threshold=0.100,
        comparison="greater_than",
        email_recipients=["admin@yourcompany.com"],
    )
    alert_manager.add_alert(
        name="low_hit_rate_mail", metric="hit_rate", threshold=0.70, comparison="less_than",
        email_recipients=["oncall@yourcompany.com"],
    )  # fmt: skip

    assert await asyncio.to_thread(alert_manager.evaluate) == []  # no reads yet: no value, no alert
    for i in range(10):
        await cache.get(f"k{i}")  # all misses
    fired = await asyncio.to_thread(alert_manager.evaluate)
    assert [(t["alert"], t["state"]) for t in fired] == [("low_hit_rate", "firing"), ("low_hit_rate_mail", "firing")]
    assert await asyncio.to_thread(alert_manager.evaluate) == []  # still firing: no storm
    assert [a["alert"] for a in alert_manager.active_alerts()] == ["low_hit_rate", "low_hit_rate_mail"]

    await cache.set("hot", 1)
    for _ in range(100):
        await cache.get("hot")
    resolved = await asyncio.to_thread(alert_manager.evaluate)
    assert [(t["alert"], t["state"]) for t in resolved] == [
        ("low_hit_rate", "resolved"),
        ("low_hit_rate_mail", "resolved"),
    ]
    await asyncio.to_thread(alert_manager.stop)

    assert [(b["alert"], b["state"]) for b in webhook.bodies] == [
        ("low_hit_rate", "firing"),
        ("low_hit_rate", "resolved"),
    ]
    body = webhook.bodies[0]
    assert body["metric"] == "hit_rate" and body["value"] == 0.0 and body["threshold"] == 0.7
    assert body["comparison"] == "less_than" and body["timestamp"].endswith("+00:00")
    assert [(rcpt, m["Subject"]) for rcpt, m in mail.messages] == [
        (["oncall@yourcompany.com"], "[FIRING] yokedcache alert low_hit_rate_mail"),
        (["oncall@yourcompany.com"], "[RESOLVED] yokedcache alert low_hit_rate_mail"),
    ]
    assert "hit_rate = 0" in mail.messages[0][1].get_payload()
    assert [h["state"] for h in alert_manager.history] == ["firing", "firing", "resolved", "resolved"]
    await cache.close()


def test_start_works_without_an_event_loop(webhook):
    cache = YokedCache()
    alert_manager = AlertManager(cache, interval=0.05)
    alert_manager.add_alert("always", "total_operations", 0, "greater_than_or_equal", webhook_url=webhook.url)
    alert_manager.start()  # as in docs/monitoring.md, 'Configuring Alerts': no running loop needed
    try:
        wait_until(lambda: len(webhook.bodies) == 1)
    finally:
        alert_manager.stop()
    assert webhook.bodies[0]["state"] == "firing"


async def test_for_seconds_holds_the_alert_pending(webhook):
    cache = YokedCache()
    alert_manager = AlertManager(cache)
    rule = alert_manager.add_alert("slow", "total_operations", 1, ">=", webhook_url=webhook.url, for_seconds=0.3)
    await cache.get("k")
    started = time.monotonic()
    assert await asyncio.to_thread(alert_manager.evaluate) == []
    assert rule.state == "pending"
    while not await asyncio.to_thread(alert_manager.evaluate):
        assert time.monotonic() - started < 5
        await asyncio.sleep(0.05)
    assert rule.state == "firing" and time.monotonic() - started >= 0.3
    alert_manager.stop()
    assert len(webhook.bodies) == 1
    await cache.close()


async def test_a_failing_notifier_breaks_neither_the_cache_nor_the_others(mail, caplog):
    broken = WebhookReceiver(always_fail=True)
    cache = YokedCache()
    alert_manager = AlertManager(cache, smtp=mail.settings, webhook_retries=1)
    alert_manager.add_alert("a", "total_operations", 0, ">=", webhook_url=broken.url)
    alert_manager.add_alert("b", "total_operations", 0, ">=", webhook_url=f"http://127.0.0.1:{free_port()}/x")
    alert_manager.add_alert("c", "total_operations", 0, ">=", email_recipients=["ops@example.com"])
    with caplog.at_level(logging.WARNING, logger="yokedcache.monitoring.alerts"):
        await asyncio.to_thread(alert_manager.evaluate)
        await asyncio.to_thread(alert_manager.stop)
    broken.close()
    assert len(mail.messages) == 1  # the mail went out although both webhooks failed
    assert alert_manager.notification_failures == 2
    assert broken.requests == 2  # one retry on 500
    assert "SECRET-TOKEN" not in caplog.text and "hooks/T0001" not in caplog.text
    assert "notification failed" in caplog.text
    assert await cache.set("k", 1) is True
    await cache.close()


async def test_webhook_retries_a_server_error_then_delivers_once():
    flaky = WebhookReceiver(fail_first=1)
    cache = YokedCache()
    alert_manager = AlertManager(cache, webhook_retries=2)
    alert_manager.add_alert("a", "total_operations", 0, ">=", webhook_url=flaky.url)
    await asyncio.to_thread(alert_manager.evaluate)
    await asyncio.to_thread(alert_manager.stop)
    flaky.close()
    assert flaky.requests == 2 and len(flaky.bodies) == 1
    assert alert_manager.notification_failures == 0
    await cache.close()


async def test_redis_down_and_breaker_alerts_follow_a_real_outage(webhook):
    server = RedisServer()
    server.start()
    cache = YokedCache(CacheConfig(redis_url=server.url(), retry_attempts=0, circuit_failure_threshold=2))
    alert_manager = AlertManager(cache)
    alert_manager.add_alert("redis_down", "redis_connected", 1, "less_than", webhook_url=webhook.url)
    alert_manager.add_alert("breaker_open", "circuit_breaker_open", 1, "greater_than_or_equal",
                            webhook_url=webhook.url)  # fmt: skip
    try:
        await cache.set("k", 1)
        assert await asyncio.to_thread(alert_manager.evaluate) == []
        server.stop()
        for _ in range(3):
            await cache.get("k")
        fired = await asyncio.to_thread(alert_manager.evaluate)
        assert sorted(t["alert"] for t in fired) == ["breaker_open", "redis_down"]
        server.start()
        assert [t["alert"] for t in await asyncio.to_thread(alert_manager.evaluate)] == ["redis_down"]
    finally:
        alert_manager.stop()
        await cache.close()
        server.close()


def test_configuration_errors_name_the_field():
    cache = YokedCache()
    alert_manager = AlertManager(cache)
    with pytest.raises(ValueError, match="comparison"):
        alert_manager.add_alert("x", "hit_rate", 0.7, "below")
    with pytest.raises(ValueError, match="metric"):
        alert_manager.add_alert("x", "hitrate", 0.7, "less_than")
    with pytest.raises(TypeError, match="threshold"):
        alert_manager.add_alert("x", "hit_rate", "0.7", "less_than")
    with pytest.raises(ValueError, match="webhook_url"):
        alert_manager.add_alert("x", "hit_rate", 0.7, "less_than", webhook_url="ftp://example.com/hook")
    with pytest.raises(ValueError, match="email_recipients"):
        alert_manager.add_alert("x", "hit_rate", 0.7, "less_than", email_recipients=["not an address"])
    with pytest.raises(ValueError, match="for_seconds"):
        alert_manager.add_alert("x", "hit_rate", 0.7, "less_than", for_seconds=-1)
    alert_manager.add_alert("x", "hit_rate", 0.7, "less_than")
    with pytest.raises(ValueError, match="already exists"):
        alert_manager.add_alert("x", "hit_rate", 0.7, "less_than")


def test_smtp_settings_from_environment_hide_the_password(monkeypatch):
    monkeypatch.setenv("YOKEDCACHE_SMTP_HOST", "mail.example.com")
    monkeypatch.setenv("YOKEDCACHE_SMTP_PORT", "465")
    monkeypatch.setenv("YOKEDCACHE_SMTP_PASSWORD", "hunter2-sentinel")
    monkeypatch.setenv("YOKEDCACHE_SMTP_SECURITY", "ssl")
    settings = SMTPSettings.from_env()
    assert (settings.host, settings.port, settings.security) == ("mail.example.com", 465, "ssl")
    assert "hunter2-sentinel" not in repr(settings)
    monkeypatch.setenv("YOKEDCACHE_SMTP_PORT", "smtp")
    with pytest.raises(ValueError, match="YOKEDCACHE_SMTP_PORT"):
        SMTPSettings.from_env()


def test_alerting_example_runs_as_written(webhook):
    from .test_examples import run_example

    out = run_example("alerting.py", ALERT_WEBHOOK_URL=webhook.url, RUN_SECONDS="1")
    assert "active: ['low_hit_rate']" in out
    assert "history: [('low_hit_rate', 'firing')]" in out
    assert "notification failures: 0" in out
    assert [(b["alert"], b["state"], b["value"]) for b in webhook.bodies] == [("low_hit_rate", "firing", 0.0)]
