"""Evidence-based cluster sizing: pgtune's published rules, then measurement on top."""
