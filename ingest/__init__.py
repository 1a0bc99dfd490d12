"""Command-line front door for ingestion: ``python -m ingest DOCS_FOLDER``."""
