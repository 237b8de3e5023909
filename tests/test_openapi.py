"""The OpenAPI 3.1 document: it validates, documents every operation, parameter and problem,
and each of its examples is a valid instance of the schema it illustrates."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from service.api.problems import PROBLEM_JSON, PROBLEM_TYPES

Client = AsyncTestClient[Litestar]
Spec = dict[str, Any]
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture
async def spec(client: Client) -> Spec:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    document: Spec = response.json()
    return document


def operations(spec: Spec) -> Iterator[tuple[str, str, Spec]]:
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def examples_in(spec: Spec) -> Iterator[tuple[str, Any, Any]]:
    """(where, schema, example) for every example in the document."""
    for path, method, operation in operations(spec):
        for param in operation.get("parameters", []):
            where = f"{method.upper()} {path} parameter {param['name']}"
            for name, example in (param.get("examples") or {}).items():
                yield f"{where} example {name}", param["schema"], example["value"]
        bodies = [("request body", operation.get("requestBody", {}))]
        bodies += [(f"response {s}", r) for s, r in operation.get("responses", {}).items()]
        for label, body in bodies:
            for media_type, media in body.get("content", {}).items():
                for name, example in (media.get("examples") or {}).items():
                    where = f"{method.upper()} {path} {label} {media_type} example {name}"
                    yield where, media["schema"], example["value"]
    for name, schema in spec["components"]["schemas"].items():
        yield from _schema_examples(f"schema {name}", schema)


def _schema_examples(where: str, schema: Any) -> Iterator[tuple[str, Any, Any]]:
    if isinstance(schema, dict):
        for n, example in enumerate(schema.get("examples") or []):
            yield f"{where} example {n}", schema, example
        for key, sub in schema.items():
            if key != "examples":
                yield from _schema_examples(f"{where}.{key}", sub)
    elif isinstance(schema, list):
        for n, sub in enumerate(schema):
            yield from _schema_examples(f"{where}[{n}]", sub)


def validation_errors(spec: Spec, schema: Any, instance: Any) -> list[str]:
    # `$ref`s point into #/components: validate against a root that carries them.
    root = {**schema, "components": spec["components"]}
    validator = OAS31Validator(root, format_checker=OAS31Validator.FORMAT_CHECKER)
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(instance)]


async def test_the_document_is_valid_openapi_3_1(spec: Spec) -> None:
    assert spec["openapi"].startswith("3.1")
    validate(spec)


async def test_every_example_is_an_instance_of_its_schema(spec: Spec) -> None:
    found = list(examples_in(spec))
    assert len(found) > 20  # the walk reached parameters, bodies, responses and components
    invalid = {
        where: errors
        for where, schema, example in found
        if (errors := validation_errors(spec, schema, example))
    }
    assert not invalid, invalid


async def test_the_example_check_catches_a_wrong_example(spec: Spec) -> None:
    problem = {"$ref": "#/components/schemas/Problem"}
    assert validation_errors(spec, problem, {"type": "/problems/x", "status": "404"})
    good = {"type": "/problems/x", "title": "X", "status": 404, "code": "x"}
    assert not validation_errors(spec, problem, good)


async def test_every_operation_parameter_and_schema_has_examples(spec: Spec) -> None:
    undocumented = []
    for path, method, operation in operations(spec):
        where = f"{method.upper()} {path}"
        if not operation.get("summary") or not operation.get("description"):
            undocumented.append(f"{where}: summary or description")
        for param in operation.get("parameters", []):
            if not param.get("description"):
                undocumented.append(f"{where} {param['name']}: description")
            if not param.get("examples"):
                undocumented.append(f"{where} {param['name']}: examples")
        if "requestBody" in operation:
            for media in operation["requestBody"]["content"].values():
                if not media.get("examples") and not _has_examples(spec, media["schema"]):
                    undocumented.append(f"{where} request body: examples")
    for name, schema in spec["components"]["schemas"].items():
        for field, prop in schema.get("properties", {}).items():
            if not _has_examples(spec, prop):
                undocumented.append(f"schema {name}.{field}: examples")
    assert not undocumented, undocumented


def _has_examples(spec: Spec, schema: Spec, seen: frozenset[str] = frozenset()) -> bool:
    """Examples for the schema, for one of its alternatives, for its items, or for each of
    its properties (documentation UIs compose an example from those)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        if name in seen:  # a recursive schema: its other properties decide
            return True
        seen, schema = seen | {name}, spec["components"]["schemas"][name]
    if schema.get("examples") or schema.get("type") == "null":
        return True
    alternatives = schema.get("oneOf", []) + schema.get("anyOf", []) + schema.get("allOf", [])
    if any(_has_examples(spec, a, seen) for a in alternatives if a.get("type") != "null"):
        return True
    if "items" in schema:
        return _has_examples(spec, schema["items"], seen)
    properties = schema.get("properties", {}).values()
    return bool(properties) and all(_has_examples(spec, p, seen) for p in properties)


async def test_every_operation_documents_its_problems(spec: Spec) -> None:
    for path, method, operation in operations(spec):
        responses = operation["responses"]
        problems = {s for s, r in responses.items() if PROBLEM_JSON in r.get("content", {})}
        assert "500" in problems, f"{method} {path}"
        if "{" in path:
            assert "404" in problems, f"{method} {path}"
        if "requestBody" in operation:
            assert {"415", "422"} <= problems, f"{method} {path}"
        for status in problems:
            schema = responses[status]["content"][PROBLEM_JSON]["schema"]
            assert schema == {"$ref": "#/components/schemas/Problem"}, f"{method} {path} {status}"


async def test_the_description_lists_every_problem_type(spec: Spec) -> None:
    description = spec["info"]["description"]
    for kind in PROBLEM_TYPES:
        assert f"`{kind.code}`" in description
        assert f"`{kind.type}`" in description
    assert "If-None-Match" in description
    assert "PAPERS_CORS_ORIGINS" in description


async def test_interactive_docs_are_served_at_schema(client: Client) -> None:
    page = await client.get("/schema")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "SwaggerUIBundle" in page.text
    assert '"openapi":"3.1' in page.text  # the spec is embedded in the page
    redoc = await client.get("/schema/redoc")
    assert redoc.status_code == 200
    assert "redoc" in redoc.text.lower()
