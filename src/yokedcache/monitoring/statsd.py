"""``StatsDCollector``: the documented StatsD collector, an OTel bridge exporter underneath."""

from __future__ import annotations

from typing import Any

from .. import validation
from .._extras import require

# Both before the bridge's own check (which would name [sdk]): one message, naming [statsd].
require("statsd", "statsd")
require("opentelemetry.sdk.metrics", "statsd")

from ..exporters.statsd import StatsDSink  # noqa: E402


class StatsDCollector(StatsDSink):
    """Send cache (and application) metrics to StatsD / DogStatsD.

    Aggregated per ``flush_interval`` seconds (default 1 s) and packed into datagrams, so the
    traffic does not grow with the number of cache operations. ``use_tags=True`` writes
    DogStatsD tags (``|#result:hit``). DNS is resolved on the first flush, in the exporter's
    thread; an unreachable or unresolvable host is counted in ``stats()`` and logged, never
    raised into the application.
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 8125,
        prefix: str | None = "yokedcache",
        sample_rate: float = 1.0,
        timeout: float = 5.0,
        use_tags: bool = False,
        *,
        flush_interval: float = 1.0,
        max_udp_size: int = 1432,
        max_samples: int = 64,
    ) -> None:
        super().__init__(
            host, port, prefix, sample_rate, timeout, use_tags, max_udp_size=max_udp_size, max_samples=max_samples
        )
        # NaN fails every comparison and inf makes the first export wait forever: either way
        # nothing would ever be sent, so both are rejected here.
        validation.number("flush_interval", flush_interval, rule="expected a positive, finite number of seconds",
                          minimum=0, allow_zero=False, finite=True)  # fmt: skip
        self.flush_interval = float(flush_interval)
        self.exporter: Any = None

    def metric_reader(self, timing_names: Any = frozenset(), **_: Any) -> Any:
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        from ..exporters.bridge import CollectorExporter

        self.exporter = CollectorExporter([self], timeout=self.timeout, timing_names=timing_names)
        return PeriodicExportingMetricReader(self.exporter, export_interval_millis=self.flush_interval * 1000)
