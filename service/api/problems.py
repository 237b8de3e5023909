"""RFC 9457 problem+json for every error the API returns, and the documentation of each type.

Each problem carries a stable `type` URI (`/problems/<code>`, which GET documents) and the
same `code` as a plain string, so clients can branch on either.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Annotated, Any, Final

import asyncpg
from litestar import Request, Response, get
from litestar.exceptions import (
    HTTPException,
    NotFoundException,
    ServiceUnavailableException,
    ValidationException,
)
from litestar.openapi.spec import Example
from litestar.params import Parameter

from service.models import InvalidParam, Problem, ProblemType
from service.search.engine import EngineUnavailableError

log = logging.getLogger(__name__)

PROBLEM_JSON: Final = "application/problem+json"
PROBLEM_PATH: Final = "/problems"


def _type(code: str, status: int, title: str, description: str) -> ProblemType:
    return ProblemType(f"{PROBLEM_PATH}/{code}", code, status, title, description)


PROBLEM_TYPES: Final[tuple[ProblemType, ...]] = (
    _type(
        "invalid-parameter",
        400,
        "Invalid request parameter",
        "A query or path parameter is malformed, out of bounds or unknown (a topic slug, a "
        "field name, a cursor); `invalid_params` names each one and says why.",
    ),
    _type(
        "bad-request",
        400,
        "Bad request",
        "The request could not be read: a body that is not well-formed JSON, a query string "
        "that is not UTF-8, a NUL character in the path or query.",
    ),
    _type(
        "not-found",
        404,
        "Not found",
        "No paper, topic or endpoint at this path.",
    ),
    _type(
        "method-not-allowed",
        405,
        "Method not allowed",
        "The endpoint exists but not for this method; the `Allow` header lists those it takes.",
    ),
    _type(
        "payload-too-large",
        413,
        "Payload too large",
        "The request body is larger than the API accepts.",
    ),
    _type(
        "unsupported-media-type",
        415,
        "Unsupported media type",
        "A request body must be sent as `Content-Type: application/json`.",
    ),
    _type(
        "validation-failed",
        422,
        "Request body failed validation",
        "The body is well-formed JSON but does not fit the endpoint's schema; "
        "`invalid_params` names each offending field by its path (e.g. `ids[3]`).",
    ),
    _type(
        "cors-rejected",
        400,
        "CORS request refused",
        "A CORS preflight from an origin, or for a method or header, that the API does not "
        "allow (`PAPERS_CORS_ORIGINS`).",
    ),
    _type(
        "rate-limit-burst",
        429,
        "Too many requests (burst limit)",
        "This client sent requests faster than its burst limit allows "
        "(`PAPERS_RATE_LIMIT_BURST`, refilled at `PAPERS_RATE_LIMIT_PER_S`); retry after "
        "`Retry-After` seconds. `RateLimit` and `RateLimit-Policy` say where it stands.",
    ),
    _type(
        "rate-limit-quota",
        429,
        "Too many requests (quota used up)",
        "This client used up its quota for the window (`PAPERS_RATE_LIMIT_QUOTA` per "
        "`PAPERS_RATE_LIMIT_WINDOW_S`); retry after `Retry-After` seconds, when the next "
        "window starts.",
    ),
    _type(
        "internal-error",
        500,
        "Internal server error",
        "An unexpected error. It was logged with the request id (`X-Request-ID`); the "
        "response never contains internals.",
    ),
    _type(
        "unavailable",
        503,
        "Service unavailable",
        "PostgreSQL or every search engine cannot answer now; retry after `Retry-After` seconds.",
    ),
    _type(
        "overloaded",
        503,
        "Server overloaded",
        "The server has as many requests in progress as it takes (`PAPERS_MAX_IN_FLIGHT`) and "
        "refused this one at once; retry after `Retry-After` seconds.",
    ),
)
# Codes more specific than their status: a bare status never maps to one of them.
_SPECIFIC: Final = frozenset(
    {"bad-request", "cors-rejected", "rate-limit-burst", "rate-limit-quota", "overloaded"}
)
_BY_STATUS: Final = {t.status: t for t in PROBLEM_TYPES if t.code not in _SPECIFIC}


def _from_phrase(status: HTTPStatus) -> ProblemType:
    code = status.phrase.lower().replace(" ", "-").replace("'", "")
    return _type(code, status.value, status.phrase, f"HTTP {status.value} {status.phrase}.")


# Statuses the API does not raise itself (e.g. 429) still get a stable type from their phrase.
_BY_CODE: Final = {
    t.code: t
    for t in (
        *(_from_phrase(s) for s in HTTPStatus if s >= 400 and s.value not in _BY_STATUS),
        *PROBLEM_TYPES,
    )
}


def problem_type(status: int, code: str | None = None) -> ProblemType:
    """The type for a code, else for a status; an undocumented status gets its reason phrase."""
    known = _BY_CODE.get(code) if code else _BY_STATUS.get(status)
    if known is not None:
        return known
    if code:  # not in PROBLEM_TYPES yet: keep what the caller meant rather than lose it
        return _type(code, status, code.replace("-", " ").capitalize(), "")
    try:
        return _from_phrase(HTTPStatus(status))
    except ValueError:
        return _type("error", status, "Error", "An error without a documented type.")


class NotReady(ServiceUnavailableException):
    """A dependency is down: a 503 problem naming each dependency's state in `checks`."""

    def __init__(self, checks: dict[str, str]) -> None:
        down = ", ".join(name for name, state in checks.items() if state != "ok")
        super().__init__(detail=f"not ready: {down} unavailable", headers={"Retry-After": "5"})
        self.checks = checks


