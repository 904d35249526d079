"""The demo: a throwaway legacy server with realistic app databases, planned end to end."""
