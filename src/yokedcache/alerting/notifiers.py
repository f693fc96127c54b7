"""Where alert notifications go: the :class:`Notifier` protocol, and the two built in -- a webhook
(JSON POST) and e-mail (SMTP, standard library only).

Both run in the alert manager's worker threads, never on the application's event loop. Each
attempt has a total deadline (``timeout``) covering name resolution, connect, TLS, request and
reply: a socket timeout alone bounds each read, and a peer trickling one byte a second would
hold the worker forever. Neither ever logs a secret: webhook URLs are logged as scheme and host
only (Slack-style URLs carry their token in the path), SMTP passwords not at all.
"""

from __future__ import annotations

import http.client
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
from typing import Any, Protocol, runtime_checkable

from .. import validation
from .._urls import safe_url
from .deadline import TotalDeadline

__all__ = ["EmailNotifier", "NotificationError", "Notifier", "SMTPSettings", "WebhookNotifier"]

log = logging.getLogger("yokedcache.monitoring.alerts")

SECURITY_MODES = ("starttls", "ssl", "none")


class NotificationError(Exception):
    """A notification could not be delivered (after its retries)."""


@runtime_checkable
class Notifier(Protocol):
    """What ``AlertManager`` asks of a notification target: the webhook and e-mail notifiers
    below, or a class of the application's own (paging, chat, a queue), added to a rule with
    ``alerts.add_alert(...).notifiers.append(MyNotifier())``.

    ``send(payload)`` delivers one notification. ``payload`` is the dict ``AlertManager.history``
    keeps: ``alert``, ``state`` (``"firing"`` or ``"resolved"``), ``metric``, ``value``,
    ``threshold``, ``comparison``, ``severity``, ``description``, ``timestamp`` (ISO 8601, UTC)
    and ``cache`` (backend kind, host, port). What a notifier must do:

    - Block, if it likes: it runs on a daemon thread of its own (one per notifier, see
      ``_Sender`` in ``manager.py``), never on the event loop, so a slow target delays no
      other notifier and no cache operation. Its notifications arrive in order: never a
      "resolved" before its "firing".
    - Return within a deadline of its own, whatever the peer does. ``AlertManager.stop()``
      waits a bounded time, and at interpreter exit notifications in flight get
      ``AlertManager(shutdown_timeout=...)`` seconds (1 s) before the thread is abandoned
      with the notification undelivered. A socket timeout bounds each read, not the exchange:
      :class:`~yokedcache.alerting.deadline.TotalDeadline` bounds the whole of it.
    - Report failure by raising :class:`NotificationError` whose message is fit for a log:
      the manager logs it as one WARNING line (logger ``yokedcache.monitoring.alerts``) and
      counts it in ``AlertManager.notification_failures``. Any other exception is counted
      too, but logged by its type and the notifier's ``repr()`` only, never its text (which
      may quote a URL token or a server's reply); so ``repr()`` must hold no secret either.
    """

    def send(self, payload: dict[str, Any]) -> None: ...


class _HTTPHandler(urllib.request.HTTPHandler):
    """urllib's handler (proxies from the environment still apply) with connections made
    through a :class:`TotalDeadline`."""

    def __init__(self, deadline: TotalDeadline) -> None:
        super().__init__()
        self._deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._connection, req)

    def _connection(self, host: str, **kwargs: Any) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection(host, **kwargs)
        conn._create_connection = self._deadline.create_connection  # type: ignore[attr-defined]
        return conn


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: TotalDeadline) -> None:
        super().__init__(context=ssl.create_default_context())
        self._deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._connection, req, context=self._context)  # type: ignore[attr-defined]

    def _connection(self, host: str, **kwargs: Any) -> http.client.HTTPSConnection:
        conn = http.client.HTTPSConnection(host, **kwargs)
        conn._create_connection = self._deadline.create_connection  # type: ignore[attr-defined]
        return conn


class WebhookNotifier:
    """POSTs the alert as JSON; retries timeouts, connection errors, 429 and 5xx with back-off.

    ``timeout`` is the total time one attempt may take, reply included.
    """

    def __init__(self, url: str, timeout: float = 5.0, retries: int = 2, backoff: float = 0.5) -> None:
        self.url = validation.http_url("webhook_url", url)
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
            deadline = TotalDeadline(self.timeout)
            try:
                with deadline:
                    opener = urllib.request.build_opener(_HTTPHandler(deadline), _HTTPSHandler(deadline))
                    with opener.open(request, timeout=self.timeout) as response:
                        try:  # the status is in: delivered; the body is a courtesy
                            response.read(1024)
                        except (OSError, http.client.HTTPException):
                            pass
                return
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
                if exc.code != 429 and exc.code < 500:
                    break  # the receiver rejected it: retrying will not help
            except (OSError, http.client.HTTPException) as exc:  # URLError is an OSError
                if deadline.used_up():
                    last = f"no answer within {self.timeout:g} s"
                else:
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
    #: Total seconds one delivery may take: connect, TLS, login and the message.
    timeout: float = 10.0

    def __post_init__(self) -> None:
        validation.host("smtp host", self.host, rule="expected a host name")
        validation.port("smtp port", self.port, rule="expected 1-65535")
        if self.security not in SECURITY_MODES:
            raise ValueError(f"smtp security: expected one of {SECURITY_MODES}, got {self.security!r}")

    @classmethod
    def from_env(cls) -> SMTPSettings | None:
        """From ``YOKEDCACHE_SMTP_HOST``, ``_PORT``, ``_USERNAME``, ``_PASSWORD``, ``_FROM``, ``_SECURITY``."""
        env = os.environ
        host = env.get("YOKEDCACHE_SMTP_HOST")
        if not host:
            return None
        return cls(
            host=host,
            port=validation.env_port("YOKEDCACHE_SMTP_PORT", 587),
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
        deadline = TotalDeadline(s.timeout)
        try:
            with deadline:
                if s.security == "ssl":
                    client: smtplib.SMTP = _SMTPSSL(deadline, s.host, s.port, s.timeout, ssl.create_default_context())
                else:
                    client = _SMTP(deadline, s.host, s.port, s.timeout)
                with client:
                    if s.security == "starttls":
                        client.starttls(context=ssl.create_default_context())
                    if s.username:
                        client.login(s.username, s.password or "")
                    client.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            # str(exc) of an auth failure can echo the server's reply, never our password; keep the type.
            reason = f"no answer within {s.timeout:g} s" if deadline.used_up() else type(exc).__name__
            raise NotificationError(f"smtp {s.host}:{s.port}: {reason}") from None


class _SMTP(smtplib.SMTP):
    """``smtplib.SMTP`` connecting through a :class:`TotalDeadline`."""

    def __init__(self, deadline: TotalDeadline, host: str, port: int, timeout: float) -> None:
        self.deadline = deadline  # before connecting, which the base __init__ does
        super().__init__(host, port, timeout=timeout)

    def _get_socket(self, host: str, port: int, timeout: float) -> Any:
        return self.deadline.create_connection((host, port), timeout, self.source_address)


class _SMTPSSL(smtplib.SMTP_SSL, _SMTP):
    """``SMTP_SSL`` wraps what :class:`_SMTP` connected (method order: SMTP_SSL, _SMTP, SMTP)."""

    def __init__(self, deadline: TotalDeadline, host: str, port: int, timeout: float, context: ssl.SSLContext) -> None:
        self.deadline = deadline
        smtplib.SMTP_SSL.__init__(self, host, port, timeout=timeout, context=context)
