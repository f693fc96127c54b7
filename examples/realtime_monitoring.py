"""docs/monitoring.md, 'Real-time Performance Tracking', runnable.

    python examples/realtime_monitoring.py
Environment: YOKEDCACHE_REDIS_URL (unset: the in-memory backend).

The loop in docs/monitoring.md runs forever, checking every 30 seconds; here it runs as a task and is
cancelled once its first round has sent the alerts the workload deserves (a cold cache: low
hit rate). ``send_alert`` is yours to write: a chat webhook, a pager, a log line.
``yokedcache.monitoring.AlertManager`` does the same with webhooks and e-mail.
"""

import asyncio

from yokedcache import YokedCache

cache = YokedCache()
alerts: list[str] = []
first_round = asyncio.Event()


async def send_alert(message: str) -> None:
    alerts.append(message)
    print("ALERT:", message)
    first_round.set()


# Monitor performance in real-time
async def monitor_cache_performance():
    while True:
        metrics = cache.get_comprehensive_metrics()

        # Alert on poor performance
        if metrics.hit_rate is not None and metrics.hit_rate < 0.70:  # None: nothing read yet
            await send_alert(f"Low hit rate: {metrics.hit_rate:.2%}")

        if metrics.avg_response_time > 0.100:
            await send_alert(f"High latency: {metrics.avg_response_time:.3f}s")

        if metrics.error_rate > 0.01:
            await send_alert(f"High error rate: {metrics.error_rate:.3%}")

        await asyncio.sleep(30)  # Check every 30 seconds


async def main() -> None:
    for i in range(100):  # a cold cache: every read misses, then fills
        if await cache.get(f"user:{i}") is None:
            await cache.set(f"user:{i}", {"id": i})

    task = asyncio.create_task(monitor_cache_performance())
    await asyncio.wait_for(first_round.wait(), timeout=10)
    task.cancel()
    print(f"{len(alerts)} alert(s) after the first round")
    await cache.close()


if __name__ == "__main__":
    asyncio.run(main())
