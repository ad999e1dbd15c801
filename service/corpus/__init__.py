"""The OER corpus: documents read from files, chunked, stored and searched in PostgreSQL."""
