"""URLs: the one place that reads them for display and for validation.

:func:`redact_url` is the only function that turns a Redis URL into text for people (``repr``,
health reports and ``/readyz``, span and log text, CLI output, error messages), so a password
can only leak if this one function is wrong; tests/test_secrets.py generates URLs with a
password in every position redis-py reads one from and searches every output for it.

What it hides, and why:

- the password of ``user:password@`` (``user:***@``); a lone ``token@`` is hidden whole
  (``***@``): redis-py sends it as a user name, but people write ``redis://password@host``;
- the value of every query parameter except a few known to be harmless, so ``?password=``,
  ``?sentinel_password=``, ``?ssl_password=`` and anything unknown show as ``***``; an unknown
  parameter's name too (a raw ``&`` inside a password makes its tail look like a name);
- the fragment (redis-py ignores it; a raw ``#`` in a password starts one);
- a port that is not a number (a raw ``?`` or ``#`` in ``:password`` leaves it there);
- when a password holds a raw ``/``, ``?`` or ``#`` and so spills past the host part (an ``@``
  after it), everything up to the last ``@``.

It works on the string alone (no ``urlsplit().port``, which raises on a Sentinel host list),
costs a few microseconds and never raises.

:func:`safe_url` shows a webhook URL (alerting/notifiers.py) as ``scheme://host[:port]`` only:
Slack-style webhooks carry their token in the path, which :func:`redact_url` keeps.
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

from ._text import quoted

__all__ = [
    "REDIS_SCHEMES",
    "REDIS_URL_ENV",
    "SentinelTarget",
    "check_redis_url",
    "env_redis_url",
    "parse_sentinel_url",
    "redact_url",
    "safe_url",
    "url_error",
]

#: The environment variable that names the Redis to use when no URL is given.
REDIS_URL_ENV = "YOKEDCACHE_REDIS_URL"
#: The Redis URL when none is given: the library (``backend="redis"``) and the CLI probes agree on it.
DEFAULT_REDIS_URL = "redis://localhost:6379/0"

REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster", "redis+sentinel", "rediss+sentinel")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
#: Query parameters a Sentinel URL understands (the others would be ignored silently).
SENTINEL_QUERY = ("username", "password", "sentinel_username", "sentinel_password")

HIDDEN = "***"
#: Query parameters whose values are shown: redis-py settings that never hold a secret.
_SHOWN_QUERY = frozenset(
    {
        "db", "username", "sentinel_username", "protocol", "client_name", "lib_name", "lib_version",
        "socket_timeout", "socket_connect_timeout", "socket_read_size", "socket_keepalive", "timeout",
        "retry_on_timeout", "retry_on_error", "max_connections", "health_check_interval", "decode_responses",
        "encoding", "encoding_errors", "legacy_responses", "ssl_cert_reqs", "ssl_check_hostname",
        "ssl_min_version", "ssl_include_verify_flags", "ssl_exclude_verify_flags", "ssl_ca_certs",
        "ssl_ca_path", "ssl_certfile", "ssl_keyfile", "readonly", "read_from_replicas",
    }
)  # fmt: skip
#: Parameters shown by name (values hidden): everything else is hidden name and all.
_NAMED_QUERY = _SHOWN_QUERY | {"password", "sentinel_password", "ssl_password"}
_HOST_CHARS = re.compile(r"[\w.~%-]*")
_DB_PATH = re.compile(r"/?(\d*)/?")


class _Parts(NamedTuple):
    scheme: str | None  # None: no "://" at all
    userinfo: str | None  # text before the last "@" of the authority (None: no "@")
    spilled: bool  # the userinfo ran past the host part (raw / ? # in a password): hide it whole
    hosts: str
    path: str
    query: str | None
    fragment: str | None


def _split(url: str) -> _Parts:
    scheme: str | None
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = None, url
    parts = _split_rest(scheme, rest, spilled=False)
    if parts.spilled:  # resume after the last "@": what precedes it is (part of) a password
        cut = rest.rfind("@")
        tail = _split_rest(scheme, rest[cut + 1 :], spilled=True)
        return tail._replace(userinfo=rest[:cut])
    return parts


def _split_rest(scheme: str | None, rest: str, *, spilled: bool) -> _Parts:
    end = len(rest)
    for ch in "/?#":
        found = rest.find(ch, 0, end)
        if found != -1:
            end = found
    userinfo: str | None
    userinfo, at, hosts = rest[:end].rpartition("@")
    if not at:
        userinfo = None
    tail = rest[end:]
    fragment: str | None = None
    if "#" in tail:
        tail, _, fragment = tail.partition("#")
    path, question, query = tail.partition("?")
    # An "@" after the host part is legitimate only inside a query value we hide anyway.
    stray = "@" in path or (fragment is not None and "@" in fragment)
    if question:
        for item in query.split("&"):
            key, _, value = item.partition("=")
            if "@" in key or ("@" in value and key in _SHOWN_QUERY):
                stray = True
    return _Parts(scheme, userinfo, spilled or stray, hosts, path, query if question else None, fragment)


def _redact_host(item: str) -> str:
    if item.startswith("["):
        close = item.find("]")
        if close == -1:
            return item if all(c in "[0123456789abcdefABCDEF:." for c in item) else HIDDEN
        host, port = item[: close + 1], item[close + 1 :]
        if port == "" or (port.startswith(":") and port[1:].isascii() and port[1:].isdigit()):
            return item
        return f"{host}:{HIDDEN}"
    host, colon, port = item.partition(":")
    if not colon or (port.isascii() and port.isdigit()) or port == "":
        return item
    return f"{host}:{HIDDEN}"


def _redact_query(query: str) -> str:
    out = []
    for item in query.split("&"):
        key, eq, _ = item.partition("=")
        if key in _SHOWN_QUERY:
            out.append(item)
        elif key in _NAMED_QUERY:
            out.append(f"{key}={HIDDEN}" if eq else key)
        elif item:
            out.append(HIDDEN)
    return "&".join(out)


def redact_url(url: object) -> str:
    """``url`` with every credential replaced by ``***`` (see the module docstring). Never raises."""
    try:
        if not isinstance(url, str):
            return f"<{type(url).__name__}, not a URL>"
        p = _split(url)
        out = [] if p.scheme is None else [p.scheme, "://"]
        if p.userinfo is not None:
            user, colon, _ = p.userinfo.partition(":")
            out.append(f"{user}:{HIDDEN}@" if colon and not p.spilled else f"{HIDDEN}@")
        out.append(",".join(_redact_host(item) for item in p.hosts.split(",")))
        out.append(p.path)
        if p.query is not None:
            out += ["?", _redact_query(p.query)]
        if p.fragment is not None:
            out += ["#", HIDDEN]
        return "".join(out)
    except Exception:  # pragma: no cover - defensive: a display helper must not take the caller down
        return "<unparseable url>"


def safe_url(url: str) -> str:
    """``scheme://host[:port]``: enough to identify a webhook in a log, never its token."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return "<unparseable url>"


