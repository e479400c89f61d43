"""Pseudo labels: accepted counts per class, the confidence histogram with its threshold, and rates."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from vistrain.events import Event, PseudoLabelStats
from vistrain.tui.widgets.bars import hbar, vbars


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


class PseudoLabelPanel(Widget):
    """Hidden until the first :class:`PseudoLabelStats`; then draws the latest round, sized to fit."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.stats: PseudoLabelStats | None = None

    def apply(self, event: Event) -> None:
        """Show the panel and draw *event* if it is a pseudo-label round."""
        if isinstance(event, PseudoLabelStats):
            self.stats = event
            self.display = True
            self.border_title = f"pseudo labels · round {event.round}"
            self.refresh()

    def render(self) -> Text:
        """Rates, then the histogram with a threshold marker, then per-class bars (or one sparkline)."""
        s = self.stats
        if s is None:
            return Text("no pseudo-label round yet", style="dim")
        width, height = max(24, self.size.width), max(5, self.size.height)
        lines = [Text(f"accepted {_pct(s.acceptance_rate)} · mean conf {s.mean_confidence:.2f}"),
                 # label accuracy only where the pool's true labels are known (a folder of unsorted photos has none)
                 Text(f"flips {_pct(s.flip_rate)}" + ("" if s.accuracy is None else f" · label acc {_pct(s.accuracy)}"))]
        counts = s.counts_after or s.counts_before
        names = s.class_names or [str(i) for i in range(len(counts))]
        per_class_rows = len(counts) if height - 2 - 4 >= len(counts) else 0
        hist_rows = max(1, min(6, height - 2 - 1 - (per_class_rows or 1)))
        bins = len(s.confidence_hist) or 20
        scale = max(1, min(3, (width - 6) // bins))  # widen the bins when the panel is wide
        hist = [v for v in s.confidence_hist for _ in range(scale)]
        for i, row in enumerate(vbars(hist, hist_rows)):
            lines.append(Text("conf  " if i == 0 else "      ") + Text(row, style="magenta"))
        marker = min(len(hist) - 1, int(s.threshold * len(hist))) if hist else 0
        lines.append(Text("      " + " " * marker + "▲", style="bold red") + Text(f" {s.threshold:.2f}", style="red"))
        if per_class_rows:
            top = max(counts) or 1
            label_w = min(10, max(len(n) for n in names))
            for name, count in zip(names, counts):
                row = Text(f"{name[:label_w]:>{label_w}} ")
                row.append_text(hbar(count / top, max(4, width - label_w - 8), "blue"))
                row.append(f" {count:>5}")
                lines.append(row)
        else:
            lines.append(Text("class ") + Text(vbars(counts, 1)[0], style="blue") + Text(f" max {max(counts or [0])}"))
        for line in lines:
            line.truncate(width)
        return Text("\n").join(lines[:height])
