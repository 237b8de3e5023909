"""HTTP semantics every endpoint shares, in one place.

- Validators: a strong `ETag` (hash of the uncompressed body) on every buffered GET 200;
  handlers add `Last-Modified` themselves (see `http_date`). `If-None-Match`, else
  `If-Modified-Since`, answers 304 with the validators and caching headers and no body
  (RFC 9110 section 13.2.2).
- `Cache-Control` by route (`CACHE_CONTROL`); errors are `no-store` (see problems.py).
- gzip (brotli when the package is installed) above `COMPRESS_MIN_BYTES`, and
  `Vary: Accept-Encoding` on every response, so caches never mix encodings.
- `HEAD` on every GET endpoint: answered as the GET, without the body.
- CORS for the origins in `PAPERS_CORS_ORIGINS` only.
- A request body must be JSON (`415` otherwise).
- A query string that is not UTF-8, or a NUL character in the path or query: `400`.

Order, outermost first: the access log, metrics and limits (app.py), `edge` (HEAD, Vary,
Allow), CORS, the router, then per route compression, `conditional_get`, and the handler.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final

import msgspec
from litestar import Litestar, Request
from litestar.config.compression import CompressionConfig
from litestar.config.cors import CORSConfig
from litestar.datastructures import MutableScopeHeaders, ResponseHeader
from litestar.enums import ScopeType
from litestar.exceptions import ClientException
from litestar.middleware.compression import CompressionMiddleware
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    HTTPScope,
    Message,
    Receive,
    Scope,
    Send,
)

from service.api.limits import send_problem
from service.api.problems import PROBLEM_JSON, build_problem

# Cache-Control by route (path templates with `{}` for each path parameter). Papers and
# topics change only when a load runs; search results and listings move with every load,
# so they are kept briefly; validators make revalidation cheap everywhere.
CACHE_CONTROL: Final[dict[str, str]] = {
    "/v1/papers/{}": "public, max-age=300",
    "/v1/papers/{}/related": "public, max-age=300",
    "/v1/papers": "public, max-age=60",
    "/v1/papers.jsonl": "public, max-age=300",
    "/v1/topics": "public, max-age=300",
    "/v1/topics/{}/papers": "public, max-age=60",
    "/v1/search": "public, max-age=30",
    "/v1/suggest": "public, max-age=300",
    "/health": "no-store",
    "/ready": "no-store",
    "/metrics": "no-store",
    "/problems/{}": "public, max-age=86400",
}
SCHEMA_CACHE_CONTROL: Final = "public, max-age=300"  # /schema and everything under it
DEFAULT_CACHE_CONTROL: Final = "no-cache"  # any other GET: store, but revalidate each time
UNSAFE_CACHE_CONTROL: Final = "no-store"  # answers to POST and other non-GET methods

COMPRESS_MIN_BYTES: Final = 1024

# For the OpenAPI document only (documentation_only: never sent as these values).
DOCUMENTED_HEADERS: Final = [
    ResponseHeader(
        name="ETag",
        documentation_only=True,
        value='"3f2c0e5b9a1d4c7e8f6a2b1c0d9e8f7a"',
        description="Strong validator of a GET answer (not on streamed ones); "
        "send it back in `If-None-Match`.",
    ),
    ResponseHeader(
        name="Cache-Control",
        documentation_only=True,
        value="public, max-age=300",
        description="How long the answer may be reused; see the API description.",
    ),
    ResponseHeader(
        name="Vary",
        documentation_only=True,
        value="Accept-Encoding",
        description="`Accept-Encoding` (and `Origin` when CORS origins are configured).",
    ),
    ResponseHeader(
        name="X-Request-ID",
        documentation_only=True,
        value="4bf92f3577b34da6a3ce929d0e0e4736",
        description="The request's id (the one sent, if any); it names the request in the logs.",
    ),
]

# What a 304 carries over from the 200 it stands for (RFC 9110 section 15.4.5).
_NOT_MODIFIED_HEADERS: Final = frozenset(
    {b"etag", b"last-modified", b"cache-control", b"vary", b"expires", b"content-location"}
)
_PARAM: Final = re.compile(r"\{[^}]*\}")
_ENTITY_TAG: Final = re.compile(r'(?:W/)?("[^"]*")')


_DAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS: Final = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)


def http_date(moment: datetime) -> str:
    """An HTTP-date (`Last-Modified` value) for an aware datetime: RFC 9110's IMF-fixdate,
    written directly (email.utils.format_datetime took a tenth of a per-paper request)."""
    t = moment.astimezone(UTC)
    return (
        f"{_DAYS[t.weekday()]}, {t.day:02d} {_MONTHS[t.month - 1]} {t.year:04d} "
        f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} GMT"
    )


def strong_etag(body: bytes) -> str:
    """A strong entity tag for these exact bytes."""
    return f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'


def cache_control_for(path_template: str) -> str:
    """The Cache-Control policy of a GET route."""
    route = _PARAM.sub("{}", path_template)
    if route == "/schema" or route.startswith("/schema/"):
        return SCHEMA_CACHE_CONTROL
    return CACHE_CONTROL.get(route, DEFAULT_CACHE_CONTROL)


def _header(scope: Scope, name: bytes) -> str | None:
    values = [v.decode("latin-1") for k, v in scope["headers"] if k.lower() == name]
    return ", ".join(values) if values else None


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Weak comparison of `If-None-Match` against an entity tag (RFC 9110 section 13.1.2)."""
    if if_none_match.strip() == "*":
        return True
    return etag.removeprefix("W/") in _ENTITY_TAG.findall(if_none_match)