def default_redis_url() -> str:
    """``$YOKEDCACHE_REDIS_URL``, else ``redis://localhost:6379/0``: what ``backend="redis"`` uses."""
    return env_redis_url() or DEFAULT_REDIS_URL


def env_redis_url() -> str | None:
    """``$YOKEDCACHE_REDIS_URL`` as given (``None`` when unset or empty), not yet validated.

    Not validated here because each reader names the setting differently in its errors: the
    CLI passes it on as ``redis_url``, ``CacheConfig`` reports it by the variable's name.
    """
    return os.environ.get(REDIS_URL_ENV) or None


# -- validation -------------------------------------------------------------------------------
def _host_port(item: str, field: str, shown: str) -> tuple[str, int | None]:
    """``(host, port)`` of one ``host[:port]`` item; the error names the part that is wrong."""
    if item.startswith("[") or "]" in item:
        close = item.find("]")
        if not item.startswith("[") or close == -1:
            raise ValueError(f"{field}: unbalanced '[' in the host (write IPv6 as [::1]:6379), got {quoted(shown)}")
        host, rest = item[1:close], item[close + 1 :]
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise ValueError(f"{field}: host in [...] must be an IPv6 address, got {quoted(shown)}") from None
        if rest and not rest.startswith(":"):
            raise ValueError(f"{field}: expected ':port' after the IPv6 address, got {quoted(shown)}")
        port = rest[1:]
    else:
        host, _, port = item.partition(":")
        if not _HOST_CHARS.fullmatch(host):
            raise ValueError(f"{field}: host must be a host name or IP address, got {quoted(host)} in {quoted(shown)}")
    if port == "":
        return unquote(host), None
    if not (port.isascii() and port.isdigit()):
        raise ValueError(f"{field}: port must be a number 0-65535, got {quoted(shown)}")
    if int(port) > 65535:
        raise ValueError(f"{field}: port must be 0-65535, got {int(port)} in {quoted(shown)}")
    return unquote(host), int(port)


def check_redis_url(url: object, field: str = "redis_url") -> str:
    """Validate a Redis URL's form; the error names ``field`` and the part that is wrong, never a password.

    It checks what can be checked without redis-py (scheme, hosts, ports, database, the
    Sentinel service); redis-py's own checks of query values run when a backend is built.
    """
    if not isinstance(url, str):
        raise TypeError(f"{field}: expected a str, got {type(url).__name__}")
    shown = redact_url(url)
    p = _split(url)
    if p.scheme not in REDIS_SCHEMES:
        schemes = ", ".join(s + "://" for s in REDIS_SCHEMES)
        raise ValueError(f"{field}: scheme must be one of {schemes}, got {quoted(shown)}")
    if p.spilled:
        raise ValueError(
            f"{field}: '@' after the host part: percent-encode '/', '?', '#' and '@' in a password "
            f"(%2F, %3F, %23, %40), got {quoted(shown)}"
        )
    if p.fragment is not None:
        raise ValueError(f"{field}: a Redis URL has no '#fragment' (percent-encode '#' as %23), got {quoted(shown)}")
    if p.scheme in SENTINEL_SCHEMES:
        parse_sentinel_url(url, field)
        return url
    if p.scheme == "unix":
        if not p.path.strip("/"):
            raise ValueError(f"{field}: unix:// needs a socket path, e.g. unix:///run/redis.sock, got {quoted(shown)}")
        return url
    if "," in p.hosts:
        raise ValueError(f"{field}: several hosts work only with redis+sentinel://, got {quoted(shown)}")
    _host_port(p.hosts, field, shown)
    db = _DB_PATH.fullmatch(p.path)
    if db is None:
        raise ValueError(f"{field}: the path is the database number (e.g. /0), got {quoted(p.path)} in {quoted(shown)}")
    if p.scheme.endswith("+cluster") and db.group(1) and int(db.group(1)) != 0:
        raise ValueError(f"{field}: Redis Cluster has only database 0, got {quoted(p.path)} in {quoted(shown)}")
    return url


