"""The OpenAPI 3.1 document: its description, docs pages, and the problem responses of each
operation (documented once here rather than on every handler)."""

from __future__ import annotations

import re
from typing import Any, Final

import msgspec
from litestar.config.app import AppConfig
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin, RedocRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Example, Schema, Tag
from litestar.params import KwargDefinition
from litestar.plugins import InitPlugin, OpenAPISchemaPlugin
from litestar.typing import FieldDefinition

from service.api import limits, ratelimit
from service.api.http import CACHE_CONTROL, COMPRESS_MIN_BYTES, DEFAULT_CACHE_CONTROL
from service.api.problems import PROBLEM_JSON, PROBLEM_TYPES, build_problem
from service.models import InvalidParam, Problem

# Handler parameters that Litestar fills itself rather than from the request's query or path.
_INJECTED: Final = frozenset({"conn", "engine", "state", "request", "scope", "data", "headers"})
_PATH_PARAM: Final = re.compile(r"\{[^}]*\}")
_BACKED: Final = frozenset({"conn", "engine", "state"})  # parameters that need PostgreSQL or search


def _problem_table() -> str:
    rows = "\n".join(
        f"| {t.status} | `{t.code}` | `{t.type}` | {t.description} |" for t in PROBLEM_TYPES
    )
    return (
        "| status | `code` | `type` | when |\n|---|---|---|---|\n"
        f"{rows}\n\nAny other status gets the code of its reason phrase (e.g. `too-many-requests`)."
    )


def _cache_table() -> str:
    rows = "\n".join(f"| `{route}` | `{policy}` |" for route, policy in CACHE_CONTROL.items())
    return (
        f"| route | `Cache-Control` |\n|---|---|\n{rows}\n| `/schema…` | `public, max-age=300` |\n"
        f"| any other GET | `{DEFAULT_CACHE_CONTROL}` |\n| POST | `no-store` |\n"
        "| every error | `no-store` |"
    )


def description() -> str:
    """The API's description in the OpenAPI document: HTTP behaviour and problem types."""
    return f"""Search research papers, browse them by topic, and fetch one paper's JSON.
Changes between versions are listed in `CHANGELOG.md`.

## HTTP behaviour

- **Validators.** Every GET answer that is not streamed carries a strong `ETag` (a hash of
  the uncompressed body); papers, listings and topics also carry `Last-Modified`. Send
  `If-None-Match` (preferred; it wins when both are sent) or `If-Modified-Since` to get
  `304 Not Modified` with the same `ETag`, `Last-Modified`, `Cache-Control` and `Vary`, and no
  body.
- **Caching.** `Cache-Control` by route:

{_cache_table()}

- **Compression.** Answers of {COMPRESS_MIN_BYTES} bytes or more are gzip-compressed for
  clients that send `Accept-Encoding: gzip`; every answer says `Vary: Accept-Encoding`.
- **HEAD.** Every GET endpoint answers HEAD with the GET's headers and no body.
- **CORS.** Only for the origins listed in `PAPERS_CORS_ORIGINS` (none by default);
  `ETag`, `Last-Modified`, `Link`, `Retry-After`, `X-Request-ID`, `RateLimit` and
  `RateLimit-Policy` are exposed to scripts.
- **Request bodies** are JSON: another `Content-Type` is a 415.
- **Request ids.** Every answer carries `X-Request-ID` (yours, if you sent one).

## Errors

Every 4xx and 5xx is RFC 9457 `application/problem+json` with a stable `type` URI and the
same short `code`; `GET /problems/{{code}}` documents each. A 500 never contains a stack
trace or an exception's text. Bad parameters and body fields are listed in `invalid_params`.

{_problem_table()}
"""


def openapi_config(version: str) -> OpenAPIConfig:
    """OpenAPI 3.1 at /schema/openapi.json, Swagger UI at /schema, Redoc at /schema/redoc."""
    return OpenAPIConfig(
        title="Papers API",
        version=version,
        description=description(),
        path="/schema",
        use_handler_docstrings=True,
        create_examples=False,
        render_plugins=[
            SwaggerRenderPlugin(path=["/", "/swagger"]),
            RedocRenderPlugin(path="/redoc"),
            JsonRenderPlugin(path="/openapi.json"),
        ],
        tags=[
            Tag(name="papers", description="One paper, many papers, the whole corpus."),
            Tag(name="search", description="Full-text search with facets and suggestions."),
            Tag(name="topics", description="The curated topic taxonomy."),
            Tag(name="health", description="Liveness and readiness."),
            Tag(name="problems", description="What each error `type` means."),
        ],
    )