class BadParameter(ValidationException):
    """A request parameter that passed type checks but is still wrong (unknown topic, bad cursor)."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(
            detail=f"invalid parameter {name!r}: {reason}",
            extra=[{"key": name, "message": reason, "source": "query"}],
        )


def build_problem(
    status: int,
    title: str | None,
    detail: str | None,
    instance: str | None,
    invalid_params: list[InvalidParam] | None = None,
    code: str | None = None,
    checks: dict[str, str] | None = None,
) -> Problem:
    """The problem document for a status (or a more specific `code`)."""
    kind = problem_type(status, code)
    return Problem(
        type=kind.type,
        title=title or kind.title,
        status=status,
        code=kind.code,
        detail=detail,
        instance=instance,
        invalid_params=invalid_params,
        checks=checks,
    )


def problem_response(
    status: int,
    title: str | None,
    detail: str | None,
    instance: str | None,
    invalid_params: list[InvalidParam] | None = None,
    headers: dict[str, str] | None = None,
    code: str | None = None,
    checks: dict[str, str] | None = None,
) -> Response[Problem]:
    """A problem+json response; errors are never stored by caches."""
    return Response(
        build_problem(status, title, detail, instance, invalid_params, code, checks),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers={**(headers or {}), "Cache-Control": "no-store"},
    )


_MISSING: Final = re.compile(r"Missing required (?P<kind>\w+) parameter '(?P<name>[^']+)'")


def _invalid_params(extra: Any) -> list[InvalidParam]:
    params: list[InvalidParam] = []
    if isinstance(extra, list):
        for item in extra:
            if isinstance(item, dict) and item.get("key"):
                params.append(
                    InvalidParam(name=str(item["key"]), reason=str(item.get("message", "")))
                )
    return params


def _from_body(extra: Any) -> bool:
    return isinstance(extra, list) and any(
        isinstance(item, dict) and item.get("source") == "body" for item in extra
    )


def _validation_problem(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[Problem]:
    params = _invalid_params(exc.extra)
    missing = _MISSING.match(str(exc.detail))
    if not params and missing is not None:  # Litestar names a missing parameter in prose only
        params = [
            InvalidParam(name=missing["name"], reason=f"required {missing['kind']} parameter")
        ]
    names = ", ".join(p.name for p in params)
    detail = "; ".join(f"{p.name}: {p.reason}" for p in params) if params else str(exc.detail)
    if _from_body(exc.extra):
        return problem_response(
            422, None, detail, request.url.path, params or None, code="validation-failed"
        )
    title = f"Invalid request parameter{'s' if len(params) > 1 else ''}" + (
        f": {names}" if names else ""
    )
    return problem_response(400, title, detail, request.url.path, params or None)


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    """Litestar's HTTP errors (404, 405, 415, validation…) as problems."""
    if isinstance(exc, ValidationException):
        return _validation_problem(request, exc)
    status = exc.status_code
    if isinstance(exc, NotReady):
        return problem_response(
            503, None, exc.detail, request.url.path, headers=exc.headers, checks=exc.checks
        )
    if status == 503:
        return handle_unavailable(request, exc)
    if status >= 500:  # a framework error: its text is for the log, not the client
        return handle_internal_error(request, exc)
    headers = dict(exc.headers or {})
    detail = str(exc.detail)
    if status == 404 and detail == HTTPStatus.NOT_FOUND.phrase:  # the router's own 404
        detail = f"nothing at {request.url.path}; see /schema for the endpoints"
    code = "bad-request" if status == 400 else None
    return problem_response(status, None, detail, request.url.path, headers=headers, code=code)


