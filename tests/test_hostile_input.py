"""Hostile input through every parameter of every endpoint: injection attempts (SQL,
Meilisearch filter syntax, markup), path traversal, oversized values and malformed UTF-8.

The operations and their parameters are read from the app's own OpenAPI document, so a new
endpoint or parameter is attacked without touching this file; the batch body's fields are
attacked too. Every answer must be a 2xx whose body fits the documented schema (a hostile
string may be a query that matches nothing) or a 4xx problem+json: never a 5xx, never a
stack trace or a driver's message, never hostile markup outside JSON. A value the parameter's
schema does not allow (a string for `limit`, 10,000 characters for `q`) must be refused, and
a 400 about a query parameter names it. Afterwards the papers, topics and their links are the
same, row for row.

Requests are raw ASGI calls, run on the test client's event loop (where the pool lives), so
the bytes of the path and query string are exactly the ones chosen here, handed over as an
ASGI server does: uvicorn percent-decodes the path as UTF-8 (invalid sequences become U+FFFD)
and passes the query string as raw bytes. `test_raw_bytes_over_a_real_socket` sends the same
bytes through uvicorn itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, unquote

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from litestar.types import HTTPDisconnectEvent, HTTPRequestEvent, Message
from openapi_schema_validator import OAS31Validator

from service import db
from service.app import create_app
from service.config import Settings
from tests.test_limits import serving

Client = AsyncTestClient[Litestar]
Spec = dict[str, Any]
PROBLEM_JSON: Final = "application/problem+json"

# Text a query parameter, path segment or body field may carry, by kind of attack.
HOSTILE: Final[dict[str, tuple[str, ...]]] = {
    "sql": (
        "' OR 1=1 --",
        "'; DROP TABLE papers; --",
        '"; DELETE FROM papers; --',
        "$1",
        "$1::text; SELECT pg_sleep(10)",
        "\\",
        "\\'; TRUNCATE topics CASCADE; --",
        "a\x00b",
        "%' OR '%'='",
        "1 UNION SELECT id, title FROM papers --",
    ),
    "filter": (
        'biology" OR topic_slugs = "x',
        "topic_slugs EXISTS",
        ")",
        "(",
        "AND",
        "NOT",
        "topic_slugs IN [biology, alignment]",
        '"',
        'x" OR id != "',
        "_geoRadius(0, 0, 1)",
    ),
    "traversal": (
        "../../etc/passwd",
        "..\\..\\windows\\win.ini",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "..%2F..%2Fetc%2Fpasswd",
        "/etc/passwd",
        "....//....//etc/passwd",
        "arxiv:../../etc/passwd",
    ),
    "markup": (
        "<script>alert(1)</script>",
        '"><img src=x onerror=alert(1)>',
        "{{7*7}}${7*7}",
        "\r\nSet-Cookie: a=b",
    ),
    "oversized": ("x" * 10_000, "ab " * 33_334),
    "unicode": (
        "\u202egnp.exe",
        "\ufeff\u200b\u200d",
        "Z\u0351\u0352\u0353\u0354" * 50,
        "\U0001f600" * 100,
        "\x7f\x1b[31m",
    ),
}

# Bytes put as they are into the query string or path: raw bytes that are not UTF-8,
# percent-encoded invalid UTF-8, overlong encodings, an encoded lone surrogate, broken escapes.
RAW: Final = (
    b"\xff\xfe",
    b"a\xc3",
    b"%ff",
    b"%ff%fe%00",
    b"%c0%af",
    b"%e0%80%af",
    b"%c0%ae%c0%ae%c0%af",
    b"%ed%a0%80",
    b"%f4%90%80%80",
    b"%",
    b"%zz",
    b"%00",
)
# JSON texts of body values that a UTF-8 string cannot hold (lone surrogates, NUL).
RAW_JSON: Final = (b'"\\ud800"', b'"\\udfff\\ud800"', b'"\\u0000"', b'"\\uffff"')
VALID_BODY: Final = b'{"ids": ["densing-law-of-llms"]}'

# No answer may show internals.
LEAKS: Final = ("Traceback", 'File "', "asyncpg", "postgresql://", "syntax error at", "SELECT ")


@dataclass(frozen=True)
class Sent:
    """One request: what it attacks, and the raw request target and body."""

    label: str
    method: str
    target: bytes
    body: bytes | None = None
    param: Spec | None = None  # the attacked query or path parameter
    value: str | None = None  # the text it carries, once decoded


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: Spec


# --- the attacks, from the app's own OpenAPI document ----------------------------------------


def operations(doc: Spec) -> list[Operation]:
    """Every operation in the document (HEAD is answered as GET)."""
    return [
        Operation(method.upper(), path, spec)
        for path, item in doc["paths"].items()
        for method, spec in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def example(param: Spec) -> str:
    """A valid value of a parameter: its first documented example."""
    values = param["schema"].get("examples") or ["x"]
    return str(values[0])


def fill(op: Operation, params: list[Spec], name: str, raw: bytes) -> bytes:
    """The operation's path with `raw` for path parameter `name` and documented examples for
    the other path parameters, and the required query parameters other than `name`."""
    target = op.path.encode()
    query = []
    for param in params:
        value = quote(example(param), safe=":").encode()
        if param["in"] == "path":
            value = raw if param["name"] == name else value
            target = target.replace(b"{" + param["name"].encode() + b"}", value)
        elif param.get("required") and param["name"] != name:
            query.append(param["name"].encode() + b"=" + value)
    return target + b"?" + b"&".join(query)


def encodings(value: str) -> Iterator[bytes]:
    """A text as it may arrive: percent-encoded, and with reserved characters left raw."""
    strict = quote(value, safe="").encode()
    yield strict
    loose = quote(value, safe="/:%?=&'\"<>\\").encode("latin-1")
    if loose != strict:
        yield loose


def attacks(doc: Spec, kind: str) -> Iterator[Sent]:
    """Each value of this kind in every path and query parameter of every operation, in a
    parameter no operation has, and in the fields of every JSON body."""
    values: list[tuple[bytes, str | None]]
    if kind == "raw":
        values = [(raw, None) for raw in RAW]
    else:
        values = [(enc, text) for text in HOSTILE[kind] for enc in encodings(text)]
    for op in operations(doc):
        params = [p for p in op.spec.get("parameters", []) if p["in"] in {"path", "query"}]
        base = fill(op, params, "", b"")
        body = VALID_BODY if "requestBody" in op.spec else None
        for param in params:
            name = param["name"]
            for raw, text in values:
                label = f"{op.method} {op.path} {param['in']} {name}={raw[:40]!r}"
                if param["in"] == "path":
                    target = fill(op, params, name, raw)
                    yield Sent(label, op.method, target, body, param, text)
                    continue
                target = fill(op, params, name, b"") + b"&" + name.encode() + b"=" + raw
                yield Sent(label, op.method, target, body, param, text)
                if "array" in str(param["schema"]):  # repeated, beside a valid value
                    target += b"&" + name.encode() + b"=biology"
                    yield Sent(f"{label} repeated", op.method, target, body, param, text)
        # A parameter the operation does not have is ignored or refused, never trusted.
        for raw, _ in values[:4]:
            label = f"{op.method} {op.path} unknown x={raw[:40]!r}"
            yield Sent(label, op.method, base + b"&x=" + raw, body)
        if "requestBody" in op.spec:
            yield from body_attacks(op, kind, base)


def body_attacks(op: Operation, kind: str, target: bytes) -> Iterator[Sent]:
    """The batch body's fields (`ids` and `fields`), as JSON texts."""
    if kind == "raw":
        quoted = [b'"' + raw + b'"' for raw in RAW if b"%" not in raw] + list(RAW_JSON)
    else:
        quoted = [msgspec.json.encode(text) for text in HOSTILE[kind]]
    for value in quoted:
        for body in (
            b'{"ids": [' + value + b"]}",
            b'{"ids": ["densing-law-of-llms", ' + value + b"]}",
            b'{"ids": ["densing-law-of-llms"], "fields": ' + value + b"}",
        ):
            yield Sent(f"{op.method} {op.path} body {body[:60]!r}", op.method, target, body)


