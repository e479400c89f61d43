"""Hook implementation; the strategy and its parameters are lazy strings (no torch at start-up)."""

from __future__ import annotations

from vistrain.hookspecs import hookimpl


@hookimpl
def register_strategies(register):
    """Add ``mean-teacher``."""
    register("mean-teacher", "vistrain_mean_teacher.strategy:run_mean_teacher",
             params="vistrain_mean_teacher.strategy:MeanTeacherParams",
             description="Mean Teacher (Tarvainen & Valpola 2017): consistency with an EMA of the student's "
                         "weights on labelled and unlabelled images; use with --labels-per-class")
