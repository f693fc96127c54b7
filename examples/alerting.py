"""docs/monitoring.md, 'Alerting and Notifications', runnable.

    python examples/alerting.py
Environment: ALERT_WEBHOOK_URL (default: docs/monitoring.md's placeholder), YOKEDCACHE_SMTP_HOST /
_PORT / _USERNAME / _PASSWORD / _FROM / _SECURITY for the e-mail alert, RUN_SECONDS (2).

A cold cache (every read a miss) trips the low-hit-rate alert on the first evaluation; its
webhook gets a JSON POST with the alert, metric, value, threshold, state and timestamp.
"""

import asyncio
import os

from yokedcache import YokedCache
from yokedcache.monitoring import AlertManager

WEBHOOK_URL = os.environ.get("ALERT_WEBHOOK_URL", "https://your-webhook.com/alerts")
RUN_SECONDS = float(os.environ.get("RUN_SECONDS", "2"))

cache = YokedCache()

alert_manager = AlertManager(cache, interval=0.5)

# Configure alert thresholds
alert_manager.add_alert(
    name="low_hit_rate",
    metric="hit_rate",
    threshold=0.70,
    comparison="less_than",
    webhook_url=WEBHOOK_URL,
)

alert_manager.add_alert(
    name="high_latency",
    metric="avg_response_time",
    threshold=0.100,
    comparison="greater_than",
    email_recipients=["admin@yourcompany.com"],
)

# Start monitoring
alert_manager.start()


async def main() -> None:
    for i in range(50):
        await cache.get(f"user:{i}")  # a cold cache: every read misses
    await asyncio.sleep(RUN_SECONDS)  # let the evaluator (a background thread) run
    print("active:", [a["alert"] for a in alert_manager.active_alerts()])
    print("history:", [(h["alert"], h["state"]) for h in alert_manager.history])
    alert_manager.stop()
    print("notification failures:", alert_manager.notification_failures)
    await cache.close()


if __name__ == "__main__":
    asyncio.run(main())
