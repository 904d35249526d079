"""consolidator: move a shared legacy PostgreSQL server onto one CloudNativePG cluster per app."""

__version__ = "0.1.0"
