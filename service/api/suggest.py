"""GET /v1/suggest."""

from __future__ import annotations

import time
from typing import Annotated, Final

from litestar import get
from litestar.openapi.spec import Example
from litestar.params import Parameter

from service.api.deps import Engine
from service.models import SuggestResponse
from service.search.engine import SUGGEST_LIMIT

MAX_PREFIX_LENGTH: Final = 200


@get("/v1/suggest", summary="Title completions", tags=["search"])
async def suggest(
    engine: Engine,
    q: Annotated[
        str,
        Parameter(
            description="What the user has typed so far: every word must appear in the title "
            "(typos tolerated), the last one as the start of a word.",
            min_length=1,
            max_length=MAX_PREFIX_LENGTH,
            examples=[Example(value="kv cache comp"), Example(value="protien fit")],
        ),
    ],
    limit: Annotated[
        int,
        Parameter(
            ge=1,
            le=SUGGEST_LIMIT,
            description="How many titles (1-10).",
            examples=[Example(value=5)],
        ),
    ] = SUGGEST_LIMIT,
) -> SuggestResponse:
    """Up to 10 paper titles completing `q`, best first, for a search box.

    Built to be called on every keystroke: a couple of small indexed lookups. Matched words are
    wrapped in `<mark>…</mark>` in `highlight`. A blank `q` suggests nothing.
    """
    started = time.perf_counter()
    result = await engine.suggest(q, limit)
    return SuggestResponse(
        query=q,
        engine=result.engine,
        suggestions=result.suggestions,
        took_ms=round((time.perf_counter() - started) * 1000, 2),
    )