# What an example of each problem says; other problems' examples have no `detail`.
_EXAMPLE_DETAILS: Final = {
    "invalid-parameter": ("limit: Expected `int` <= 100", [InvalidParam("limit", "<= 100")]),
    "bad-request": ("JSON is malformed: invalid character (byte 0)", None),
    "not-found": ("no paper with id 'no-such-paper'", None),
    "unsupported-media-type": ("send the body as Content-Type: application/json", None),
    "validation-failed": ("ids: Expected `array`, got `str`", [InvalidParam("ids", "array")]),
    "internal-error": ("The error was logged.", None),
    "unavailable": ("A backing service is not answering; retry shortly.", None),
}


def _problem_spec(status: int, codes: list[str], instance: str) -> ResponseSpec:
    kinds = [t for t in PROBLEM_TYPES if t.status == status and t.code in codes]
    examples = []
    for kind in kinds:
        detail, params = _EXAMPLE_DETAILS.get(kind.code, (None, None))
        problem = build_problem(status, None, detail, instance, params, code=kind.code)
        examples.append(Example(summary=kind.title, value=msgspec.to_builtins(problem)))
    return ResponseSpec(
        Problem,
        generate_examples=False,
        description="; ".join(f"`{k.code}`: {k.description}" for k in kinds),
        media_type=PROBLEM_JSON,
        examples=examples,
    )


def problem_responses(handler: HTTPRouteHandler) -> dict[int, ResponseSpec]:
    """The problems an operation can answer with, from what its signature takes."""
    params = set(handler.parsed_fn_signature.parameters)
    path = next(iter(handler.paths))
    instance = _PATH_PARAM.sub("unknown", path)
    codes: dict[int, list[str]] = {500: ["internal-error"]}
    if params - _INJECTED:
        codes[400] = ["invalid-parameter"]
    if "{" in path:
        codes[404] = ["not-found"]
    if "data" in params:
        codes[400] = [*codes.get(400, []), "bad-request"]
        codes[415] = ["unsupported-media-type"]
        codes[422] = ["validation-failed"]
    if "data" in params:
        codes[413] = ["payload-too-large"]
    if path not in ratelimit.NOT_LIMITED:
        codes[429] = ["rate-limit-burst", "rate-limit-quota"]
    if params & _BACKED:
        codes[503] = ["unavailable"]
    if path not in limits.NOT_LIMITED:
        codes[503] = [*codes.get(503, []), "overloaded"]
    return {
        status: _problem_spec(status, names, instance) for status, names in sorted(codes.items())
    }


class ProblemResponses(InitPlugin):
    """Documents the problem responses of every route handler the app is built with."""

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        for handler in app_config.route_handlers:
            if isinstance(handler, HTTPRouteHandler):
                # Handlers are module-level objects: merge, so building the app twice is the same.
                documented: dict[int, Any] = dict(problem_responses(handler))
                handler.responses = {**documented, **(handler.responses or {})}
        return app_config


def any_of(name: str) -> KwargDefinition:
    """`Annotated` metadata for a union of object types whose alternatives overlap (a whole
    paper is also an object of selected fields): documented as `anyOf` under this name, not
    as Litestar's `oneOf`, which an answer fitting several alternatives would violate."""
    return KwargDefinition(schema_component_key=name)


class AnyOfUnions(OpenAPISchemaPlugin):
    """Documents unions annotated with `any_of(...)` as `anyOf`."""

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        kwargs = field_definition.kwarg_definition
        return (
            field_definition.is_union
            and isinstance(kwargs, KwargDefinition)
            and kwargs.schema_component_key is not None
        )

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        alternatives = (FieldDefinition.from_annotation(t) for t in field_definition.args)
        return Schema(any_of=[schema_creator.for_field_definition(a) for a in alternatives])
