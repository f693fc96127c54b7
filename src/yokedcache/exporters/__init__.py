"""OpenTelemetry SDK readers and exporters: how recorded metrics reach a peer.

Apart from ``telemetry/``, which records through the OpenTelemetry API only, because everything
here needs the SDK (an optional extra): the core install imports none of it
(``tests/test_import_graph.py``).

- ``collectors.py``: what ``CacheMetrics`` asks of a collector (the ``Collector`` contract of
  the built-in ones, the documented ``PushCollector`` shape, ``ReaderSource``), no SDK import;
- ``bridge.py``: one ``MetricExporter`` feeding push-style collectors (StatsD, user collectors),
  and ``bridge_reader``, the periodic reader around it;
- ``statsd.py``: StatsD lines, the sink that sends them, and ``OTEL_METRICS_EXPORTER=statsd``;
- ``prometheus.py``: the Prometheus reader with yokedcache's renaming, one scrape at a time;
- ``otlp.py``: the OTLP metric and span exporters, reader and span processor (gRPC and HTTP)
  that ``OTLPCollector`` (``monitoring/otlp.py``) is built from;
- ``shutdown.py``: the deadline on shutting the providers down (no SDK import of its own).
"""