class SentinelTarget(NamedTuple):
    """What a ``redis+sentinel://`` URL asks for."""

    sentinels: list[tuple[str, int]]
    service: str
    db: int
    #: AUTH for the primary: userinfo, else ``?username=`` / ``?password=`` (redis-py's precedence).
    username: str | None
    password: str | None
    #: AUTH for the sentinels themselves (``?sentinel_username=`` / ``?sentinel_password=``).
    sentinel_username: str | None
    sentinel_password: str | None


def parse_sentinel_url(url: str, field: str = "redis_url") -> SentinelTarget:
    """Read ``redis+sentinel://[user:password@]host:port[,host:port...]/service[/db][?...]``."""
    shown = redact_url(url)
    p = _split(url)
    sentinels = [_sentinel_address(item, field, shown) for item in p.hosts.split(",")]
    service, db = _sentinel_path(p.path, field, shown)
    query = _sentinel_query(p.query, field, shown)
    username = password = None
    if p.userinfo is not None:
        user, colon, secret = p.userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon and secret else None
    return SentinelTarget(
        sentinels,
        service,
        db,
        username or query.get("username") or None,
        password or query.get("password") or None,
        query.get("sentinel_username") or None,
        query.get("sentinel_password") or None,
    )


def _sentinel_address(item: str, field: str, shown: str) -> tuple[str, int]:
    host, port = _host_port(item, field, shown)
    if not host or port is None:
        raise ValueError(f"{field}: sentinel addresses must be host:port, got {quoted(shown)}")
    return host, port


def _sentinel_path(path: str, field: str, shown: str) -> tuple[str, int]:
    """``(service, db)`` of ``/service[/db]``."""
    parts = [s for s in path.split("/") if s]
    if not parts:
        raise ValueError(f"{field}: name the sentinel service, e.g. redis+sentinel://host:26379/mymaster/0, "
                         f"got {quoted(shown)}")  # fmt: skip
    if len(parts) > 2:
        raise ValueError(f"{field}: the path is /service/db, got {quoted(shown)}")
    db = parts[1] if len(parts) > 1 else "0"
    if not (db.isascii() and db.isdigit()):
        raise ValueError(f"{field}: database must be a number, got {quoted(shown)}")
    return unquote(parts[0]), int(db)


def _sentinel_query(query: str | None, field: str, shown: str) -> dict[str, str]:
    found: dict[str, str] = {}
    if not query:
        return found
    for position, (key, values) in enumerate(parse_qs(query, keep_blank_values=True).items(), 1):
        if key not in SENTINEL_QUERY:
            # the name is not echoed: a raw '&' in a password would make its tail look like one
            takes = ", ".join(SENTINEL_QUERY)
            raise ValueError(f"{field}: query parameter #{position} is not one a Sentinel URL takes ({takes}; "
                             f"write '&' in a password as %26), got {quoted(shown)}")  # fmt: skip
        found[key] = values[0]
    return found


_UNEXPECTED_KWARG = re.compile(r"unexpected keyword argument '([^']*)'")


def url_error(exc: BaseException, url: str, field: str = "redis_url") -> ValueError:
    """A ``ValueError`` for redis-py rejecting ``url``: its message when it quotes nothing hidden."""
    shown = redact_url(url)
    message = str(exc)
    p = _split(url)
    names = [item.partition("=")[0] for item in (p.query or "").split("&")]
    unknown = _UNEXPECTED_KWARG.search(message)
    if unknown is not None and unknown.group(1) in names:
        # the name is not echoed: a raw '&' in a password would make its tail look like one
        position = names.index(unknown.group(1)) + 1
        return ValueError(f"{field}: query parameter #{position} is not a redis-py connection setting "
                          f"(write '&' in a password as %26), got {quoted(shown)}")  # fmt: skip
    userinfo = p.userinfo or ""
    hidden = [userinfo, userinfo.partition(":")[2] if ":" in userinfo else userinfo]
    for item in (p.query or "").split("&"):
        key, _, value = item.partition("=")
        if key not in _SHOWN_QUERY:
            hidden += [key, value]
    hidden += [unquote(h) for h in hidden]
    if any(h and h in message for h in hidden):
        message = type(exc).__name__
    return ValueError(f"{field}: {message} (in {quoted(shown)})")
