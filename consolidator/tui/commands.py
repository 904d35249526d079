"""The command palette (ctrl+p): the screen's actions by name, only those that apply now."""

from __future__ import annotations

from functools import partial

from textual.command import Hit, Hits, Provider


class ConsolidatorCommands(Provider):
    """Every binding of the current screen and its focused pane, searchable by its description."""

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        screen = self.screen
        seen: set[tuple[str, str]] = set()
        for node in (screen, *screen.query("*")):
            for binding in getattr(node, "BINDINGS", []):
                action = getattr(binding, "action", None)
                description = getattr(binding, "description", "")
                if not action or not description or (action, description) in seen:
                    continue
                seen.add((action, description))
                title = f"{type(node).__name__.removesuffix('Pane').removesuffix('Screen').lower()}: {description}"
                score = matcher.match(title)
                if score > 0:
                    yield Hit(score, matcher.highlight(title), partial(node.run_action, action), help=binding.tooltip)
