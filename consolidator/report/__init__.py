"""The dry-run report: what a reviewer reads before approving a migration.

``render.build_model`` turns a plan into one plain-data document; the Markdown, HTML and JSON
views are all rendered from it, so the human views can never say something the JSON does not.
"""
