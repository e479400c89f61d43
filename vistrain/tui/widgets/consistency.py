"""Pseudo labels of a consistency-training stage (FixMatch, FlexMatch): mask rate and pseudo-label accuracy
over the steps, and per class the threshold and the accepted count, from :class:`ConsistencyStats`."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget

from vistrain.events import ConsistencyStats, Event
from vistrain.tui.widgets.bars import hbar, vbars
from vistrain.tui.widgets.lineplot import LinePlot

MAX_POINTS = 1000  # per series; past it every other point is dropped (the shape stays)
TWO_LINES_FROM_ROWS = 12  # a panel this tall adds threshold, images and loss under the rates
STACKED_FROM_ROWS, STACKED_BELOW_COLS = 16, 60  # a tall, narrow panel puts the class bars under the plot
SERIES = (("mask", "magenta"), ("acc", "green"), ("all", "yellow"))  # name in the plot's legend, colour


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def summary(s: ConsistencyStats) -> str:
    """``mask 63.2% · acc 97.1% (all 92.0%)``: the accuracies only where the true labels are known."""
    text = f"mask {_pct(s.mask_rate)}"
    if s.accuracy is not None or s.accuracy_all is not None:
        text += f" · acc {_pct(s.accuracy)}" + ("" if s.accuracy_all is None else f" (all {_pct(s.accuracy_all)})")
    return text


def _fit(values: Sequence[float], cells: int) -> list[float]:
    """*values* in at most *cells* cells: neighbours averaged when there are more (groups differ in size by
    one, so a sum would make some cells taller than their classes)."""
    if len(values) <= cells:
        return list(values)
    groups = [values[i * len(values) // cells:(i + 1) * len(values) // cells] for i in range(cells)]
    return [sum(g) / len(g) for g in groups]


class ConsistencyNumbers(Widget):
    """The latest interval in words: mask rate and accuracies, then threshold, images and loss."""

    DEFAULT_CSS = "ConsistencyNumbers { height: 1; }"

    stats: ConsistencyStats | None = None

    def render(self) -> Text:
        """One or two lines, as many as the widget's height."""
        s = self.stats
        if s is None:
            return Text("no pseudo-label statistics yet", style="dim")
        lines = [Text(summary(s), style="bold"),
                 Text(f"τ {s.threshold:.2f} · {s.images:,} unlabelled · loss {s.unlabelled_loss:.3f} · epoch {s.epoch}",
                      style="dim")]
        for line in lines:
            line.truncate(max(1, self.size.width))
        return Text("\n").join(lines[:max(1, self.size.height)])


