"""Search engines behind one contract: PostgreSQL full-text and Meilisearch."""
