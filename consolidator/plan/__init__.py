"""Plans: the reviewable, fingerprinted files under ``plans/`` that drive execution."""