# --- sending them ---------------------------------------------------------------------------


def scope_for(request: Sent, n: int) -> dict[str, Any]:
    """The ASGI scope an ASGI server builds for this request."""
    raw_path, _, query = request.target.partition(b"?")
    headers = [(b"host", b"testserver"), (b"accept", b"*/*")]
    if request.body is not None:
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(request.body)).encode()),
        ]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": "http",
        "path": unquote(raw_path.decode("latin-1")),
        "raw_path": raw_path,
        "query_string": query,
        "root_path": "",
        "headers": headers,
        # One client address per request: the default rate limits stay on and never refuse.
        "client": (f"198.18.{n // 256 % 256}.{n % 256}", 40000),
        "server": ("testserver", 80),
    }


async def _call_one(app: Litestar, request: Sent, n: int) -> Answer:
    messages: list[Message] = []
    read = False
    done = asyncio.Event()

    async def receive() -> HTTPRequestEvent | HTTPDisconnectEvent:
        nonlocal read
        if not read:
            read = True
            return {"type": "http.request", "body": request.body or b"", "more_body": False}
        await done.wait()  # as a server does: nothing more until the response is complete
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    try:
        await asyncio.wait_for(app(scope_for(request, n), receive, send), timeout=10)  # type: ignore[arg-type]
    except Exception as error:  # the ASGI server would answer 500
        return Answer(599, {}, f"escaped the app: {error!r}".encode())
    start = next(m for m in messages if m["type"] == "http.response.start")
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return Answer(start["status"], headers, body)


