"""Built-in commands, registered through ``register_commands`` like a plugin's.

Targets are lazy strings: a command module is imported only when the app is assembled, and
those modules import torch only inside their functions.
"""

from vistrain.hookspecs import hookimpl


@hookimpl
def register_commands(register):
    """Register the built-in command set."""
    register("run", "vistrain.cli.run:run", help="Train a model (dashboard in a terminal, plain lines otherwise).")
    register("attach", "vistrain.cli.attach:attach", help="Watch a run folder in the dashboard (live or finished).")
    register("eval", "vistrain.cli.evaluate:eval_command", help="Evaluate a checkpoint on a dataset.")
    register("predict", "vistrain.cli.evaluate:predict_command", help="Print the top-k classes for image files.")
    register("config", "vistrain.cli.config_cmd:app", help="Show the default configuration.")
    register("plugins", "vistrain.cli.plugins:app", help="List, check, install, uninstall and create plugins.")
    register("models", "vistrain.cli.models:app", help="List and inspect models.")
    register("viz", "vistrain.cli.viz:app", help="Draw what a model learned (first-layer weights, Grad-CAM).")
    register("report", "vistrain.cli.report:report_command", help="Write a run's HTML report (curves, confusion, mistakes...).")
    register("compare", "vistrain.cli.report:compare_command", help="Compare runs: metrics table, config differences, curves.")
    register("export", "vistrain.cli.export:export_command", help="Export a checkpoint to safetensors, TorchScript or ONNX.")
    register("lr-find", "vistrain.cli.lr_find:lr_find_command",
             help="Sweep the learning rate on the run's config; suggest one (valley), plot it.")
    register("calibrate", "vistrain.cli.evaluate:calibrate_command",
             help="Fit a softmax temperature on the val split and store it in the checkpoint.")
    register("average", "vistrain.cli.export:average_command", help="Average checkpoints' weights (BatchNorm recomputed).")
    register("datasets", "vistrain.cli.datasets:app", help="List datasets, check their images, pack them as shards.")
    register("tune", "vistrain.cli.tune:app",
             help="Search config keys and augmentation with Optuna (TPE, pruning, many workers); tune report.")
    register("augment", "vistrain.cli.augment:app", help="List augmentation ops, preview a pipeline, search policies.")
    register("strategies", "vistrain.cli.lists:strategies_app", help="List training strategies.")
