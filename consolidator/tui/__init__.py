"""The Textual face: screens over the same core the CLI calls (``consolidator tui``)."""
