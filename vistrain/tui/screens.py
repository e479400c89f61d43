"""Modal screens: the quit confirmation and the key help (of a run, attached or live, and of a study)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

LIVE_HELP = """\
[b]q[/b]  stop training: asks first, saves a checkpoint, exits when it is written
[b]p[/b]  pause or resume training (between steps)
[b]s[/b]  save a checkpoint now (last.pt, after the current step)
[b]?[/b]  this help

Once the run has finished the dashboard stays open; q closes it.
"""

ATTACH_HELP = """\
[b]Attached view:[/b] this dashboard reads the run folder's events.jsonl.
It cannot control the training: [b]p[/b] and [b]s[/b] do nothing here.

[b]q[/b]  close this viewer (the run itself goes on)
[b]?[/b]  this help
"""


STUDY_HELP = (
    "[b]Study view:[/b] it reads the study folder's events.jsonl and, for the curves, the events of the trial "
    "running now (of the best trial once the study is done). It cannot control the study: there is no pause "
    "([b]p[/b]) or save ([b]s[/b]) here.\n\n"
    "[b]▶[/b]  the trial whose curves are shown\n"
    "[b]★[/b]  the best trial so far\n"
    "[b]q[/b]  close this viewer (the study goes on)\n"
    "[b]?[/b]  this help\n"
)


class HelpScreen(ModalScreen[None]):
    """The keys, and in attach mode that training cannot be controlled from here; *text* replaces them (the
    study view's)."""

    BINDINGS = [("escape,question_mark,q", "dismiss", "Close")]

    def __init__(self, attached: bool, text: str | None = None) -> None:
        super().__init__()
        self.attached = attached
        self.text = text or (ATTACH_HELP if attached else LIVE_HELP)

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box", classes="dialog"):
            yield Static("[b]vistrain dashboard keys[/b]\n")
            yield Static(self.text)
            yield Static("[dim]escape or ? closes this help[/dim]")

    def action_dismiss(self, result=None) -> None:
        """Close the help."""
        self.dismiss(None)


class ConfirmQuitScreen(ModalScreen[bool]):
    """Asks before stopping a live run; dismisses with True to stop."""

    BINDINGS = [("y", "answer(True)", "Stop"), ("n,escape", "answer(False)", "Keep training")]

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box", classes="dialog"):
            yield Static("Stop training?\nA checkpoint is saved first, then the dashboard closes.")
            with Horizontal(id="confirm-buttons"):
                yield Button("Stop and save (y)", variant="error", id="yes")
                yield Button("Keep training (n)", variant="primary", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, stop: bool) -> None:
        """Answer with the keyboard."""
        self.dismiss(stop)
