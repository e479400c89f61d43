"""Axis ranges that follow the data that matters (shared by the report's plots and the dashboard)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def focus_range(series: Sequence[tuple[Sequence[float], Sequence[float]]], *, recent: float = 0.5,
                floor: float | None = None, cap: float | None = None, min_span: float = 1.0) -> tuple[float, float] | None:
    """A y range fitted to the later part of each series, so early outliers don't flatten the end.

    In each series the points whose x lies in the last *recent* share of that series' x span set
    the range (all its points when it has fewer than four x values, so a short run compared with
    a long one stays in view); a 5 % pad is added, then clipped to *floor*/*cap* (e.g. 0 and 100
    for accuracy). Returns None when there are no finite points.
    """
    ys: list[float] = []
    for xs_s, ys_s in series:
        pts = [(x, y) for x, y in zip(xs_s, ys_s) if math.isfinite(y)]
        if not pts:
            continue
        lo_x, hi_x = min(x for x, _ in pts), max(x for x, _ in pts)
        cut = hi_x - recent * (hi_x - lo_x) if len({x for x, _ in pts}) >= 4 else lo_x
        ys += [y for x, y in pts if x >= cut]
    if not ys:
        return None
    lo, hi = min(ys), max(ys)
    pad = max((hi - lo) * 0.05, min_span / 2 if hi - lo < min_span else 0.0)
    lo, hi = lo - pad, hi + pad
    if cap is not None and hi > cap:
        lo, hi = lo - (hi - cap), cap  # keep the span, slide it under the cap
    if floor is not None:
        lo = max(lo, floor)
    return lo, hi
