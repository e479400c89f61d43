"""The Textual dashboard: the only package that imports Textual (lazily, from its entry points)."""

from vistrain.tui.launch import attach_dashboard, run_with_dashboard

__all__ = ["attach_dashboard", "run_with_dashboard"]