async def _call_all(app: Litestar, requests: list[Sent]) -> list[Answer]:
    return [await _call_one(app, request, n) for n, request in enumerate(requests)]


def call_all(client: Client, requests: list[Sent]) -> list[Answer]:
    """The answers, in order, from the app on the client's event loop."""
    return client.blocking_portal.call(_call_all, client.app, requests)


# --- judging the answers --------------------------------------------------------------------


def must_refuse(param: Spec, value: str) -> bool:
    """Whether the parameter's documented schema rules this text out."""
    schema = param["schema"]
    alternatives = [s for s in schema.get("oneOf", [schema]) if s.get("type") != "null"]
    accepted = alternatives[0].get("items", alternatives[0])
    if accepted.get("type") in {"integer", "number", "boolean"}:
        return True  # none of the hostile texts is a number or a boolean
    if "enum" in accepted or accepted.get("format") == "date":
        return value not in accepted.get("enum", ())
    max_length = schema.get("maxLength", accepted.get("maxLength", math.inf))
    return bool(len(value) > max_length)


class Judge:
    """What is wrong with an answer, given the operation's documented responses."""

    def __init__(self, doc: Spec) -> None:
        self.doc = doc
        self.operations = operations(doc)

    def response_schema(self, sent: Sent, status: int) -> Spec | None:
        path = unquote(sent.target.partition(b"?")[0].decode("latin-1")).split("/")
        for op in self.operations:
            template = op.path.split("/")
            if op.method != sent.method or len(template) != len(path):
                continue
            if all(t == p or t.startswith("{") for t, p in zip(template, path, strict=True)):
                content = op.spec["responses"].get(str(status), {}).get("content", {})
                media = content.get("application/json", {})
                if "schema" in media:
                    return {"components": self.doc["components"], **media["schema"]}
        return None

    def faults(self, sent: Sent, answer: Answer, hostile: tuple[str, ...]) -> list[str]:
        found = []
        media = answer.headers.get("content-type", "").split(";")[0]
        if answer.status >= 500 or answer.status == 429:  # 429: the request was not tried
            found.append(f"status {answer.status}: {answer.body[:300]!r}")
        elif answer.status >= 400:
            found += self._problem_faults(sent, answer, media)
        elif sent.param and sent.value is not None and must_refuse(sent.param, sent.value):
            found.append(f"{answer.status} for a value its schema rules out")
        if 200 <= answer.status < 300 and media == "application/json":
            schema = self.response_schema(sent, answer.status)
            if schema is not None:
                body = msgspec.json.decode(answer.body)
                found += [
                    f"body does not fit its schema at {e.json_path}: {e.message[:200]}"
                    for e in list(OAS31Validator(schema).iter_errors(body))[:3]
                ]
        text = answer.body.decode("utf-8", "replace")
        shown = [leak for leak in LEAKS if leak in text and not any(leak in h for h in hostile)]
        found += [f"shows {leak!r}" for leak in shown]
        if "json" not in media:
            found += [f"echoes {h[:40]!r} as {media}" for h in hostile if "<" in h and h in text]
        return found

    @staticmethod
    def _problem_faults(sent: Sent, answer: Answer, media: str) -> list[str]:
        if media != PROBLEM_JSON:
            return [f"{answer.status} as {media!r}, not a problem"]
        problem = msgspec.json.decode(answer.body)
        if problem.get("status") != answer.status or not problem.get("type"):
            return [f"malformed problem {problem}"]
        named = [p["name"] for p in problem.get("invalid_params") or []]
        param = sent.param or {}
        query_param = problem["code"] == "invalid-parameter" and param.get("in") == "query"
        if query_param and param["name"] not in named:
            return [f"400 names {named}, not {param['name']!r}"]
        return []


