"""Built-in augmentation ops, registered like any plugin's."""

from vistrain.hookspecs import hookimpl


@hookimpl
def register_augmentations(register):
    """Register the built-in ops."""
