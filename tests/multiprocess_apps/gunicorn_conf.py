"""gunicorn settings of the tests: the shipped child_exit hook, as docs/multiprocess.md shows."""

from yokedcache.monitoring import child_exit  # noqa: F401  (gunicorn reads it from this module)
