"""RFC 9457 problem+json for every error the API returns."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from service.models import InvalidParam, Problem

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

_CODES = {
    400: "invalid-parameter",
    404: "not-found",
    405: "method-not-allowed",
    415: "unsupported-media-type",
    422: "unprocessable-content",
    429: "too-many-requests",
    500: "internal-error",
    503: "unavailable",
}


class BadParameter(ValidationException):
    """A request parameter that passed type checks but is still wrong (unknown topic, bad cursor)."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(
            detail=f"invalid parameter {name!r}: {reason}",
            extra=[{"key": name, "message": reason, "source": "query"}],
        )


def problem_response(
    status: int,
    title: str,
    detail: str | None,
    instance: str | None,
    invalid_params: list[InvalidParam] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Problem]:
    """A problem+json response."""
    code = _CODES.get(status, "error")
    return Response(
        Problem(
            type=f"/problems/{code}",
            title=title,
            status=status,
            detail=detail,
            instance=instance,
            invalid_params=invalid_params,
        ),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _invalid_params(extra: Any) -> list[InvalidParam]:
    params: list[InvalidParam] = []
    if isinstance(extra, list):
        for item in extra:
            if isinstance(item, dict) and item.get("key"):
                params.append(
                    InvalidParam(name=str(item["key"]), reason=str(item.get("message", "")))
                )
    return params


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    """Litestar's HTTP errors (404, 405, validation…) as problems."""
    status = exc.status_code
    if isinstance(exc, ValidationException):
        params = _invalid_params(exc.extra)
        names = ", ".join(p.name for p in params)
        detail = "; ".join(f"{p.name}: {p.reason}" for p in params) if params else str(exc.detail)
        return problem_response(
            400,
            f"Invalid request parameter{'s' if len(params) > 1 else ''}"
            + (f": {names}" if names else ""),
            detail,
            request.url.path,
            params or None,
        )
    title = {404: "Not found", 405: "Method not allowed"}.get(status, str(exc.detail))
    return problem_response(
        status,
        title,
        str(exc.detail),
        request.url.path,
        headers=exc.headers,
    )


def handle_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    """PostgreSQL or every search engine cannot answer now: 503, worth retrying shortly."""
    log.warning("unavailable on %s %s: %s", request.method, request.url.path, exc)
    return problem_response(
        503,
        "Service unavailable",
        "A backing service is not answering; retry shortly.",
        request.url.path,
        headers={"Retry-After": "5"},
    )


def handle_internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    """Anything unexpected: logged with its traceback, answered without one."""
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(500, "Internal server error", "The error was logged.", request.url.path)
