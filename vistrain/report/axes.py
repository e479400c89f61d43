"""Axis ranges that follow the data that matters (shared by the report's plots and the dashboard)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def focus_range(series: Sequence[tuple[Sequence[float], Sequence[float]]], *, recent: float = 0.5,
                floor: float | None = None, cap: float | None = None, min_span: float = 1.0) -> tuple[float, float] | None:
    """A y range fitted to the later part of the x axis, so early outliers don't flatten the end.

    Points whose x lies in the last *recent* share of the x span set the range (all points when
    there are fewer than four x values); a 5 % pad is added, then clipped to *floor*/*cap*
    (e.g. 0 and 100 for accuracy). Returns None when there are no finite points.
    """
    xs_all = [x for xs, ys in series for x, y in zip(xs, ys) if math.isfinite(y)]
    if not xs_all:
        return None
    lo_x, hi_x = min(xs_all), max(xs_all)
    cut = hi_x - recent * (hi_x - lo_x) if len(set(xs_all)) >= 4 else lo_x
    ys = [y for xs, ys_ in series for x, y in zip(xs, ys_) if math.isfinite(y) and x >= cut]
    lo, hi = min(ys), max(ys)
    pad = max((hi - lo) * 0.05, min_span / 2 if hi - lo < min_span else 0.0)
    lo, hi = lo - pad, hi + pad
    if cap is not None and hi > cap:
        lo, hi = lo - (hi - cap), cap  # keep the span, slide it under the cap
    if floor is not None:
        lo = max(lo, floor)
    return lo, hi
