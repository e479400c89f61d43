"""The study view's header: the study, its folder and state, and the best trial so far against the budget."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from vistrain.tui.study_state import StudyTrials
from vistrain.tui.widgets.header import STATE_STYLES


class StudyHeader(Widget):
    """Two lines: ``vistrain study NAME FOLDER (attached, view only)``, then the state badge and the best line."""

    state: reactive[str] = reactive("following")

    def __init__(self, study: StudyTrials, **kwargs) -> None:
        super().__init__(**kwargs)
        self.study = study

    def render(self) -> Text:
        """Line 1: the study and its folder; line 2: the state and :meth:`StudyTrials.best_line`."""
        top = Text(" vistrain ", style="bold reverse")
        top.append(f" study {self.study.name}", style="bold")
        top.append(f"  {self.study.folder}")
        top.append("  (attached, view only)", style="italic")
        bottom = Text(" ")
        bottom.append(f" {self.state.upper()} ", style=STATE_STYLES.get(self.state, ""))
        bottom.append(f"  {self.study.best_line()}" if self.study.trials else "  waiting for the first trial")
        top.truncate(self.size.width or 80)
        bottom.truncate(self.size.width or 80)
        return Text("\n").join([top, bottom])
