"""The trials of a tune study: one row each, with its state, val top-1, epochs and sampled parameters."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from vistrain.tui.study_state import StudyTrials, TrialView, format_value

COLUMNS = (("mark", ""), ("trial", "trial"), ("state", "state"), ("top1", "val top-1"), ("epochs", "epochs"))
# a sign before each state, so a terminal without colours still tells pruned and failed trials apart
STATES = {"running": ("▶ running", "bold cyan"), "complete": ("✓ complete", "green"), "pruned": ("✂ pruned", "yellow"),
          "diverged": ("✂ diverged", "yellow")}
FAILED = "red"


def row_cells(study: StudyTrials, trial: TrialView, followed: int | None, params: list[str]) -> tuple:
    """The table's cells for *trial*: marks (▶ curves shown, ★ best), number, state, val top-1, epochs, params."""
    mark = ("▶" if trial.number == followed else " ") + ("★" if trial.number == study.best_number else " ")
    text, style = STATES.get(trial.label, (f"✗ {trial.label}", FAILED))
    top1 = trial.top1
    if top1 is None:
        score = Text("-", style="dim")
    else:  # a pruned trial's figure is its last epoch's, a running one's its latest: not a final value
        score = Text(f"{100 * top1:.2f}%", style="" if trial.state == "complete" else "dim italic")
    return (Text(mark, style="bold yellow"), trial.number, Text(text, style=style), score, len(trial.steps),
            *(format_value(trial.params[k]) if k in trial.params else "" for k in params))


class TrialsTable(DataTable):
    """Every trial of the study, by number; :meth:`show` updates the cells that changed."""

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="none", zebra_stripes=True, **kwargs)
        self.params: list[str] = []
        self._cells: dict[int, tuple] = {}  # what each row shows now
        self._followed: int | None = None

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def show(self, study: StudyTrials, followed: int | None) -> None:
        """Bring the table up to date with *study*; *followed* is the trial whose curves are shown."""
        for key in study.param_keys():
            if key not in self.params:  # a conditional parameter first sampled by a later trial
                self.params.append(key)
                self.add_column(key, key=key, default="")
        keys = [key for key, _ in COLUMNS] + self.params
        resort = False
        for number in sorted(study.trials):
            cells = row_cells(study, study.trials[number], followed, self.params)
            old = self._cells.get(number)
            if old is None:
                resort |= bool(self._cells) and number < max(self._cells)  # workers may report out of order
                self.add_row(*cells, key=str(number))
            elif old != cells:
                old += ("",) * (len(cells) - len(old))
                for key, new, was in zip(keys, cells, old):
                    if new != was:
                        self.update_cell(str(number), key, new, update_width=True)
            self._cells[number] = cells
        if resort:
            self.sort("trial")
        if followed != self._followed and followed in self._cells:  # scroll its row into view (the cursor is hidden)
            self._followed = followed
            self.move_cursor(row=self.get_row_index(str(followed)), column=0)
