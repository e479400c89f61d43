"""The braille line plot used by the curves panel."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vistrain.tui.widgets.lineplot import rasterise


def test_a_rising_line_goes_from_bottom_left_to_top_right():
    bits, owner = rasterise([([0, 1], [0, 1])], cols=10, rows=5, x_range=(0, 1), y_range=(0, 1))
    assert bits[-1][0] & 0x40 and bits[0][-1] & 0x08  # bottom-left dot and top-right dot are set
    assert sum(k > 0 for row in owner for k in row) >= 10  # the segment is joined, not two lone dots
    assert bits[0][0] == 0 and bits[-1][-1] == 0
    # the diagonal of a 10x5-cell (20x20-dot) plot: one dot per dot-row, from the bottom-left up
    dots = {(r * 4 + dr, c * 2 + dc) for r, row in enumerate(bits) for c, b in enumerate(row)
            for dr, bit_row in enumerate(((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80)))
            for dc, bit in enumerate(bit_row) if b & bit}
    assert len(dots) == 20 and {y for y, _ in dots} == set(range(20))


def test_later_series_own_the_cells_they_touch():
    flat = ([0, 1], [0.5, 0.5])
    bits, owner = rasterise([flat, flat], cols=4, rows=2, x_range=(0, 1), y_range=(0, 1))
    assert {k for row in owner for k in row} == {0, 2}  # the second series drew over the first everywhere


def test_nan_points_are_skipped():
    bits, owner = rasterise([([0, 1, 2], [0, float("nan"), 1])], cols=6, rows=3, x_range=(0, 2), y_range=(0, 1))
    assert bits[-1][0] & 0x40 and bits[0][-1] & 0x08  # (0, 0) and (2, 1) drawn, joined over the NaN
    assert all(any(row) for row in bits)


def test_out_of_range_points_are_clipped_to_the_edge():
    bits, _ = rasterise([([0, 1], [-5.0, 5.0])], cols=2, rows=1, x_range=(0, 1), y_range=(0, 1))
    assert bits[0][0] & 0x40 and bits[0][1] & 0x08


def test_the_dashboard_does_not_import_numpy():
    # numpy's import is a quarter of a second of CPU taken from the training beside the dashboard
    code = "import sys, vistrain.tui.app, vistrain.tui.process; print('numpy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"



def test_the_accuracy_axis_follows_the_later_epochs():
    from vistrain.tui.widgets.lineplot import LinePlot

    epochs = list(range(1, 21))
    train = [18.0, 80.0, 92.0] + [95.0 + 0.2 * i for i in range(17)]
    val = [60.0, 90.0, 96.0] + [97.0 + 0.1 * i for i in range(17)]
    lo, hi = LinePlot(follow=True, floor=0.0, cap=100.0).y_range([(epochs, train), (epochs, val)])
    assert 96.0 < lo < 97.5 and 98.6 < hi <= 100.0  # not 18..103: the last epochs fill the plot
    lo, hi = LinePlot().y_range([(epochs, train)])  # the loss plot keeps the whole span
    assert lo < 18.0 and hi > 98.0
    lo, hi = LinePlot(follow=True, cap=100.0).y_range([([1, 2], [99.9, 100.0])])
    assert hi == 100.0 and lo < 99.9


@pytest.mark.asyncio
async def test_curves_panel_draws_the_later_epochs_over_the_whole_height():
    from textual.app import App

    from vistrain.events import EpochEnd, EvalEnd
    from vistrain.tui.widgets.curves import CurvesPanel

    class Host(App):
        def compose(self):
            yield CurvesPanel(id="curves")

    app = Host()
    async with app.run_test(size=(100, 20)) as pilot:
        panel = app.query_one(CurvesPanel)
        for e in range(1, 21):
            acc = 0.18 if e == 1 else 0.97 + 0.001 * e
            panel.apply(EpochEnd(stage="s", epoch=e, epochs=20, train_loss=1 / e, train_top1=acc, lr=0.1,
                                 duration_s=1.0, samples=100))
            panel.apply(EvalEnd(stage="s", epoch=e, split="val", loss=1 / e, top1=acc, top5=1.0, num_samples=10))
        panel.flush()
        await pilot.pause()
        plot = app.query_one("#acc-plot")
        lo, hi = plot.y_range([(xs, ys) for _, xs, ys, _ in plot.series])
        assert lo > 90.0 and hi <= 100.0
        lines = plot.render().plain.splitlines()
        top, bottom = float(lines[1].split()[0]), float(lines[-2].split()[0])  # the y labels as drawn
        assert 90.0 < bottom < top <= 100.0  # the fitted floor, not the first epoch's 18 %


def test_the_legend_shows_each_value_whole_or_not_at_all():
    from vistrain.tui.widgets.lineplot import LinePlot

    plot = LinePlot(title="pseudo labels")
    plot.series = [("mask", [1, 2], [0.5, 93.4], "magenta"), ("acc", [1, 2], [0.5, 99.1], "green"),
                   ("all", [1, 2], [0.5, 89.6], "yellow")]
    full = plot.head(200).plain
    assert full == "pseudo labels ━mask 93.4 ━acc 99.1 ━all 89.6"
    for width in range(4, len(full) + 1):
        text = plot.head(width).plain
        assert len(text) <= width
        values = [part.split()[-1] for part in text.split("━")[1:]]
        assert all(v in ("93.4", "99.1", "89.6") for v in values), (width, text)  # never a cut "8"
    assert plot.head(len(full) - 1).plain == "━mask 93.4 ━acc 99.1 ━all 89.6"  # the title gives way first
    assert plot.head(29).plain == "━mask 93.4 ━acc 99.1"  # then the last entry
