"""A Redis password in any position redis-py reads one from never surfaces, and a malformed URL
is one clear line from the CLI (exit 2).

The property test plants a generated password (special characters included, raw where redis-py
takes them raw, percent-encoded otherwise) in the userinfo, ``?password=``, a Sentinel host list,
``?sentinel_password=``, cluster, ``rediss://`` and unix-socket URLs, and searches repr, logs,
exceptions, health, ``/readyz``, ``/metrics``, spans and the output of ``yokedcache health``,
``stats``, ``bench`` and ``demo`` for it. Where the form can reach a real server (redis://,
unix://) the server is given that password, so the test also proves the password is really used.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import subprocess
import sys
import traceback
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from yokedcache import CacheConfig, YokedCache
from yokedcache._urls import check_redis_url, parse_sentinel_url, redact_url
from yokedcache.cli import main as cli_main
from yokedcache.monitoring import CacheMetrics, PrometheusCollector

from .redis_server import RedisSentinelServer, RedisServer, free_port

README_SENTINEL_URL = "redis+sentinel://:pw@h1:26379,h2:26380/mymaster/0"

# Ends of every generated password: a leak of either half (a split at a special character) shows.
HEAD, TAIL = "Zq8Pw", "Vx3Kt"
SPECIAL = "@:/%?#&=+ ,;[]!$'()*~\\\"<>"


# -- redaction, no server ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (README_SENTINEL_URL, "redis+sentinel://:***@h1:26379,h2:26380/mymaster/0"),
        ("redis://localhost:6379/0?password=PW", "redis://localhost:6379/0?password=***"),
        (
            "redis://h/0?db=1&username=al&password=PW&socket_timeout=2",
            "redis://h/0?db=1&username=al&password=***&socket_timeout=2",
        ),
        ("redis://al:PW@h:6379/0", "redis://al:***@h:6379/0"),
        ("redis://PW@h:6379/0", "redis://***@h:6379/0"),  # a lone token may be a password: hidden whole
        ("redis://:P@W:x@h:6379/0", "redis://:***@h:6379/0"),  # raw '@' and ':' in a password
        ("redis://:P%40W%2F@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://:PW/xx@h:6379/0", "redis://***@h:6379/0"),  # raw '/' spills past the host part
        ("redis://:PW?xx@h:6379/0", "redis://***@h:6379/0"),
        ("redis://:PW#xx@h:6379/0", "redis://***@h:6379/0"),
        ("redis://:PW?password=x@h", "redis://:***?password=***"),  # what is left in the port is hidden
        ("redis://h/0?password=PW&xx", "redis://h/0?password=***&***"),  # raw '&' in a password
        ("redis://h/0?ssl_password=PW&foo=PW", "redis://h/0?ssl_password=***&***"),
        ("redis+sentinel://h:1/m/0?sentinel_password=PW", "redis+sentinel://h:1/m/0?sentinel_password=***"),
        ("rediss+cluster://:PW@[::1]:7000/0", "rediss+cluster://:***@[::1]:7000/0"),
        ("unix://:PW@/run/redis.sock?db=2", "unix://:***@/run/redis.sock?db=2"),
        ("unix:///run/redis.sock?password=PW", "unix:///run/redis.sock?password=***"),
        ("redis://h:6379/0#PW", "redis://h:6379/0#***"),
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
    ],
)
def test_redact_url_hides_every_password_position(url, shown):
    assert redact_url(url) == shown


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet=":/@?#&=[],%" + "abc1").map(lambda s: "redis://" + s)))
@example("redis://[")
@example("redis+sentinel://:pw@h1:26379,h2:x/")
def test_redaction_never_raises_and_never_echoes_userinfo(text):
    out = redact_url(text)
    assert isinstance(out, str)
    _, sep, rest = text.partition("://")
    authority = rest.split("/")[0].split("?")[0].split("#")[0]
    if sep and "@" in authority:
        secret = authority.rpartition("@")[0].partition(":")[2]
        if len(secret) >= 4:  # a short one may coincide with other text of the URL
            assert secret not in out


@pytest.mark.parametrize("value", [None, 42, b"redis://:pw@h", object()])
def test_redaction_of_a_non_string_says_so(value):
    assert "not a URL" in redact_url(value)


def test_sentinel_url_reads_every_password_position():
    target = parse_sentinel_url(
        "redis+sentinel://u:p%40ss@h1:1,[::1]:2/svc/3?sentinel_password=s%26p&sentinel_username=su"
    )
    assert target.sentinels == [("h1", 1), ("::1", 2)] and (target.service, target.db) == ("svc", 3)
    assert (target.username, target.password) == ("u", "p@ss")
    assert (target.sentinel_username, target.sentinel_password) == ("su", "s&p")
    # like redis-py: the userinfo wins over ?password=
    assert parse_sentinel_url("redis+sentinel://:a@h:1/m?password=b").password == "a"
    assert parse_sentinel_url("redis+sentinel://h:1/m?password=b&username=x").password == "b"


def test_sentinel_url_refuses_a_query_parameter_it_would_ignore_without_naming_it():
    with pytest.raises(ValueError, match=r"redis_url: query parameter #2 is not one a Sentinel URL takes") as info:
        check_redis_url("redis+sentinel://h:1/m/0?password=Zq8Pw&Vx3Kt=1")  # a raw '&' in the password
    assert HEAD not in str(info.value) and TAIL not in str(info.value)


# -- the CLI and a malformed URL -------------------------------------------------------------
SECRET = "s3cret-Zq8Pw"


def _run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://localhost:6379/0", "scheme must be one of"),
        ("REDIS://localhost:6379/0", "scheme must be one of"),  # redis-py only takes lowercase schemes
        (f"redis://:{SECRET}@localhost:99999/0", "port must be 0-65535, got 99999"),
        (f"redis://:{SECRET}@localhost:65536/0", "port must be 0-65535, got 65536"),
        (f"redis://:{SECRET}@localhost:abc/0", "port must be a number 0-65535"),
        (f"redis://:{SECRET}@bad_host!:6379/0", "host must be a host name or IP address, got 'bad_host!'"),
        (f"redis://:{SECRET}@[::1:6379/0", "unbalanced '['"),
        (f"redis://:{SECRET}@[not-v6]:6379/0", "must be an IPv6 address"),
        (f"redis://:{SECRET}@a:1,b:2/0", "several hosts work only with redis+sentinel://"),
        (f"redis://:{SECRET}@localhost:6379/zero", "the path is the database number"),
        (f"redis://:{SECRET}/x@localhost:6379/0", "percent-encode"),
        (f"redis://:{SECRET}@localhost:6379/0#frag", "no '#fragment'"),
        (f"redis://localhost:6379/0?pasword={SECRET}", "query parameter #1 is not a redis-py connection setting"),
        (f"redis://localhost:6379/0?socket_timeout=soon&password={SECRET}", "Invalid value for 'socket_timeout'"),
        ("unix://", "unix:// needs a socket path"),
        (f"redis+cluster://:{SECRET}@127.0.0.1:7000/3", "Redis Cluster has only database 0"),
        (f"redis://:{SECRET}@h:1/0?health_check_interval=soon", "Invalid value for 'health_check_interval'"),
        (f"redis+sentinel://:{SECRET}@h1:26379,h2/mymaster/0", "sentinel addresses must be host:port"),
        (f"redis+sentinel://:{SECRET}@h1:26379,h2:99999/mymaster/0", "port must be 0-65535, got 99999"),
        (f"redis+sentinel://:{SECRET}@h1:26379/", "name the sentinel service"),
        (f"redis+sentinel://:{SECRET}@h1:26379/mymaster/x", "database must be a number"),
    ],
)
@pytest.mark.parametrize("command", ["health", "stats", "bench", "demo"])
def test_a_malformed_url_is_one_line_naming_the_part_and_exit_2(url, says, command):
    code, out, err = _run_cli([command, "--redis-url", url])
    assert code == 2, (out, err)
    assert out == "" and err.count("\n") == 1, err
    assert err.startswith(f"yokedcache {command}: error: redis_url: ") and says in err, err
    assert SECRET not in err and "Traceback" not in err


def test_the_installed_command_reports_a_bad_port_without_a_traceback(monkeypatch):
    # the real entry point in a fresh process, with the URL from the environment this time
    env = {"YOKEDCACHE_REDIS_URL": f"redis://:{SECRET}@localhost:99999/0", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "yokedcache", "health"], capture_output=True, text=True,
                            timeout=60, env=env)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == (
        "yokedcache health: error: redis_url: port must be 0-65535, got 99999 in 'redis://:***@localhost:99999/0'\n"
    )
    assert result.stdout == ""


# -- the property test: a password in every position, searched for everywhere --------------
@dataclass
class Live:
    server: RedisServer
    admin: redis.Redis
    socket: str
    collector: PrometheusCollector
    metrics: CacheMetrics
    tracer_provider: TracerProvider
    spans: InMemorySpanExporter
    dead: int
    dead2: int


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    from .conftest import _require_redis

    _require_redis()
    server = RedisServer()
    sock = str(server.dir / "redis.sock")
    server.extra_args += ["--unixsocket", sock, "--unixsocketperm", "700"]
    server.start()
    setup = redis.Redis(port=server.port)
    setup.acl_setuser("admin", enabled=True, passwords=["+admin-pw"], keys=["*"], channels=["*"], commands=["+@all"])
    setup.close()
    admin = redis.Redis(port=server.port, username="admin", password="admin-pw")
    collector = PrometheusCollector(port=0)
    metrics = CacheMetrics([collector])
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    yield Live(server, admin, sock, collector, metrics, tracer_provider, spans, free_port(), free_port())
    metrics.shutdown()
    tracer_provider.shutdown()
    admin.close()
    server.close()


# name: (template, reaches the live server, ACL user the password belongs to)
FORMS: dict[str, tuple[str, bool, str]] = {
    "redis-userinfo": ("redis://:{u}@127.0.0.1:{port}/0", True, "default"),
    "redis-user-userinfo": ("redis://alice:{u}@127.0.0.1:{port}/1", True, "alice"),
    "redis-token-userinfo": ("redis://{u}@127.0.0.1:{port}/0", False, "default"),
    "redis-query": ("redis://127.0.0.1:{port}/0?password={q}", True, "default"),
    "redis-query-user": (
        "redis://localhost:{port}?db=2&username=alice&password={q}&socket_keepalive=true",
        True,
        "alice",
    ),
    "redis-userinfo-and-query": ("redis://:{u}@127.0.0.1:{port}/0?password={q}", True, "default"),
    "unix-userinfo": ("unix://:{u}@{sock}?db=0", True, "default"),
    "unix-query": ("unix://{sock}?password={q}", True, "default"),
    "rediss-userinfo": ("rediss://:{u}@127.0.0.1:{dead}/0", False, "default"),
    "rediss-query": ("rediss://localhost:{dead}/0?password={q}&ssl_cert_reqs=none", False, "default"),
    "cluster-userinfo": ("redis+cluster://:{u}@127.0.0.1:{dead}/0", False, "default"),
    "cluster-query": ("rediss+cluster://127.0.0.1:{dead}/0?password={q}", False, "default"),
    "sentinel-userinfo": ("redis+sentinel://:{u}@127.0.0.1:{dead},localhost:{dead2}/mymaster/0", False, "default"),
    "sentinel-query": ("redis+sentinel://127.0.0.1:{dead},[::1]:{dead2}/mymaster/0?password={q}", False, "default"),
    "sentinel-own-password": (
        "rediss+sentinel://bob:{u}@127.0.0.1:{dead}/mymaster/1?sentinel_password={q}",
        False,
        "default",
    ),
}

_middle = st.lists(
    st.one_of(
        st.sampled_from(list(SPECIAL)),
        st.characters(min_codepoint=33, max_codepoint=126),
        st.characters(min_codepoint=0xA1, max_codepoint=0x2FFF, exclude_categories=("Cs", "Cc", "Z")),
    ),
    max_size=10,
).map("".join)
passwords = _middle.map(lambda middle: HEAD + middle + TAIL)


def _in_userinfo(password: str, encode: bool) -> str:
    # redis-py takes any character raw in ':password@' except those that end the host part
    # (and '%' escapes, '[' ']' that urlsplit reads as IPv6, non-ASCII that it normalises)
    if encode or any(c in "/?#[]%\\" or c.isspace() or not c.isascii() for c in password):
        return quote(password, safe="")
    return password


def _in_query(password: str, encode: bool) -> str:
    if encode or any(c in "&#+%" or c.isspace() or not c.isascii() for c in password):
        return quote_plus(password, safe="")
    return password


def _fetch(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read().decode()
    except urllib.error.HTTPError as exc:  # /readyz answers 503 while a cache is unhealthy
        return exc.read().decode()


@pytest.mark.parametrize("form", sorted(FORMS))
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(password=passwords, encode=st.booleans(), fail_open=st.booleans())
def test_a_password_in_any_position_never_surfaces(live, form, password, encode, fail_open):
    template, reaches, user = FORMS[form]
    u, q = _in_userinfo(password, encode), _in_query(password, encode)
    url = template.format(u=u, q=q, port=live.server.port, sock=live.socket, dead=live.dead, dead2=live.dead2)
    if reaches:  # the server now takes exactly this password: the URL really authenticates with it
        live.admin.acl_setuser(user, enabled=True, reset_passwords=True, passwords=["+" + password], keys=["*"],
                               channels=["*"], commands=["+@all"])  # fmt: skip
    seen: list[str] = []
    live.spans.clear()
    logs = io.StringIO()
    handler = logging.StreamHandler(logs)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)

    async def use_the_cache() -> str:
        config = CacheConfig(redis_url=url, metrics=live.metrics, tracer_provider=live.tracer_provider,
                             fail_open=fail_open, retry_attempts=0, health_check_timeout=2.0,
                             connect_timeout=0.5, operation_timeout=2.0)  # fmt: skip
        cache = YokedCache(config)
        seen.extend([repr(config), str(config), repr(cache), repr(cache.backend), redact_url(url)])
        try:
            await cache.set("k", {"v": 1}, tags=["t"])
            await cache.get("k")
            await cache.get_many(["k", "x"])
            await cache.invalidate_tags("t")
        except Exception as exc:  # fail-closed: the exception itself must be clean
            seen.extend([str(exc), repr(exc), "".join(traceback.format_exception(exc))])
        report = await cache.detailed_health_check()
        seen.extend([json.dumps(report, default=str), repr(await cache.get_stats())])
        seen.append(await asyncio.to_thread(_fetch, live.collector.url + "/readyz"))
        await cache.close()
        return str(report["status"])

    try:
        status = asyncio.run(use_the_cache())
        seen.append(_fetch(live.collector.url + "/metrics"))
        commands = [["health", "--json"], ["health"], ["stats"], ["stats", "--json"],
                    ["bench", "--ops", "3", "--warmup", "0", "--no-progress", "--no-metrics"]]  # fmt: skip
        if not reaches:  # a running demo takes over a second: it runs once, in the Sentinel test below
            commands.append(["demo", "--port", "0", "--duration", "0.2", "--quiet"])
        for argv in commands:
            code, out, err = _run_cli([argv[0], "--redis-url", url, *argv[1:]])
            seen.extend([out, err])
            if reaches:
                assert code == 0, (argv, out, err)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    seen.append(logs.getvalue())
    for span in live.spans.get_finished_spans():
        seen.extend([span.name, json.dumps(dict(span.attributes or {}), default=str), str(span.status.description)])
        seen.extend(json.dumps(dict(e.attributes or {}), default=str) for e in span.events)

    if reaches:
        assert status == "healthy", seen
    else:
        assert status == "unhealthy"
    assert any("***" in text for text in seen)  # the URL is shown, redacted
    needles = {password, u, q, quote(password, safe=""), quote_plus(password, safe=""), HEAD, TAIL}
    leaks = [(needle, text) for text in seen for needle in needles if needle in text]
    assert not leaks, leaks[0][1][:2000]


# -- the README's Sentinel URL ----------------------------------------------------------------
PRIMARY_PW = "pr1mary:p@ss/Zq8Pw"  # ':' '@' and '/' in it: percent-encoded below where needed
SENTINEL_PW = "sent1nel&pw#?Vx3Kt"


@pytest.fixture(scope="module")
def sentinels() -> Iterator[tuple[RedisSentinelServer, RedisSentinelServer]]:
    """One primary with a password, watched by an open sentinel and one with its own password."""
    from .conftest import _require_redis

    _require_redis()
    primary = RedisServer(password=PRIMARY_PW)
    primary.start()
    open_sentinel = RedisSentinelServer(primary)
    locked_sentinel = RedisSentinelServer(primary, password=SENTINEL_PW)
    open_sentinel.start()
    locked_sentinel.start()
    yield open_sentinel, locked_sentinel
    open_sentinel.close()
    locked_sentinel.close()
    primary.close()


async def test_the_readme_sentinel_url_as_written_constructs_redacts_and_fails_open():
    cache = YokedCache(CacheConfig(redis_url=README_SENTINEL_URL, retry_attempts=0))  # raised ValueError before
    try:
        assert cache.backend.service == "mymaster"
        assert repr(cache) == (
            "YokedCache(name='redis', backend=RedisSentinelBackend("
            "'redis+sentinel://:***@h1:26379,h2:26380/mymaster/0', service='mymaster'), key_prefix='yokedcache:')"
        )
        assert await cache.set("k", 1) is False and await cache.get("k", "fallback") == "fallback"  # fail-open
        report = await cache.detailed_health_check()
        assert report["status"] == "unhealthy"
        assert report["backend"]["url"] == "redis+sentinel://:***@h1:26379,h2:26380/mymaster/0"
        assert ":pw@" not in repr(cache.config) + json.dumps(report, default=str)
    finally:
        await cache.close()


def test_the_readme_sentinel_form_works_against_real_sentinels(sentinels):
    """Two sentinels as in the README (the first one down), the primary's password in the userinfo."""
    open_sentinel, _ = sentinels
    url = (f"redis+sentinel://:{quote(PRIMARY_PW, safe='')}@127.0.0.1:{free_port()},"
           f"127.0.0.1:{open_sentinel.port}/mymaster/3")  # fmt: skip
    collector = PrometheusCollector(port=0)
    metrics = CacheMetrics([collector])
    seen: list[str] = []

    async def use() -> dict:
        async with YokedCache(CacheConfig(redis_url=url, metrics=metrics)) as cache:
            assert await cache.set("user:1", {"n": 1}, tags=["users"]) is True
            assert await cache.get("user:1") == {"n": 1}
            direct = redis.Redis(port=open_sentinel.primary.port, password=PRIMARY_PW, db=3)
            assert direct.get("yokedcache:user:1") == b'{"n":1}'  # on the primary the live sentinel named
            direct.close()
            seen.extend([repr(cache), repr(cache.config), await asyncio.to_thread(_fetch, collector.url + "/readyz")])
            return await cache.detailed_health_check()

    try:
        report = asyncio.run(use())
    finally:
        metrics.shutdown()
    assert report["status"] == "healthy"
    seen.append(json.dumps(report, default=str))
    for argv in (["health"], ["stats", "--json"], ["bench", "--ops", "3", "--warmup", "0", "--no-progress"],
                 ["demo", "--port", "0", "--duration", "0.2", "--quiet"]):  # fmt: skip
        code, out, err = _run_cli([argv[0], "--redis-url", url, *argv[1:]])
        assert code == 0, (argv, out, err)
        seen.extend([out, err])
    assert any("redis+sentinel://:***@127.0.0.1:" in text for text in seen)
    for needle in (PRIMARY_PW, quote(PRIMARY_PW, safe=""), "Zq8Pw"):
        assert not [text for text in seen if needle in text]


