"""Fast unit tests: pure functions, no server, no cluster."""
