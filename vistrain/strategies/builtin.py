"""Built-in training strategies, registered like any plugin's (parameters as typed models)."""

from vistrain.hookspecs import hookimpl


@hookimpl
def register_strategies(register):
    """Register ``supervised``."""
    register("supervised", "vistrain.strategies.supervised:run_supervised",
             params="vistrain.strategies.supervised:SupervisedParams",
             description="plain supervised training on the labelled split")