class ClassBars(Widget):
    """Per class the threshold (against 1) and the accepted count (against the largest): a row per class
    when they fit, else one sparkline each."""

    stats: ConsistencyStats | None = None

    def rows_wanted(self, room: int) -> int:
        """Lines for a row per class (and a header) when they take at most 60 % of *room*, else two."""
        s = self.stats
        n = max(len(s.class_thresholds), len(s.class_accepted)) if s else 0
        return n + 1 if n + 1 <= 0.6 * room else 2

    def get_content_height(self, container, viewport, width: int) -> int:
        """Under the plot (a tall panel), as many lines as :meth:`rows_wanted`."""
        return self.rows_wanted(container.height)

    def render(self) -> Text:
        """Rows of ``name threshold-bar τ accepted-bar count``, or two sparklines."""
        s = self.stats
        width, height = max(12, self.size.width), max(1, self.size.height)
        if s is None or not (s.class_thresholds or s.class_accepted):
            return Text("")
        n = max(len(s.class_thresholds), len(s.class_accepted))
        thresholds = list(s.class_thresholds) or [s.threshold] * n
        accepted = list(s.class_accepted) or [0] * n
        top = max(accepted) or 1
        lines: list[Text] = []
        if height >= n + 1:
            names = s.class_names or [str(i) for i in range(n)]
            label_w = min(10, max(len(name) for name in names))
            count_w = len(str(top))
            bar_w = max(2, (width - label_w - 8 - count_w) // 2)
            head_t = "threshold" if bar_w + 5 >= 10 else "τ"
            head_k = "accepted" if bar_w + 1 + count_w >= 8 else "kept"
            lines.append(Text(f"{'':>{label_w}} {head_t:<{bar_w + 6}}{head_k}", style="dim"))
            for name, t, k in zip(names, thresholds, accepted):
                row = Text(f"{name[:label_w]:>{label_w}} ")
                row.append_text(hbar(t, bar_w, "red"))
                row.append(f" {t:.2f} ")
                row.append_text(hbar(k / top, bar_w, "blue"))
                row.append(f" {k:>{count_w}}")
                lines.append(row)
        else:
            lo, hi = min(thresholds), max(thresholds)
            for label, values, suffix, style, full in (
                    ("τ", thresholds, f"{lo:.2f}" if hi - lo < 5e-3 else f"{lo:.2f}–{hi:.2f}", "red", 1.0),
                    ("kept", accepted, f"{sum(accepted):,}", "blue", None)):
                cells = min(n, width - 6 - len(suffix))
                if cells < min(n, 4):  # too narrow for the figure: the sparkline matters more
                    cells, suffix = min(n, width - 5), ""
                row = Text(f"{label:<5}") + Text(vbars(_fit(values, cells), 1, top=full)[0], style=style)
                lines.append(row + Text(f" {suffix}" if suffix else ""))
        for line in lines:
            line.truncate(width)
        return Text("\n").join(lines[:height])


class ConsistencyPanel(Vertical):
    """Hidden until the first :class:`ConsistencyStats`. :meth:`apply` only stores the event (they come every
    ``train.log_interval`` steps); the app's frame timer calls :meth:`flush`, which redraws what changed."""

    DEFAULT_CSS = """
    ConsistencyPanel #consistency-body { height: 1fr; }
    ConsistencyPanel LinePlot { width: 1fr; height: 1fr; min-height: 3; }
    ConsistencyPanel ClassBars { width: 1fr; height: 1fr; }
    ConsistencyPanel.-tall ConsistencyNumbers { height: 2; }
    ConsistencyPanel.-stacked #consistency-body { layout: vertical; }
    ConsistencyPanel.-stacked ClassBars { height: auto; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.stats: ConsistencyStats | None = None
        self.series: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name, _ in SERIES}
        self._dirty = False

    def compose(self) -> ComposeResult:
        yield ConsistencyNumbers()
        with Horizontal(id="consistency-body"):
            yield LinePlot("% by step", floor=0.0, cap=100.0)
            yield ClassBars()

    def on_resize(self) -> None:
        height, width = self.size.height, self.size.width
        self.set_class(height >= TWO_LINES_FROM_ROWS, "-tall")
        self.set_class(height >= STACKED_FROM_ROWS and width < STACKED_BELOW_COLS, "-stacked")

    def _add(self, name: str, x: float, y: float | None) -> None:
        if y is None:
            return
        xs, ys = self.series[name]
        while xs and xs[-1] >= x:  # a resumed run replays the steps logged past its checkpoint
            xs.pop()
            ys.pop()
        xs.append(x)
        ys.append(100 * y)
        if len(xs) > MAX_POINTS:
            del xs[::2], ys[::2]

    def apply(self, event: Event) -> None:
        """Keep a consistency stage's statistics (shown at the next :meth:`flush`)."""
        if isinstance(event, ConsistencyStats):
            self.stats = event
            for name, value in zip(("mask", "acc", "all"), (event.mask_rate, event.accuracy, event.accuracy_all)):
                self._add(name, event.global_step, value)
            self._dirty = True
            if not self.display:
                self.display = True

    def flush(self) -> None:
        """Redraw the numbers, the plot and the bars if statistics arrived since the last redraw."""
        if not self._dirty or not self.is_mounted:
            return
        self._dirty = False
        s = self.stats
        self.border_title = f"pseudo labels · step {s.global_step}"
        for widget in (self.query_one(ConsistencyNumbers), self.query_one(ClassBars)):
            widget.stats = s
            widget.refresh()
        self.query_one(LinePlot).set_series([(name, *self.series[name], color) for name, color in SERIES
                                             if self.series[name][0]])
