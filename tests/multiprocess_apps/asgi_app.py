"""A Starlette service using the cache in its handler, with the guide's own monitoring line.

Run by tests/test_multiprocess.py under gunicorn (UvicornWorker) and ``uvicorn --workers``.
Environment: YC_METRICS_PORT, YOKEDCACHE_REDIS_URL (memory when unset), YC_MP_ARG (pass the
multiprocess directory as the documented argument instead of $PROMETHEUS_MULTIPROC_DIR).
"""

import os

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from yokedcache import CacheConfig, YokedCache
from yokedcache.monitoring import CacheMetrics, PrometheusCollector, make_asgi_app

extra = {"multiprocess_dir": os.environ["YC_MP_ARG"]} if os.environ.get("YC_MP_ARG") else {}
metrics = CacheMetrics([PrometheusCollector(port=int(os.environ["YC_METRICS_PORT"]), **extra)])
cache = YokedCache(CacheConfig(redis_url=os.environ.get("YOKEDCACHE_REDIS_URL"), metrics=metrics))


async def item(request):
    key = request.path_params["key"]
    if await cache.get(key) is None:
        await cache.set(key, key, ttl=600)
    return PlainTextResponse(str(os.getpid()))


app = Starlette(routes=[Route("/item/{key}", item), Mount("/observability", app=make_asgi_app(metrics))])
