"""Ingest: parsing source files, topic classification and loading papers."""
