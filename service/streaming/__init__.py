"""Live request changes: PostgreSQL notifications fanned out to stream subscribers."""
