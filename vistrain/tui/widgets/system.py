"""System: per-GPU utilisation, memory, temperature and power, or CPU %, RAM and process RSS.

Under DDP rank 0's sample merges every rank: GPUs are labelled with their rank, and in the CPU
view each rank gets one line of its own (CPU % and RSS of that rank's process).
"""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from vistrain.events import Event, SystemSample
from vistrain.tui.widgets.bars import gauge


def _load_style(fraction: float) -> str:
    return "red" if fraction > 0.9 else ("yellow" if fraction > 0.7 else "green")


class SystemPanel(Widget):
    """Draws the latest :class:`SystemSample`; GPUs when the sample has any, else the CPU view."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.sample: SystemSample | None = None
        self._dirty = False

    def apply(self, event: Event) -> None:
        """Keep *event* if it is a system sample; drawn at the next :meth:`flush`."""
        if isinstance(event, SystemSample):
            self.sample = event
            self._dirty = True

    def flush(self) -> None:
        """Redraw if a new sample arrived."""
        if self._dirty:
            self._dirty = False
            self.refresh()

    def render(self) -> Text:
        """GPU lines (two per GPU) or three CPU lines, fitted to the panel width."""
        width = max(16, self.size.width)
        s = self.sample
        if s is None:
            return Text("waiting for the first sample…", style="dim")
        lines: list[Text] = []
        if s.gpus:
            for gpu in s.gpus:
                lines += self._gpu_lines(gpu, width)
        else:
            cpu = s.cpu_percent / 100
            ram = s.ram_used_gb / s.ram_total_gb if s.ram_total_gb else 0.0
            lines.append(gauge("CPU", cpu, width, f"{s.cpu_percent:3.0f}%", _load_style(cpu)))
            lines.append(gauge("RAM", ram, width, f"{s.ram_used_gb:.1f}/{s.ram_total_gb:.0f}G", _load_style(ram)))
            if len(s.ranks) > 1:
                several_hosts = len({row.get("host") for row in s.ranks}) > 1
                lines += [self._rank_line(row, width, several_hosts) for row in s.ranks]
            else:
                lines.append(Text(f"RSS {s.process_rss_gb:.2f} GB (this process)"))
        for line in lines:
            line.truncate(width)
        return Text("\n").join(lines)

    @staticmethod
    def _rank_line(row: dict, width: int, show_host: bool) -> Text:
        cpu = float(row.get("cpu_percent") or 0.0) / 100
        rss = float(row.get("process_rss_gb") or 0.0)
        host = f" {str(row.get('host') or '')[:12]}" if show_host else ""  # multi-node: which machine
        line = gauge(f"r{row.get('rank', '?')}", cpu, width - 12 - len(host), f"{100 * cpu:3.0f}%", _load_style(cpu))
        line.append(f" {rss:5.2f}G RSS")
        line.append(host, style="dim")
        return line

    @staticmethod
    def _gpu_lines(gpu: dict, width: int) -> list[Text]:
        index = gpu.get("index", 0)
        label = f"r{gpu['rank']}:GPU{index}" if "rank" in gpu else f"GPU{index}"
        util = float(gpu.get("util_percent") or 0.0) / 100
        used, total = float(gpu.get("mem_used_gb") or 0.0), float(gpu.get("mem_total_gb") or 0.0)
        mem = used / total if total else 0.0
        temp, power = gpu.get("temperature_c"), gpu.get("power_w")
        extra = " ".join(part for part in (f"{temp:.0f}°C" if temp is not None else "",
                                           f"{power:.0f}W" if power is not None else "") if part)
        first = gauge(label, util, width - len(extra) - 1, f"{100 * util:3.0f}%", _load_style(util))
        first.append(" " + extra if extra else "")
        second = gauge(" mem", mem, width, f"{used:.1f}/{total:.0f}G", _load_style(mem))
        return [first, second]
