"""StatsD out of OpenTelemetry: a collector that formats lines, and the exporter around it.

Lines are buffered per flush and packed into datagrams of at most ``max_udp_size`` bytes (one
Ethernet MTU by default), so traffic depends on the flush interval, never on the number of
cache operations. The transport is the ``statsd`` package's UDP client, created lazily in the
exporter thread: an unresolvable host cannot crash or block application start-up, and
failures are counted and logged at most once per ``log_interval``.

Wire format (``prefix=myapp.cache``):
    myapp.cache.gets:42|c|#result:hit           counter deltas, exact
    myapp.cache.hit_rate:0.89|g                 gauges
    myapp.cache.operation_duration:0.21|ms|#operation:get
    myapp.cache.operation_duration:0.0375|ms|@0.25|#operation:get
                                                durations (unit ``s``) as timers in milliseconds,
                                                the convention Etsy StatsD, Graphite, statsd_exporter
                                                and the Datadog agent share; one line per sample,
                                                up to ``max_samples`` lines per series and flush
    myapp.cache.payload:512|ms                  other histograms: ``|ms`` unscaled in plain mode
                                                (Etsy StatsD has no other distribution type; it
                                                reads ``|h`` as a counter), ``|h`` with ``use_tags``
Without ``use_tags`` attribute values become extra name segments (``myapp.cache.gets.hit``).

Sample counts. A bridge sees each flush's histogram as bucket counts, not samples. Each filled
bucket is sent as its representative value; while a series holds at most ``max_samples``
samples per flush, one line per sample at rate 1. Beyond that every bucket keeps a share of
``max_samples`` lines proportional to its count (at least one), and each line carries a sample
rate whose reciprocal is an integer *exactly* in IEEE double arithmetic: receivers compute
``int(1/rate)`` per line (Datadog agent, the Collector's statsd receiver) or add ``1/rate``
(Etsy StatsD), and both then count every sample. A count with no exact reciprocal is split
over two lines (49 = 48 + 1). Percentiles the server computes over the lines stay within a
bucket of the true ones, because the lines keep the buckets' proportions.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from .. import validation
from .._extras import require
from ..telemetry.semconv import CACHE_NAME
from .bridge import CollectorExporter

log = logging.getLogger("yokedcache.exporters.statsd")

_NAME_BAD = re.compile(r"[^A-Za-z0-9_.\-]")
_TAG_BAD = re.compile(r"[^A-Za-z0-9_.\-/]")


def _exact(count: int) -> bool:
    """Whether ``1 / float(repr(1 / count))`` is ``count`` exactly in IEEE double arithmetic
    (Go, JavaScript and Python divide and parse alike)."""
    return 1.0 / (1.0 / count) == count


def exact_parts(count: int) -> list[int]:
    """``count`` as at most two addends that each survive a rate round trip exactly."""
    if count < 1:
        raise ValueError(f"count: expected a positive int, got {count!r}")
    if _exact(count):
        return [count]
    for k in range(1, count):
        if _exact(count - k) and _exact(k):
            return [count - k, k]
    return [1] * count  # unreachable: 1 is always exact


def format_rate(count: int) -> str:
    """``|@rate`` telling a server that this line stands for ``count`` samples ('' for one).

    Positional decimal (Etsy StatsD accepts only digits and dots) of the shortest string that
    parses back to ``1/count``; only for counts :func:`exact_parts` returns whole.
    """
    if count == 1:
        return ""
    if not _exact(count):
        raise ValueError(f"count: {count} has no sample rate whose reciprocal is exact; split it")
    return "|@" + format(Decimal(repr(1.0 / count)), "f")


def allocate_lines(counts: Sequence[int], max_samples: int) -> list[list[int]]:
    """Per bucket, the sample count each line stands for (see the module docstring)."""
    total = sum(counts)
    out: list[list[int]] = []
    for count in counts:
        if count <= 0:
            out.append([])
            continue
        lines = count if total <= max_samples else max(1, min(count, round(max_samples * count / total)))
        weight, extra = divmod(count, lines)
        weights = [weight + 1] * extra + [weight] * (lines - extra)
        out.append([part for w in weights for part in exact_parts(w)])
    return out


def sanitize_name(name: str) -> str:
    cleaned = _NAME_BAD.sub("_", name).strip(".")
    return re.sub(r"\.{2,}", ".", cleaned) or "_"


def sanitize_tag(text: str) -> str:
    return _TAG_BAD.sub("_", text) or "_"


def format_number(value: float) -> str:
    """Plain decimal without float noise or exponents: 0.011000000000000001 -> 0.011."""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        raise ValueError(f"cannot send a non-finite value ({value}) to StatsD")
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


class StatsDSink:
    """Formats collector calls as StatsD lines and sends them on ``flush()``."""

    def __init__(
        self,
        host: str = "localhost",
        port: int = 8125,
        prefix: str | None = "yokedcache",
        sample_rate: float = 1.0,
        timeout: float = 5.0,
        use_tags: bool = False,
        *,
        max_udp_size: int = 1432,
        log_interval: float = 60.0,
        max_samples: int = 64,
    ) -> None:
        require("statsd", "statsd")
        validation.host("host", host)
        validation.port("port", port)
        validation.string("prefix", prefix, allow_none=True)
        validation.number("sample_rate", sample_rate, rule="expected a number in (0, 1]", minimum=0, maximum=1,
                          allow_zero=False)  # fmt: skip
        validation.number("timeout", timeout, rule="expected a positive number of seconds", minimum=0,
                          allow_zero=False)  # fmt: skip
        validation.boolean("use_tags", use_tags)
        validation.number("max_udp_size", max_udp_size, rule="expected an int between 64 and 65000", integer=True,
                          minimum=64, maximum=65000)  # fmt: skip
        validation.number("max_samples", max_samples, rule="expected an int between 1 and 10000", integer=True,
                          minimum=1, maximum=10_000)  # fmt: skip
        self.host, self.port = host, port
        self.prefix = sanitize_name(prefix) if prefix else ""
        #: Accepted for compatibility. Lines are aggregated per flush and always sent at rate 1,
        #: so totals stay exact; sampling would only lose data.
        self.sample_rate = float(sample_rate)
        self.timeout = float(timeout)
        self.use_tags = use_tags
        self.max_udp_size = max_udp_size
        #: Lines per histogram series and flush beyond which lines carry sample rates.
        self.max_samples = max_samples
        self.log_interval = log_interval
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._client: Any = None
        self._last_log = 0.0
        self.datagrams_sent = 0
        self.lines_sent = 0
        self.send_errors = 0
        self.last_error: str | None = None

    # -- naming ---------------------------------------------------------------------------
    def _name(self, metric: str, tags: dict[str, Any] | None) -> tuple[str, str]:
        base = metric[len("cache.") :] if metric.startswith("cache.") and self.prefix else metric
        name = f"{self.prefix}.{base}" if self.prefix else base
        suffix = ""
        if tags:
            if self.use_tags:
                suffix = "|#" + ",".join(f"{sanitize_tag(str(k))}:{sanitize_tag(str(v))}" for k, v in tags.items())
            else:
                # Plain StatsD has no dimensions: the cache name would put a segment in every
                # documented name (myapp.cache.gets.hit), so it is left out and caches sum.
                name += "".join(f".{sanitize_tag(str(tags[k]))}" for k in sorted(tags) if k != CACHE_NAME)
        return sanitize_name(name), suffix

    def _add(self, metric: str, body: str, tags: dict[str, Any] | None) -> None:
        name, suffix = self._name(metric, tags)
        with self._lock:
            self._lines.append(f"{name}:{body}{suffix}")

    # -- the collector interface ----------------------------------------------------------
    async def increment(self, metric: str, value: float = 1, tags: dict[str, Any] | None = None) -> None:
        self._add(metric, f"{format_number(value)}|c", tags)

    async def gauge(self, metric: str, value: float, tags: dict[str, Any] | None = None) -> None:
        if value < 0:  # a leading sign means "adjust by"; reset first to send an absolute value
            self._add(metric, "0|g", tags)
        self._add(metric, f"{format_number(value)}|g", tags)

    def _samples(self, metric: str, value: float, counts: list[int], type_: str, scale: float, tags: Any) -> None:
        body = format_number(value * scale)
        for count in counts:
            self._add(metric, f"{body}|{type_}{format_rate(count)}", tags)

    def _distribution_type(self, unit: str) -> tuple[str, float]:
        if unit == "s":
            return "ms", 1000.0
        return ("h" if self.use_tags else "ms"), 1.0

    async def histogram(self, metric: str, value: float, tags: dict[str, Any] | None = None, count: int = 1) -> None:
        """One value standing for ``count`` samples (``|ms`` in plain mode, ``|h`` with tags)."""
        type_, scale = self._distribution_type("")
        self._samples(metric, value, exact_parts(count), type_, scale, tags)

    async def timing(self, metric: str, value: float, tags: dict[str, Any] | None = None, count: int = 1) -> None:
        """``value`` in seconds (as the documentation's examples pass it), sent as ``|ms``."""
        self._samples(metric, value, exact_parts(count), "ms", 1000.0, tags)

    async def distribution(
        self, metric: str, buckets: Sequence[tuple[float, int]], tags: dict[str, Any] | None = None, unit: str = ""
    ) -> None:
        """A flush's histogram for one attribute set: ``[(representative value, count)]`` per
        filled bucket. Durations (``unit="s"``) go out as millisecond timers."""
        type_, scale = self._distribution_type(unit)
        allocation = allocate_lines([count for _, count in buckets], self.max_samples)
        for (value, _), counts in zip(buckets, allocation, strict=True):
            self._samples(metric, value, counts, type_, scale, tags)

    # -- transport ------------------------------------------------------------------------
    def _datagrams(self, lines: list[str]) -> list[str]:
        out: list[str] = []
        current = ""
        for line in lines:
            if current and len(current) + 1 + len(line) > self.max_udp_size:
                out.append(current)
                current = line
            else:
                current = f"{current}\n{line}" if current else line
        if current:
            out.append(current)
        return out

    def _ensure_client(self) -> Any:
        if self._client is None:
            statsd = require("statsd", "statsd")
            sink = self

            class _CountingClient(statsd.StatsClient):  # type: ignore[misc,name-defined]
                # pystatsd swallows socket errors; count them instead.
                def _send(self, data: str) -> None:
                    try:
                        self._sock.sendto(data.encode("ascii", "replace"), self._addr)
                        sink.datagrams_sent += 1
                    except OSError as exc:
                        sink._failed(exc)

            self._client = _CountingClient(self.host, self.port, prefix=None, maxudpsize=self.max_udp_size)
            self._client._sock.settimeout(self.timeout)
        return self._client

    def _failed(self, exc: BaseException) -> None:
        self.send_errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        now = time.monotonic()
        if now - self._last_log >= self.log_interval:
            self._last_log = now
            log.warning("StatsD %s:%s unreachable (%s); %d send error(s) so far, metrics are being dropped",
                        self.host, self.port, self.last_error, self.send_errors)  # fmt: skip

    def flush(self) -> None:
        """Send buffered lines as packed datagrams. Never raises: failures are counted."""
        with self._lock:
            lines, self._lines = self._lines, []
        if not lines:
            return
        try:
            client = self._ensure_client()
        except OSError as exc:  # DNS failure: drop this flush, try again next time
            self._failed(exc)
            return
        for datagram in self._datagrams(lines):
            client._send(datagram)
        self.lines_sent += len(lines)

    def stats(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "datagrams_sent": self.datagrams_sent,
            "lines_sent": self.lines_sent,
            "send_errors": self.send_errors,
            "last_error": self.last_error,
        }

    def close(self) -> None:
        self.flush()
        if self._client is not None:
            self._client.close()
            self._client = None


class StatsDMetricExporter(CollectorExporter):
    """OTel exporter to StatsD; ``OTEL_METRICS_EXPORTER=statsd`` builds it with no arguments.

    Settings default from the environment: ``YOKEDCACHE_STATSD_HOST`` (localhost),
    ``YOKEDCACHE_STATSD_PORT`` (8125), ``YOKEDCACHE_STATSD_PREFIX`` (yokedcache),
    ``YOKEDCACHE_STATSD_USE_TAGS`` (false).
    """

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        prefix: str | None = None,
        use_tags: bool | None = None,
        **sink_options: Any,
    ) -> None:
        validation.boolean("use_tags", use_tags, allow_none=True)
        env = os.environ
        self.sink = StatsDSink(
            host or env.get("YOKEDCACHE_STATSD_HOST", "localhost"),
            port if port is not None else validation.env_port("YOKEDCACHE_STATSD_PORT", 8125),
            prefix if prefix is not None else env.get("YOKEDCACHE_STATSD_PREFIX", "yokedcache"),
            use_tags=use_tags if use_tags is not None else validation.env_flag("YOKEDCACHE_STATSD_USE_TAGS", False),
            **sink_options,
        )
        super().__init__([self.sink], timeout=self.sink.timeout)
