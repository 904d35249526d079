"""PostgreSQL adapters: connections, server binaries and local instances."""
