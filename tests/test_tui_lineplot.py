"""The braille line plot used by the curves panel."""

from __future__ import annotations

import numpy as np

from vistrain.tui.widgets.lineplot import rasterise


def test_a_rising_line_goes_from_bottom_left_to_top_right():
    bits, owner = rasterise([([0, 1], [0, 1])], cols=10, rows=5, x_range=(0, 1), y_range=(0, 1))
    assert bits[-1, 0] & 0x40 and bits[0, -1] & 0x08  # bottom-left dot and top-right dot are set
    assert (owner > 0).sum() >= 10  # the segment is joined, not two lone dots
    assert bits[0, 0] == 0 and bits[-1, -1] == 0


def test_later_series_own_the_cells_they_touch():
    flat = ([0, 1], [0.5, 0.5])
    bits, owner = rasterise([flat, flat], cols=4, rows=2, x_range=(0, 1), y_range=(0, 1))
    assert set(np.unique(owner)) <= {0, 2} and (owner == 2).any()


def test_nan_points_are_skipped():
    bits, owner = rasterise([([0, 1, 2], [0, float("nan"), 1])], cols=6, rows=3, x_range=(0, 2), y_range=(0, 1))
    assert bits.any()

