"""docs/monitoring.md, 'Custom Metrics', runnable: a custom collector and application metrics.

python examples/custom_metrics.py
"""

import asyncio
import time

from yokedcache import CacheConfig, YokedCache
from yokedcache.monitoring import CacheMetrics


class CustomMetricsCollector:
    """Custom metrics collector example (collects in memory instead of posting to a webhook)."""

    def __init__(self, webhook_url: str):
        self.webhook_url = webhook_url
        self.sent: list[dict] = []

    async def increment(self, metric: str, value: float = 1, tags: dict | None = None):
        await self._send_webhook({"type": "increment", "metric": metric, "value": value, "tags": tags or {},
                                  "timestamp": time.time()})  # fmt: skip

    async def gauge(self, metric: str, value: float, tags: dict | None = None):
        await self._send_webhook({"type": "gauge", "metric": metric, "value": value, "tags": tags or {},
                                  "timestamp": time.time()})  # fmt: skip

    async def histogram(self, metric: str, value: float, tags: dict | None = None):
        await self._send_webhook({"type": "histogram", "metric": metric, "value": value, "tags": tags or {}})

    async def timing(self, metric: str, value: float, tags: dict | None = None):
        await self._send_webhook({"type": "timing", "metric": metric, "value": value, "tags": tags or {}})

    async def _send_webhook(self, data: dict):
        self.sent.append(data)  # a real one would POST to self.webhook_url


def get_active_session_count() -> int:
    return 42


async def track_business_metrics(cache_metrics: CacheMetrics):
    """Track business-specific metrics."""
    await cache_metrics.increment("user.login", tags={"source": "api", "method": "oauth"})
    await cache_metrics.gauge("active_sessions", value=get_active_session_count(), tags={"server": "web-01"})
    timer_id = cache_metrics.start_timer("request_processing")
    await asyncio.sleep(0.01)  # ... process request ...
    await cache_metrics.end_timer(timer_id, "request_processing", {"endpoint": "/api/users", "status_code": "200"})


async def main() -> None:
    custom_collector = CustomMetricsCollector("https://metrics.example.com/webhook")
    metrics = CacheMetrics([custom_collector])
    async with YokedCache(CacheConfig(metrics=metrics)) as cache:
        await cache.set("k", 1)
        await cache.get("k")
        await track_business_metrics(metrics)
        metrics.force_flush()
    metrics.shutdown()
    for item in custom_collector.sent:
        print(item["type"], item["metric"], round(item["value"], 6), item["tags"])


if __name__ == "__main__":
    asyncio.run(main())
