"""A Flask service using the cache in its handler, with the guide's own monitoring line.

Run by tests/test_multiprocess.py under gunicorn (sync and gthread workers). The cache lives on
one event loop per worker, in a thread, which every request thread hands its call to.
"""

import asyncio
import os
import threading

from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from yokedcache import CacheConfig, YokedCache
from yokedcache.monitoring import CacheMetrics, PrometheusCollector, make_wsgi_app

metrics = CacheMetrics([PrometheusCollector(port=int(os.environ["YC_METRICS_PORT"]))])
loop = asyncio.new_event_loop()
threading.Thread(target=loop.run_forever, daemon=True).start()


async def _build() -> YokedCache:
    return YokedCache(CacheConfig(redis_url=os.environ.get("YOKEDCACHE_REDIS_URL"), metrics=metrics))


cache = asyncio.run_coroutine_threadsafe(_build(), loop).result()
app = Flask(__name__)


async def _read_through(key: str) -> None:
    if await cache.get(key) is None:
        await cache.set(key, key, ttl=600)


@app.route("/item/<key>")
def item(key: str) -> str:
    asyncio.run_coroutine_threadsafe(_read_through(key), loop).result(timeout=10)
    return str(os.getpid())


app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/observability": make_wsgi_app(metrics)})