# --- the data must be intact ----------------------------------------------------------------


async def fingerprint(url: str) -> dict[str, tuple[int, str]]:
    """Row count and a hash of every row, per table that no request may change."""
    conn = await db.connect(url)
    try:
        result = {}
        for table, key in (
            ("papers", "id"),
            ("topics", "slug"),
            ("paper_topics", "paper_id, topic_slug"),
        ):
            rows = await conn.fetch(f"SELECT t::text AS row FROM {table} t ORDER BY {key}")
            digest = hashlib.sha256("\n".join(r["row"] for r in rows).encode()).hexdigest()
            result[table] = (len(rows), digest)
        return result
    finally:
        await conn.close()


@pytest.mark.parametrize("kind", [*HOSTILE, "raw"])
async def test_hostile_input_is_refused_or_harmless(
    client: Client, seeded_db: str, kind: str
) -> None:
    doc: Spec = (await client.get("/schema/openapi.json")).json()
    before = await fingerprint(seeded_db)
    assert before["papers"][0] == 77

    sent = list(attacks(doc, kind))
    answers = call_all(client, sent)

    judge = Judge(doc)
    hostile = HOSTILE.get(kind, ())
    faults = [
        f"{request.label}: {fault}"
        for request, answer in zip(sent, answers, strict=True)
        for fault in judge.faults(request, answer, hostile)
    ]
    assert not faults, f"{len(faults)} of {len(sent)} answers are wrong:\n" + "\n".join(faults[:40])
    # Every operation and parameter was reached, and some hostile strings were plain queries.
    attacked = {(r.method, r.label.split()[1]) for r in sent}
    assert attacked == {(op.method, op.path) for op in operations(doc)}
    assert any(200 <= a.status < 300 for a in answers)
    assert await fingerprint(seeded_db) == before


async def test_the_attacks_cover_every_parameter(client: Client) -> None:
    doc: Spec = (await client.get("/schema/openapi.json")).json()
    sent = list(attacks(doc, "sql"))
    for op in operations(doc):
        for param in op.spec.get("parameters", []):
            if param["in"] in {"path", "query"}:
                assert any(r.param is param for r in sent), (op.path, param["name"])
    bodies = [r.body for r in sent if r.body and b"DROP TABLE" in r.body]
    assert any(b'"fields"' in b for b in bodies)
    assert any(b'"ids"' in b and b"DROP" in b.split(b'"fields"')[0] for b in bodies)


@pytest.mark.parametrize(
    "target",
    [
        b"/v1/search?q=\xff\xfe",
        b"/v1/search?author=a%00b",
        b"/v1/papers/\xff\xfe",
        b"/v1/papers/%ff%fe%00",
        b"/v1/papers/..%2F..%2Fetc%2Fpasswd",
        b"/v1/papers/../../etc/passwd",
        b"/v1/topics?q=%ed%a0%80",
        b"/v1/suggest?q=%c0%af",
    ],
)
async def test_raw_bytes_over_a_real_socket(seeded_db: str, target: bytes) -> None:
    """What uvicorn makes of the bytes on the wire: the server refuses them or the app
    answers; never a 5xx, and the server keeps serving."""
    app = create_app(Settings(database_url=seeded_db, pool_min_size=0, pool_max_size=2))
    async with serving(app) as client:
        port = int(str(client.base_url).rsplit(":", 1)[1].rstrip("/"))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), timeout=10)
        writer.close()
        status = int(response.split(b" ", 2)[1])
        assert 200 <= status < 500, response[:500]
        assert b"Traceback" not in response
        assert (await client.get("/health")).status_code == 200
