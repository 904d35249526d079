"""The migration engine: providers, strategies, journal, cutover."""
