"""The non-interactive command line: thin commands over the core."""
