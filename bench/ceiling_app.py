"""The ceiling for `GET /v1/papers/{id}`: a bare ASGI app doing the same single asyncpg query
and returning the same JSON bytes, with nothing else (no routing framework, no middleware, no
validators, no logging). Served by the same server as ours (bench/http.py).

    DATABASE_URL=postgresql://… granian --interface asgi bench.ceiling_app:app
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service import db

PREFIX = "/v1/papers/"
_JSON = [(b"content-type", b"application/json")]
_NOT_FOUND = b'{"title":"Not Found","status":404}'
_QUERY = f"SELECT {db.PAPER_COLUMNS} FROM papers p WHERE p.id = $1"

_pool: db.Pool | None = None


async def _lifespan(receive: Any, send: Any) -> None:
    global _pool  # noqa: PLW0603 - one pool per worker process
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            _pool = await db.create_pool(os.environ["DATABASE_URL"], min_size=1, max_size=10)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if _pool is not None:
                await _pool.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Any, receive: Any, send: Any) -> None:
    """One paper by id, as our per-paper JSON; 404 otherwise."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    path: str = scope["path"]
    record = None
    if path.startswith(PREFIX) and _pool is not None:
        async with _pool.acquire() as conn:
            record = await conn.fetchrow(_QUERY, path[len(PREFIX) :])
    if record is None:
        status, body = 404, _NOT_FOUND
    else:
        status, body = 200, msgspec.json.encode(db.to_paper(record))
    headers = [*_JSON, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