def _not_modified_since(if_modified_since: str, last_modified: str) -> bool:
    try:
        since = parsedate_to_datetime(if_modified_since)
        modified = parsedate_to_datetime(last_modified)
    except (TypeError, ValueError):  # not an HTTP-date: ignore the condition
        return False
    # An HTTP-date is GMT; "-0000" parses as naive.
    since = since if since.tzinfo else since.replace(tzinfo=UTC)
    modified = modified if modified.tzinfo else modified.replace(tzinfo=UTC)
    return modified <= since


def is_not_modified(scope: Scope, etag: str | None, last_modified: str | None) -> bool:
    """Whether a GET's preconditions say the client's copy is current."""
    if_none_match = _header(scope, b"if-none-match")
    if if_none_match is not None:  # takes precedence over If-Modified-Since
        return etag is not None and etag_matches(if_none_match, etag)
    if_modified_since = _header(scope, b"if-modified-since")
    if if_modified_since is not None and last_modified is not None:
        return _not_modified_since(if_modified_since, last_modified)
    return False


def conditional_get(app: ASGIApp) -> ASGIApp:
    """ETag, Cache-Control and 304s for a route; `no-store` on answers to other methods."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        if scope["method"] == "GET":
            await app(scope, receive, _validating_send(scope, send))
        else:
            await app(scope, receive, _no_store_send(send))

    return middleware


def _no_store_send(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start" and 200 <= message["status"] < 300:
            headers = MutableScopeHeaders.from_message(message)
            if "cache-control" not in headers:
                headers["Cache-Control"] = UNSAFE_CACHE_CONTROL
        await send(message)

    return wrapped


def _validating_send(scope: Scope, send: Send) -> Send:
    start: HTTPResponseStartEvent | None = None

    async def wrapped(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
            return
        if start is None or message["type"] != "http.response.body":
            await send(message)
            return
        first, start = start, None
        headers = MutableScopeHeaders.from_message(first)
        if first["status"] == 200 and "cache-control" not in headers:
            headers["Cache-Control"] = cache_control_for(scope.get("path_template", ""))
        if first["status"] != 200 or message.get("more_body"):  # errors, streams: as they are
            await send(first)
            await send(message)
            return
        if "etag" not in headers:
            headers["ETag"] = strong_etag(message["body"])
        if is_not_modified(scope, headers.get("etag"), headers.get("last-modified")):
            kept = [(k, v) for k, v in first["headers"] if k.lower() in _NOT_MODIFIED_HEADERS]
            await send({"type": "http.response.start", "status": 304, "headers": kept})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        await send(first)
        await send(message)

    return wrapped


def compression_config() -> CompressionConfig:
    """gzip, or brotli (with gzip for clients without it) when the package is installed."""
    brotli = importlib.util.find_spec("brotli") is not None
    return CompressionConfig(
        backend="brotli" if brotli else "gzip",
        minimum_size=COMPRESS_MIN_BYTES,
        gzip_compress_level=6,  # level 9 costs several times the CPU for ~1% smaller JSON
        brotli_gzip_fallback=True,
    )


def route_middleware(app: ASGIApp) -> ASGIApp:
    """Per route: compression around the validators, so ETags hash the uncompressed body.

    Requests without `Accept-Encoding` skip the compression middleware: it would only parse
    the headers to find that out, at a few percent of a per-paper request's time.
    """
    validated = conditional_get(app)
    compressed = CompressionMiddleware(app=validated, config=compression_config())

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        accepts = any(name.lower() == b"accept-encoding" for name, _ in scope["headers"])
        await (compressed if accepts else validated)(scope, receive, send)

    return middleware


def cors_config(origins: Iterable[str]) -> CORSConfig | None:
    """CORS for these origins (`*` for any), or none at all when the list is empty."""
    allowed = list(origins)
    if not allowed:
        return None
    return CORSConfig(
        allow_origins=allowed,
        allow_methods=["GET", "HEAD", "POST", "OPTIONS"],
        allow_headers=["Content-Type", "If-None-Match", "If-Modified-Since", "X-Request-ID"],
        expose_headers=[
            "ETag",
            "Last-Modified",
            "Link",
            "Retry-After",
            "X-Request-ID",
            "RateLimit",
            "RateLimit-Policy",
        ],
        max_age=600,
    )


def _with_values(current: str | None, values: Iterable[str]) -> str:
    present = [v.strip() for v in (current or "").split(",") if v.strip()]
    lowered = {v.lower() for v in present}
    return ", ".join([*present, *(v for v in values if v.lower() not in lowered)])


def unreadable_target(scope: Scope) -> str | None:
    """Why a request's path and query cannot be read as text (a query string that is not
    UTF-8; a NUL character, which PostgreSQL text cannot hold), or None."""
    query: bytes = scope.get("query_string", b"")
    try:
        query.decode("utf-8")
    except UnicodeDecodeError:
        return "the query string is not valid UTF-8; percent-encode its UTF-8 bytes"
    if "\x00" in scope["path"] or b"\x00" in query or b"%00" in query:
        return "the request target contains a NUL character"
    return None


_HEAD: Final = "papers.head"  # in the scope of a HEAD request answered as a GET


def is_head(scope: Scope) -> bool:
    """Whether this GET answers a HEAD: a handler may skip producing a body nobody gets
    (the export would otherwise stream the whole corpus only for `edge` to drop it)."""
    return bool(scope.get(_HEAD))


def edge(app: ASGIApp, vary: tuple[str, ...]) -> ASGIApp:
    """Around CORS and the router: HEAD as GET without the body, `Vary` on every response,
    HEAD in `Allow`, CORS preflight refusals as problems, and a 400 `bad-request` for a
    request target that cannot be read as text (`unreadable_target`)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        unreadable = unreadable_target(scope)
        if unreadable is not None:
            await send_problem(scope, send, 400, "bad-request", unreadable, {})
            return
        head = scope["method"] == "HEAD"
        if head:
            scope["method"] = "GET"
            scope[_HEAD] = True  # type: ignore[typeddict-unknown-key]
        preflight = scope["method"] == "OPTIONS" and _header(scope, b"origin") is not None
        refused: HTTPResponseStartEvent | None = None

        async def wrapped(message: Message) -> None:
            nonlocal refused
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                headers["Vary"] = _with_values(headers.get("vary"), vary)
                allow = headers.get("allow")
                if allow is not None and "GET" in allow:
                    headers["Allow"] = _with_values(allow, ["HEAD"])
                if preflight and message["status"] == 400:
                    refused = message
                    return
            elif message["type"] == "http.response.body":
                if refused is not None:
                    await _send_cors_refusal(scope, refused, message, send)
                    return
                if head:
                    message["body"] = b""
            await send(message)

        try:
            await app(scope, receive, wrapped)
        finally:
            if head:  # for the layers outside (access log, metrics)
                scope["method"] = "HEAD"

    return middleware


