"""URL handling that never lets a credential escape into a log, repr, span or exception."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster", "redis+sentinel", "rediss+sentinel")


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (user names are kept)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None and "@" not in parts.netloc:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    netloc = f"{user}:***@{host}" if user else f":***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def check_redis_url(url: object, field: str = "redis_url") -> str:
    """Validate a Redis URL's type and scheme; the error names ``field`` and never the password."""
    if not isinstance(url, str):
        raise TypeError(f"{field}: expected a str, got {type(url).__name__}")
    try:
        scheme = urlsplit(url).scheme
    except ValueError as exc:
        raise ValueError(f"{field}: not a valid URL ({redact_url(url)})") from exc
    if scheme not in REDIS_SCHEMES:
        raise ValueError(
            f"{field}: scheme must be one of {', '.join(s + '://' for s in REDIS_SCHEMES)}, got {redact_url(url)!r}"
        )
    return url