def handle_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    """PostgreSQL or every search engine cannot answer now: 503, worth retrying shortly."""
    log.warning("unavailable on %s %s: %s", request.method, request.url.path, exc)
    return problem_response(
        503,
        None,
        "A backing service is not answering; retry shortly.",
        request.url.path,
        headers={"Retry-After": "5"},
    )


def handle_client_error(
    request: Request[Any, Any, Any], exc: asyncpg.InterfaceError
) -> Response[Problem]:
    """asyncpg's "connection is closed" (or, once it has noticed, "released back to the
    pool"): PostgreSQL went away under the request, a 503. Any other InterfaceError is a
    misuse of the driver: a bug, a 500."""
    if any(lost in str(exc) for lost in _CONNECTION_LOST):
        return handle_unavailable(request, exc)
    return handle_internal_error(request, exc)


_CONNECTION_LOST: Final = ("connection is closed", "released back to the pool")


def handle_internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    """Anything unexpected: logged with its traceback, answered without one."""
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(500, None, "The error was logged.", request.url.path)


def exception_handlers() -> dict[Any, Any]:
    """Every exception the API can raise, mapped to its problem response."""
    return {
        HTTPException: handle_http_exception,
        EngineUnavailableError: handle_unavailable,
        asyncpg.PostgresConnectionError: handle_unavailable,
        asyncpg.CannotConnectNowError: handle_unavailable,
        asyncpg.ConnectionDoesNotExistError: handle_unavailable,
        # The server ended the session mid-request (`pg_ctl stop -m fast`, a failover), or
        # asyncpg lost track of the protocol when it did (asyncpg#1069): retrying is right.
        asyncpg.AdminShutdownError: handle_unavailable,
        asyncpg.InternalClientError: handle_unavailable,
        asyncpg.InterfaceError: handle_client_error,
        ConnectionError: handle_unavailable,
        Exception: handle_internal_error,
    }


@get(
    f"{PROBLEM_PATH}/{{code:str}}",
    summary="A problem type's documentation",
    tags=["problems"],
    sync_to_thread=False,
)
def get_problem_type(
    code: Annotated[
        str,
        Parameter(
            description="The problem's `code` (the last segment of its `type`).",
            examples=[Example(summary="a missing paper, topic or route", value="not-found")],
        ),
    ],
) -> ProblemType:
    """What a problem `type` means: every error response's `type` URI resolves here."""
    kind = _BY_CODE.get(code)
    if kind is None:
        raise NotFoundException(detail=f"no problem type {code!r}")
    return kind
