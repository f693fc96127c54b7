"""docs/monitoring.md, 'StatsD Integration', runnable; prints the lines a StatsD server receives.

    python examples/statsd_integration.py
A local UDP socket stands in for the StatsD daemon so the output can be seen.
"""

import asyncio
import socket

from yokedcache import CacheConfig, YokedCache
from yokedcache.monitoring import CacheMetrics, StatsDCollector


async def main() -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(2)
    port = server.getsockname()[1]

    # Basic StatsD setup
    StatsDCollector(host="localhost", port=8125, prefix="yokedcache")

    # Advanced configuration (an unresolvable host never blocks or crashes start-up)
    StatsDCollector(
        host="statsd.example.com",
        port=8125,
        prefix="myapp.cache",
        sample_rate=1.0,  # accepted; lines are aggregated per flush and always exact
        timeout=5.0,  # Socket timeout
    )

    # DataDog StatsD configuration
    statsd_collector = StatsDCollector(
        host="127.0.0.1",
        port=port,
        prefix="myapp.cache",
        use_tags=True,  # Enable DataDog-style tags
    )

    metrics = CacheMetrics([statsd_collector])
    async with YokedCache(CacheConfig(metrics=metrics)) as cache:
        for i in range(100):
            await cache.set(f"k{i}", i)
        for i in range(100):
            await cache.get(f"k{i + 20}")  # k100..k119 were never set: 20 misses
        metrics.force_flush()
    metrics.shutdown()
    while True:  # the first datagram within 2 s, then until the socket is quiet
        try:
            print(server.recv(65535).decode())
        except TimeoutError:
            break
        server.settimeout(0.2)


if __name__ == "__main__":
    asyncio.run(main())
