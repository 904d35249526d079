"""The main screen's tabs, one per step of the workflow."""
