"""Read-only inventory of a legacy PostgreSQL server."""
