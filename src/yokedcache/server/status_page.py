"""``/`` (a live status page) and ``/status.json`` beside ``/metrics`` on the same server.

The page is one self-contained HTML file (``status_page.html``): its style and script are
inline, it loads nothing else, and it draws its charts as inline SVG with about forty lines of
its own JavaScript. A charting library would be most of the page's weight (uPlot ~50 kB,
Chart.js ~200 kB) for three polylines, and would have to be vendored, pinned and audited
against the Content-Security-Policy; this needs none of that.

The policy allows exactly the page's own inline style and script (by SHA-256 hash, computed
here from the file), fetches from its own origin, and nothing else: no other origin, no
frames, no forms, no plugins, no base URL, and Trusted Types with no policy, so no string can
ever become HTML. The page only reads: no route here accepts anything but GET and HEAD.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Iterable
from importlib import resources
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from .status import StatusBoard

if TYPE_CHECKING:
    from ..telemetry.observers import Observed
    from .http import MetricsServer

__all__ = ["CONTENT_SECURITY_POLICY", "PAGE", "serve_status"]


def _load() -> tuple[bytes, str]:
    page = resources.files(__package__).joinpath("status_page.html").read_bytes()
    text = page.decode("utf-8")

    def hashes(tag: str) -> str:
        blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", text, flags=re.S)
        return " ".join(
            "'sha256-" + base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() + "'" for b in blocks
        )

    policy = "; ".join([
        "default-src 'none'",
        f"script-src {hashes('script')}",
        f"style-src {hashes('style')}",
        "connect-src 'self'",
        "img-src 'self' data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ])  # fmt: skip
    return page, policy


PAGE, CONTENT_SECURITY_POLICY = _load()

#: Sent with the page and the JSON: no caching (the figures are live), no sniffing, no
#: referrer, no framing.
_COMMON = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_PAGE_HEADERS = {**_COMMON, "Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Frame-Options": "DENY"}
_JSON_HEADERS = {**_COMMON, "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'"}


def _page(headers: dict[str, str]) -> tuple[int, str, bytes, dict[str, str]]:
    return 200, "text/html; charset=utf-8", PAGE, _PAGE_HEADERS


class StatusRoute:
    """``/status.json[?charts=SECONDS]``: the board's document; ``charts`` (0-300, default 0)
    adds that many seconds of chart points. Anything else in the query is a 400."""

    def __init__(self, board: StatusBoard) -> None:
        self.board = board

    def __call__(self, headers: dict[str, str]) -> tuple[int, str, bytes, dict[str, str]]:
        try:
            query = parse_qs(headers.get(":query", ""), keep_blank_values=True, strict_parsing=False, max_num_fields=4)
        except ValueError:
            return self._bad("too many query parameters")
        unknown = sorted(set(query) - {"charts"})
        if unknown:
            return self._bad(f"unknown query parameter {unknown[0][:40]!r}; only 'charts' is accepted")
        charts = 0.0
        if "charts" in query:
            try:
                charts = float(query["charts"][-1])
            except ValueError:
                return self._bad("charts: expected seconds of chart history, 0-300")
            if not 0 <= charts <= self.board.chart_seconds:  # also refuses nan
                return self._bad(f"charts: expected seconds of chart history, 0-{self.board.chart_seconds}")
        body = json.dumps(self.board.snapshot(charts), separators=(",", ":"), allow_nan=False).encode()
        return 200, "application/json", body, _JSON_HEADERS

    @staticmethod
    def _bad(message: str) -> tuple[int, str, bytes, dict[str, str]]:
        return 400, "application/json", json.dumps({"error": message}).encode(), _JSON_HEADERS


def serve_status(server: MetricsServer, source: Callable[[], Iterable[Observed]]) -> StatusBoard:
    """Add ``/`` and ``/status.json`` to ``server`` for the caches ``source()`` returns."""
    board = StatusBoard(source)
    server.route("/", _page)
    server.route("/status.json", StatusRoute(board))
    server.every_poll(board.tick)
    return board
