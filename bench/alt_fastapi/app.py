"""`GET /v1/papers/{id}` and `GET /v1/search` written the way FastAPI's and SQLAlchemy's
documentation suggest: mapped ORM classes, an async session per request through `Depends`,
pydantic response models. Same database, same JSON fields as ours.

    DATABASE_URL=postgresql://… uvicorn --factory bench.alt_fastapi.app:create_app
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from pydantic import BaseModel
from sqlalchemy import ARRAY, Date, DateTime, Float, ForeignKey, Integer, String, Text, func, select
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, selectinload

TS_CONFIG = "papers_english"


class Base(DeclarativeBase):
    pass


class TopicRow(Base):
    __tablename__ = "topics"
    slug: Mapped[str] = mapped_column(Text, primary_key=True)
    label: Mapped[str] = mapped_column(Text)


class PaperTopicRow(Base):
    __tablename__ = "paper_topics"
    paper_id: Mapped[str] = mapped_column(ForeignKey("papers.id"), primary_key=True)
    topic_slug: Mapped[str] = mapped_column(ForeignKey("topics.slug"), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    method: Mapped[str] = mapped_column(Text)
    topic: Mapped[TopicRow] = relationship(lazy="joined")


class PaperRow(Base):
    __tablename__ = "papers"
    id: Mapped[str] = mapped_column(String, primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    abstract: Mapped[str] = mapped_column(Text)
    authors: Mapped[list[str]] = mapped_column(ARRAY(Text))
    published: Mapped[date | None] = mapped_column(Date)
    arxiv_id: Mapped[str | None] = mapped_column(Text)
    links: Mapped[dict[str, Any]] = mapped_column(JSONB)
    source: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    search_vector: Mapped[str] = mapped_column(TSVECTOR)
    topics: Mapped[list[PaperTopicRow]] = relationship(order_by=PaperTopicRow.rank)


class TopicRef(BaseModel):
    slug: str
    label: str
    score: float
    method: str


class Links(BaseModel):
    code: list[str] = []
    models: list[str] = []
    datasets: list[str] = []
    project: list[str] = []
    pdf: list[str] = []


class Source(BaseModel):
    file: str
    position: int
    format: str
    listing_date: str | None = None


class Paper(BaseModel):
    id: str
    title: str
    abstract: str
    topics: list[TopicRef]
    links: Links
    authors: list[str]
    published: date | None
    arxiv_id: str | None
    source: Source
    created_at: datetime
    updated_at: datetime


class Highlight(BaseModel):
    title: str
    abstract: str


class SearchHit(Paper):
    highlight: Highlight


class Facets(BaseModel):
    topics: dict[str, int]


class SearchResponse(BaseModel):
    query: str
    engine: str
    total: int
    limit: int
    offset: int
    hits: list[SearchHit]
    facets: Facets
    took_ms: float


def to_paper(row: PaperRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "title": row.title,
        "abstract": row.abstract,
        "topics": [
            {"slug": t.topic_slug, "label": t.topic.label, "score": t.score, "method": t.method}
            for t in row.topics
        ],
        "links": row.links,
        "authors": row.authors,
        "published": row.published,
        "arxiv_id": row.arxiv_id,
        "source": row.source,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


async def session(request: Request) -> AsyncIterator[AsyncSession]:
    """An async session per request, closed after it."""
    async with request.app.state.sessions() as s:
        yield s


Session = Annotated[AsyncSession, Depends(session)]


def create_app() -> FastAPI:
    url = os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+asyncpg://", 1)
    engine = create_async_engine(url, pool_size=10, max_overflow=0)
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)
    app.state.sessions = sessions

    @app.get("/v1/papers/{paper_id}", response_model=Paper)
    async def get_paper(paper_id: str, s: Session) -> dict[str, Any]:
        row = await s.scalar(
            select(PaperRow).options(selectinload(PaperRow.topics)).where(PaperRow.id == paper_id)
        )
        if row is None:
            raise HTTPException(404, f"no paper with id {paper_id!r}")
        return to_paper(row)

    @app.get("/v1/search", response_model=SearchResponse)
    async def search(
        s: Session,
        q: str = "",
        topic: Annotated[list[str] | None, Query()] = None,
        limit: Annotated[int, Query(ge=0, le=100)] = 20,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        started = time.perf_counter()
        query = func.websearch_to_tsquery(TS_CONFIG, q)
        where = [PaperRow.search_vector.op("@@")(query)] if q.strip() else []
        facet_where = list(where)
        if topic:
            where.append(
                PaperRow.id.in_(
                    select(PaperTopicRow.paper_id).where(PaperTopicRow.topic_slug.in_(topic))
                )
            )
        total = await s.scalar(select(func.count()).select_from(PaperRow).where(*where))
        stmt = (
            select(
                PaperRow,
                func.ts_headline(TS_CONFIG, PaperRow.title, query, "HighlightAll=true"),
                func.ts_headline(
                    TS_CONFIG, PaperRow.abstract, query, "MaxFragments=2, MaxWords=20"
                ),
            )
            .options(selectinload(PaperRow.topics))
            .where(*where)
        )
        if q.strip():
            stmt = stmt.order_by(func.ts_rank_cd(PaperRow.search_vector, query).desc(), PaperRow.id)
        else:
            stmt = stmt.order_by(PaperRow.id)
        rows = (await s.execute(stmt.limit(limit).offset(offset))).all()
        facet_rows = await s.execute(
            select(PaperTopicRow.topic_slug, func.count())
            .join(PaperRow, PaperRow.id == PaperTopicRow.paper_id)
            .where(*facet_where)
            .group_by(PaperTopicRow.topic_slug)
        )
        hits = [
            to_paper(row) | {"highlight": {"title": title, "abstract": abstract}}
            for row, title, abstract in rows
        ]
        return {
            "query": q,
            "engine": "postgres",
            "total": total or 0,
            "limit": limit,
            "offset": offset,
            "hits": hits,
            "facets": {"topics": dict(facet_rows.tuples().all())},
            "took_ms": round((time.perf_counter() - started) * 1000, 2),
        }

    return app
