"""Text bars and sparklines for panels that draw with Unicode blocks instead of a plot."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

BLOCKS = " ▁▂▃▄▅▆▇█"
EIGHTHS = " ▏▎▍▌▋▊▉█"


def hbar(fraction: float, width: int, style: str = "green", back: str = "grey23") -> Text:
    """A horizontal bar *width* cells wide, filled to *fraction* with 1/8-cell resolution."""
    width = max(1, width)
    fraction = min(1.0, max(0.0, fraction))
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    text = Text("█" * full, style=style)
    if full < width:
        text.append(EIGHTHS[part] if part else " ", style=f"{style} on {back}")
        text.append(" " * (width - full - 1), style=f"on {back}")
    return text


def vbars(values: Sequence[float], rows: int, top: float | None = None) -> list[str]:
    """Column chart of *values*, *rows* lines tall, top line first; one cell per value. A full column is
    *top* (default: the largest value), so fractions can be drawn against 1."""
    rows = max(1, rows)
    if top is None or top <= 0:
        top = max(values) if values and max(values) > 0 else 1.0
    levels = [round(v / top * rows * 8) for v in values]
    lines = []
    for row in range(rows - 1, -1, -1):
        base = row * 8
        lines.append("".join(BLOCKS[min(8, max(0, lv - base))] for lv in levels))
    return lines


def gauge(label: str, fraction: float, width: int, suffix: str, style: str = "green") -> Text:
    """``label ███░░ suffix`` on one line, the bar taking what the label and suffix leave."""
    text = Text(label + " ", style="bold")
    text.append_text(hbar(fraction, max(4, width - len(label) - len(suffix) - 2), style))
    text.append(" " + suffix)
    return text
