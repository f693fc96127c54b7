"""The HTTP server beside the metrics: ``/healthz``, ``/readyz``, the status page and its JSON.

Its modules are imported where they are used, not here: ``PrometheusCollector`` needs the
server as soon as it is built, but the status page (which reads and hashes its HTML file) only
once a collector binds to a meter provider with ``status_page=True``.
"""
