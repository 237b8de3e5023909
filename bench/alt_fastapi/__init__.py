"""What a user would otherwise pick: the per-paper and search endpoints in FastAPI + pydantic +
SQLAlchemy async (ORM models, `response_model`), over the same database. Benchmark only."""
