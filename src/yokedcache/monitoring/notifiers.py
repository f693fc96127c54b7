"""Where alert notifications go: a webhook (JSON POST) or e-mail (SMTP, standard library only).

Both run in the alert manager's worker threads, never on the application's event loop, with
bounded timeouts. Neither ever logs a secret: webhook URLs are logged as scheme and host only
(Slack-style URLs carry their token in the path), SMTP passwords not at all.
"""

from __future__ import annotations

import json
import logging
import os
import random
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

__all__ = ["EmailNotifier", "NotificationError", "SMTPSettings", "WebhookNotifier", "safe_url"]

log = logging.getLogger("yokedcache.monitoring.alerts")

SECURITY_MODES = ("starttls", "ssl", "none")


class NotificationError(Exception):
    """A notification could not be delivered (after its retries)."""


def safe_url(url: str) -> str:
    """``scheme://host[:port]``: enough to identify a webhook in a log, never its token."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return "<unparseable url>"


def check_webhook_url(url: object) -> str:
    if not isinstance(url, str):
        raise TypeError(f"webhook_url: expected a str, got {type(url).__name__}")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ValueError("webhook_url: not a valid URL") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"webhook_url: expected an http:// or https:// URL, got one for {safe_url(url)}")
    return url


class WebhookNotifier:
    """POSTs the alert as JSON; retries timeouts, connection errors, 429 and 5xx with back-off."""

    def __init__(self, url: str, timeout: float = 5.0, retries: int = 2, backoff: float = 0.5) -> None:
        self.url = check_webhook_url(url)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff

    def __repr__(self) -> str:
        return f"WebhookNotifier({safe_url(self.url)!r})"

    def send(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, default=str).encode()
        last = "no attempt"
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))
            request = urllib.request.Request(
                self.url, data=body, method="POST",
                headers={"Content-Type": "application/json", "User-Agent": "yokedcache-alerts"},
            )  # fmt: skip
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    response.read(1024)
                return
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
                if exc.code != 429 and exc.code < 500:
                    break  # the receiver rejected it: retrying will not help
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                reason = getattr(exc, "reason", exc)
                last = type(reason).__name__ if isinstance(reason, BaseException) else "connection failed"
        raise NotificationError(f"webhook {safe_url(self.url)}: {last} after {attempt + 1} attempt(s)")


@dataclass(frozen=True)
class SMTPSettings:
    """How to reach the mail server. ``security``: ``starttls`` (587), ``ssl`` (465) or ``none``."""

    host: str
    port: int = 587
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = "yokedcache@localhost"
    security: str = "starttls"
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host:
            raise ValueError("smtp host: expected a host name")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 < self.port < 65536:
            raise ValueError(f"smtp port: expected 1-65535, got {self.port!r}")
        if self.security not in SECURITY_MODES:
            raise ValueError(f"smtp security: expected one of {SECURITY_MODES}, got {self.security!r}")

    @classmethod
    def from_env(cls) -> SMTPSettings | None:
        """From ``YOKEDCACHE_SMTP_HOST``, ``_PORT``, ``_USERNAME``, ``_PASSWORD``, ``_FROM``, ``_SECURITY``."""
        env = os.environ
        host = env.get("YOKEDCACHE_SMTP_HOST")
        if not host:
            return None
        port_text = env.get("YOKEDCACHE_SMTP_PORT", "587")
        try:
            port = int(port_text)
        except ValueError:
            raise ValueError(f"YOKEDCACHE_SMTP_PORT: expected a port number, got {port_text!r}") from None
        return cls(
            host=host,
            port=port,
            username=env.get("YOKEDCACHE_SMTP_USERNAME") or None,
            password=env.get("YOKEDCACHE_SMTP_PASSWORD") or None,
            sender=env.get("YOKEDCACHE_SMTP_FROM", "yokedcache@localhost"),
            security=env.get("YOKEDCACHE_SMTP_SECURITY", "starttls"),
        )


class EmailNotifier:
    """Sends one plain-text message per notification to ``recipients``."""

    def __init__(self, recipients: list[str], settings: SMTPSettings | None = None) -> None:
        self.recipients = recipients
        #: ``None``: read ``YOKEDCACHE_SMTP_*`` at send time.
        self.settings = settings

    def __repr__(self) -> str:
        via = f"{self.settings.host}:{self.settings.port}" if self.settings else "YOKEDCACHE_SMTP_HOST"
        return f"EmailNotifier({len(self.recipients)} recipient(s) via {via})"

    def send(self, payload: dict[str, Any]) -> None:
        s = self.settings or SMTPSettings.from_env()
        if s is None:
            raise NotificationError("no mail server configured: pass smtp=SMTPSettings() or set YOKEDCACHE_SMTP_HOST")
        message = EmailMessage()
        message["Subject"] = f"[{payload['state'].upper()}] yokedcache alert {payload['alert']}"
        message["From"] = s.sender
        message["To"] = ", ".join(self.recipients)
        message.set_content(
            f"Alert {payload['alert']} is {payload['state']}.\n\n"
            f"{payload['metric']} = {payload['value']:g} ({payload['comparison']} {payload['threshold']:g})\n"
            f"Severity: {payload['severity']}\nAt: {payload['timestamp']}\n"
            + (f"\n{payload['description']}\n" if payload.get("description") else "")
            + "\n"
            + json.dumps(payload, indent=2, default=str)
        )
        try:
            if s.security == "ssl":
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    s.host, s.port, timeout=s.timeout, context=ssl.create_default_context()
                )
            else:
                client = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            with client:
                if s.security == "starttls":
                    client.starttls(context=ssl.create_default_context())
                if s.username:
                    client.login(s.username, s.password or "")
                client.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            # str(exc) of an auth failure can echo the server's reply, never our password; keep the type.
            raise NotificationError(f"smtp {s.host}:{s.port}: {type(exc).__name__}") from None
