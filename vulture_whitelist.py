"""Names vulture (``make lint``, 80 % confidence) reports as unused, each with the reason it stays.

Vulture reads this file and counts every name below as used; nothing imports it.
"""

# src/yokedcache/backends/autopipeline.py, BatchObserver.pipeline_started: a Protocol method's
# parameter. The stub body never reads it; the implementation in
# src/yokedcache/telemetry/instrumentation.py does (as ``spans``).
contexts  # noqa: B018, F821