def test_a_sentinel_with_its_own_password_takes_it_from_the_query(sentinels):
    _, locked = sentinels
    base = f"redis+sentinel://127.0.0.1:{locked.port}/mymaster/0?password={quote(PRIMARY_PW, safe='')}"
    with_it = base + "&sentinel_password=" + quote(SENTINEL_PW, safe="")

    async def status(url: str) -> tuple[str, list[str]]:
        async with YokedCache(CacheConfig(redis_url=url, retry_attempts=0)) as cache:
            written = await cache.set("k", "v")  # fail-open either way: never raises
            report = await cache.detailed_health_check()
            texts = [repr(cache), json.dumps(report, default=str)]
            return ("written" if written else "refused") + ":" + report["status"], texts

    good, texts_good = asyncio.run(status(with_it))
    bad, texts_bad = asyncio.run(status(base))
    assert good == "written:healthy"
    assert bad == "refused:unhealthy"  # the sentinel refused to name the primary without AUTH
    code, out, err = _run_cli(["health", "--redis-url", with_it])
    assert code == 0, err
    seen = [*texts_good, *texts_bad, out, err]
    assert "sentinel_password=***" in out
    for needle in (PRIMARY_PW, SENTINEL_PW, quote(PRIMARY_PW, safe=""), quote(SENTINEL_PW, safe=""), "Zq8Pw", "Vx3Kt"):
        assert not [text for text in seen if needle in text]