async def _send_cors_refusal(
    scope: HTTPScope, start: HTTPResponseStartEvent, body: HTTPResponseBodyEvent, send: Send
) -> None:
    """Litestar refuses a preflight in plain text; say it as a problem instead."""
    reason = body["body"].decode("utf-8", "replace")
    problem = build_problem(
        400, None, f"{reason}; see PAPERS_CORS_ORIGINS", scope["path"], code="cors-rejected"
    )
    content = msgspec.json.encode(problem)
    headers = MutableScopeHeaders.from_message(start)
    headers["Content-Type"] = PROBLEM_JSON
    headers["Content-Length"] = str(len(content))
    headers["Cache-Control"] = "no-store"
    await send(start)
    await send({"type": "http.response.body", "body": content, "more_body": False})


async def require_json_body(request: Request[Any, Any, Any]) -> None:
    """415 for a request whose handler reads a body that is not sent as JSON.

    A coroutine on purpose: Litestar runs a plain function hook in a worker thread, which
    cost a fifth of a per-paper request's time (bench/RESULTS.md).
    """
    if "data" not in request.route_handler.parsed_fn_signature.parameters:
        return
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        raise ClientException(
            status_code=415,
            detail=f"send the body as Content-Type: application/json, not {media_type or 'none'}",
        )


def install(app: Litestar, cors_origins: tuple[str, ...]) -> Litestar:
    """Put `edge` around CORS and the router (Litestar routes HEAD only to HEAD handlers)."""
    # An allow-list answers each origin differently; `*` answers all of them the same.
    by_origin = bool(cors_origins) and "*" not in cors_origins
    vary = ("Accept-Encoding", "Origin") if by_origin else ("Accept-Encoding",)
    app.asgi_handler = edge(app.asgi_handler, vary)
    return app


# Sent on every answer, refusals included. A JSON API has nothing to frame, script or sniff;
# the docs pages under /schema load Swagger UI and Redoc scripts, so they get no CSP.
SECURITY_HEADERS: Final = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
API_CSP: Final = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
_API_HEADERS: Final = (*SECURITY_HEADERS, API_CSP)


def security_headers(app: ASGIApp) -> ASGIApp:
    """The outermost layer: SECURITY_HEADERS on every response, and API_CSP outside /schema."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        extra = SECURITY_HEADERS if scope["path"].startswith("/schema") else _API_HEADERS

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await app(scope, receive, wrapped)

    return middleware
